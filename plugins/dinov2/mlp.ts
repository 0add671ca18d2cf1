/**
 * The two feed-forward blocks of DINOv2: `Mlp` (fc1, exact GELU, fc2) for ViT-S/B/L and
 * `SwiGLUFFN` (w12 -> silu(x1) * x2 -> w3) for ViT-g.
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
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.hidden(x));
  }
  /** The last Linear, which Block runs with its LayerScale and residual fused in. */
  get output(): Linear {
    return this.fc2;
  }
  /** Everything before the last Linear: GELU runs in place on fc1's output (one array). */
  hidden(x: Tensor): Tensor {
    return ops.fusedLinear(x, this.fc1.weight, this.fc1.bias, { activation: "gelu" });
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
  forward(x: Tensor): Tensor {
    return this.w3.forward(this.hidden(x));
  }
  /** The last Linear, which Block runs with its LayerScale and residual fused in. */
  get output(): Linear {
    return this.w3;
  }
  /** Everything before the last Linear. */
  hidden(x: Tensor): Tensor {
    const x12 = this.w12.forward(x);
    const x1 = ops.slice(x12, -1, 0, this.hiddenDim);
    const x2 = ops.slice(x12, -1, this.hiddenDim, 2 * this.hiddenDim);
    return ops.mul(ops.silu(x1), x2);
  }
}
