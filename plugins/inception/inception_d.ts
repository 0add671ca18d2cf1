/** Mixed_7a (torchvision InceptionD, unpatched): the 17x17 -> 8x8 grid reduction. */

import * as ops from "../../core/ops/mod.ts";
import { Module } from "../../core/nn/mod.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { BasicConv2d, chain, type ConvShape, maxPoolReduce } from "./basic_conv.ts";

export class InceptionD extends Module {
  readonly branch3x3_1: BasicConv2d;
  readonly branch3x3_2: BasicConv2d;
  readonly branch7x7x3_1: BasicConv2d;
  readonly branch7x7x3_2: BasicConv2d;
  readonly branch7x7x3_3: BasicConv2d;
  readonly branch7x7x3_4: BasicConv2d;

  constructor(inC: number) {
    super();
    const conv = (name: string, i: number, o: number, shape: ConvShape) =>
      this.child(name, new BasicConv2d(i, o, shape));
    this.branch3x3_1 = conv("branch3x3_1", inC, 192, { kernel: 1 });
    this.branch3x3_2 = conv("branch3x3_2", 192, 320, { kernel: 3, stride: 2 });
    this.branch7x7x3_1 = conv("branch7x7x3_1", inC, 192, { kernel: 1 });
    this.branch7x7x3_2 = conv("branch7x7x3_2", 192, 192, { kernel: [1, 7], padding: [0, 3] });
    this.branch7x7x3_3 = conv("branch7x7x3_3", 192, 192, { kernel: [7, 1], padding: [3, 0] });
    this.branch7x7x3_4 = conv("branch7x7x3_4", 192, 192, { kernel: 3, stride: 2 });
  }

  /** (N, inC, H, W) -> (N, 320 + 192 + inC, (H-3)/2+1, (W-3)/2+1). */
  forward(x: Tensor): Tensor {
    return tidy(() =>
      ops.cat([
        chain(x, this.branch3x3_1, this.branch3x3_2),
        chain(x, this.branch7x7x3_1, this.branch7x7x3_2, this.branch7x7x3_3, this.branch7x7x3_4),
        maxPoolReduce(x),
      ], 1)
    );
  }
}
