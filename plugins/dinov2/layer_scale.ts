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
  forward(x: Tensor): Tensor {
    return ops.mul(x, this.gamma);
  }
}
