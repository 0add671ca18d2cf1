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
    if (dim % heads !== 0) throw new Error(`dinov2 attention: dim ${dim} is not divisible by ${heads} heads`);
    this.headDim = dim / heads;
    this.qkv = this.child("qkv", new Linear(dim, 3 * dim));
    this.proj = this.child("proj", new Linear(dim, dim));
  }

  /** x (B, N, D) -> (B, N, D). */
  forward(x: Tensor): Tensor {
    const [B, N, C] = x.shape;
    // (B, N, 3*D) -> (3, B, H, N, hd), as reshape(B, N, 3, H, hd).permute(2, 0, 3, 1, 4)
    const qkv = ops.permute(ops.reshape(this.qkv.forward(x), [B, N, 3, this.heads, this.headDim]), [2, 0, 3, 1, 4]);
    const [q, k, v] = [0, 1, 2].map((i) => ops.reshape(ops.slice(qkv, 0, i, i + 1), [B, this.heads, N, this.headDim]));
    const o = ops.attention(q, k, v); // scale head_dim^-0.5
    const merged = ops.reshape(ops.permute(o, [0, 2, 1, 3]), [B, N, C]);
    return this.proj.forward(merged);
  }
}
