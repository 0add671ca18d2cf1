/** A pre-norm transformer block: x += ls1(attn(norm1(x))); x += ls2(mlp(norm2(x))). */

import { LayerNorm, Module } from "../../core/nn/mod.ts";
import type { Tensor } from "../../core/tensor.ts";
import type { ViTConfig } from "./config.ts";
import { Attention } from "./attention.ts";
import { LayerScale } from "./layer_scale.ts";
import { Mlp, SwiGLUFFN } from "./mlp.ts";

export class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly ls1: LayerScale;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp | SwiGLUFFN;
  readonly ls2: LayerScale;
  constructor(cfg: ViTConfig) {
    super();
    const D = cfg.embedDim;
    this.norm1 = this.child("norm1", new LayerNorm(D, cfg.eps));
    this.attn = this.child("attn", new Attention(D, cfg.heads));
    this.ls1 = this.child("ls1", new LayerScale(D));
    this.norm2 = this.child("norm2", new LayerNorm(D, cfg.eps));
    this.mlp = this.child(
      "mlp",
      cfg.ffn === "mlp" ? new Mlp(D, cfg.mlpHidden) : new SwiGLUFFN(D, cfg.mlpHidden),
    );
    this.ls2 = this.child("ls2", new LayerScale(D));
  }

  forward(x: Tensor): Tensor {
    // Each branch ends in a Linear whose epilogue applies its LayerScale and adds the
    // residual (ls.onto), so the block makes no extra passes over the tokens.
    const h = this.attn.forward(this.norm1.forward(x), this.ls1.onto(x));
    return this.mlp.forward(this.norm2.forward(h), this.ls2.onto(h));
  }
}
