/**
 * Mixed_5b/5c/5d (torchvision InceptionA) with the FID patch: the pooling branch averages
 * over the valid pixels only (count_include_pad=False), as TensorFlow's average pool does.
 */

import * as ops from "../../core/ops/mod.ts";
import { Module } from "../../core/nn/mod.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { avgPoolValid, BasicConv2d, chain } from "./basic_conv.ts";

export class InceptionA extends Module {
  readonly branch1x1: BasicConv2d;
  readonly branch5x5_1: BasicConv2d;
  readonly branch5x5_2: BasicConv2d;
  readonly branch3x3dbl_1: BasicConv2d;
  readonly branch3x3dbl_2: BasicConv2d;
  readonly branch3x3dbl_3: BasicConv2d;
  readonly branch_pool: BasicConv2d;

  constructor(inC: number, poolFeatures: number) {
    super();
    const conv = (name: string, i: number, o: number, k: number, padding = 0) =>
      this.child(name, new BasicConv2d(i, o, { kernel: k, padding }));
    this.branch1x1 = conv("branch1x1", inC, 64, 1);
    this.branch5x5_1 = conv("branch5x5_1", inC, 48, 1);
    this.branch5x5_2 = conv("branch5x5_2", 48, 64, 5, 2);
    this.branch3x3dbl_1 = conv("branch3x3dbl_1", inC, 64, 1);
    this.branch3x3dbl_2 = conv("branch3x3dbl_2", 64, 96, 3, 1);
    this.branch3x3dbl_3 = conv("branch3x3dbl_3", 96, 96, 3, 1);
    this.branch_pool = conv("branch_pool", inC, poolFeatures, 1);
  }

  /** (N, inC, H, W) -> (N, 64 + 64 + 96 + poolFeatures, H, W). */
  forward(x: Tensor): Tensor {
    return tidy(() =>
      ops.cat([
        this.branch1x1.forward(x),
        chain(x, this.branch5x5_1, this.branch5x5_2),
        chain(x, this.branch3x3dbl_1, this.branch3x3dbl_2, this.branch3x3dbl_3),
        chain(avgPoolValid(x), this.branch_pool),
      ], 1)
    );
  }
}
