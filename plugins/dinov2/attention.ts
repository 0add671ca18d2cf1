/**
 * DINOv2 self-attention: one fused `qkv` Linear (rows ordered [q; k; v], each split into
 * heads), softmax(q k^T / sqrt(head_dim)) v, then `proj`.
 */

import { Linear, Module } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import type { Tensor } from "../../core/tensor.ts";

export class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly headDim: number;
  constructor(readonly dim: number, readonly heads: number) {
    super();
    if (dim % heads !== 0) {
      throw new Error(`dinov2 attention: dim ${dim} is not divisible by ${heads} heads`);
    }
    this.headDim = dim / heads;
    this.qkv = this.child("qkv", new Linear(dim, 3 * dim));
    this.proj = this.child("proj", new Linear(dim, dim));
  }

  /**
   * x (B, N, D) -> (B, N, D). `out` is the epilogue of the output projection (a Block
   * passes its LayerScale and residual, see LayerScale.onto).
   */
  forward(x: Tensor, out?: ops.FusedLinearOptions): Tensor {
    const [B, N, C] = x.shape;
    const H = this.heads;
    // (B, N, 3*D) viewed as (B, 3H, N, hd): q, k and v are windows onto the projection's
    // output, which ops.attention reads in place (no permute copies).
    const rows = ops.permute(ops.reshape(this.qkv.forward(x), [B, N, 3 * H, this.headDim]), [
      0,
      2,
      1,
      3,
    ]);
    const [q, k, v] = [0, 1, 2].map((i) => ops.slice(rows, 1, i * H, (i + 1) * H));
    const o = ops.attention(q, k, v); // scale head_dim^-0.5
    // o is laid out (B, N, H, hd) in memory, so this is a view.
    return this.proj.forward(ops.reshape(ops.permute(o, [0, 2, 1, 3]), [B, N, C]), out);
  }
}
