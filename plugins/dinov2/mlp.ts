/**
 * The two feed-forward blocks of DINOv2: `Mlp` (fc1, exact GELU, fc2) for ViT-S/B/L and
 * `SwiGLUFFN` (w12 -> silu(x1) * x2 -> w3) for ViT-g. Both take the epilogue of their last
 * Linear (a Block passes its LayerScale and residual, see LayerScale.onto).
 */

import { Linear, Module } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import type { Tensor } from "../../core/tensor.ts";

export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(dim: number, hidden: number) {
    super();
    this.fc1 = this.child("fc1", new Linear(dim, hidden));
    this.fc2 = this.child("fc2", new Linear(hidden, dim));
  }
  forward(x: Tensor, out?: ops.FusedLinearOptions): Tensor {
    // GELU runs in place on fc1's output, as its epilogue (one array, one pass).
    return this.fc2.forward(this.fc1.forward(x, { activation: "gelu" }), out);
  }
}

export class SwiGLUFFN extends Module {
  readonly w12: Linear;
  readonly w3: Linear;
  constructor(dim: number, readonly hiddenDim: number) {
    super();
    this.w12 = this.child("w12", new Linear(dim, 2 * hiddenDim));
    this.w3 = this.child("w3", new Linear(hiddenDim, dim));
  }
  forward(x: Tensor, out?: ops.FusedLinearOptions): Tensor {
    const x12 = this.w12.forward(x);
    const x1 = ops.slice(x12, -1, 0, this.hiddenDim);
    const x2 = ops.slice(x12, -1, this.hiddenDim, 2 * this.hiddenDim);
    return this.w3.forward(ops.mul(ops.silu(x1), x2), out);
  }
}
