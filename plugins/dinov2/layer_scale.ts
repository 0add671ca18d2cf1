/** LayerScale: a learned per-channel factor `gamma` on each residual branch. */

import { Module } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import type { Tensor } from "../../core/tensor.ts";

export class LayerScale extends Module {
  readonly gamma: Tensor;
  constructor(dim: number, initValue = 1) {
    super();
    this.gamma = this.param("gamma", ops.full([dim], initValue));
  }

  /** residual + gamma * branch, as two element-wise passes. */
  forward(branch: Tensor, residual?: Tensor): Tensor {
    const scaled = ops.mul(branch, this.gamma);
    return residual ? ops.add(residual, scaled) : scaled;
  }

  /**
   * The same residual + gamma * branch, handed to the branch's last Linear to run as its
   * GEMM epilogue: no extra passes over the tokens (see Linear.forward).
   */
  onto(residual: Tensor): ops.FusedLinearOptions {
    return { scale: this.gamma, residual };
  }
}
