/** A pre-norm transformer block: x += ls1(attn(norm1(x))); x += ls2(mlp(norm2(x))). */

import { LayerNorm, Module } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
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
    this.mlp = this.child("mlp", cfg.ffn === "mlp" ? new Mlp(D, cfg.mlpHidden) : new SwiGLUFFN(D, cfg.mlpHidden));
    this.ls2 = this.child("ls2", new LayerScale(D));
  }

  forward(x: Tensor): Tensor {
    // x + gamma * proj(...) in one op: the LayerScale and the residual add ride on the
    // output projection's GEMM (ops.fusedLinear), not two more passes over the tokens.
    const proj = this.attn.proj, out = this.mlp.output;
    const h = ops.fusedLinear(this.attn.mixHeads(this.norm1.forward(x)), proj.weight, proj.bias, {
      scale: this.ls1.gamma, residual: x,
    });
    return ops.fusedLinear(this.mlp.hidden(this.norm2.forward(h)), out.weight, out.bias, {
      scale: this.ls2.gamma, residual: h,
    });
  }
}
