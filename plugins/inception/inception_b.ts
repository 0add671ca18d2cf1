/** Mixed_6a (torchvision InceptionB, unpatched): the 35x35 -> 17x17 grid reduction. */

import * as ops from "../../core/ops/mod.ts";
import { Module } from "../../core/nn/mod.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { BasicConv2d, chain, maxPoolReduce } from "./basic_conv.ts";

export class InceptionB extends Module {
  readonly branch3x3: BasicConv2d;
  readonly branch3x3dbl_1: BasicConv2d;
  readonly branch3x3dbl_2: BasicConv2d;
  readonly branch3x3dbl_3: BasicConv2d;

  constructor(inC: number) {
    super();
    this.branch3x3 = this.child("branch3x3", new BasicConv2d(inC, 384, { kernel: 3, stride: 2 }));
    this.branch3x3dbl_1 = this.child("branch3x3dbl_1", new BasicConv2d(inC, 64, { kernel: 1 }));
    this.branch3x3dbl_2 = this.child(
      "branch3x3dbl_2",
      new BasicConv2d(64, 96, { kernel: 3, padding: 1 }),
    );
    this.branch3x3dbl_3 = this.child(
      "branch3x3dbl_3",
      new BasicConv2d(96, 96, { kernel: 3, stride: 2 }),
    );
  }

  /** (N, inC, H, W) -> (N, 384 + 96 + inC, (H-3)/2+1, (W-3)/2+1). */
  forward(x: Tensor): Tensor {
    return tidy(() =>
      ops.cat([
        this.branch3x3.forward(x),
        chain(x, this.branch3x3dbl_1, this.branch3x3dbl_2, this.branch3x3dbl_3),
        maxPoolReduce(x),
      ], 1)
    );
  }
}
