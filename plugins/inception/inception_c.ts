/**
 * Mixed_6b..6e (torchvision InceptionC) with the FID patch: factorised 1x7 / 7x1
 * convolutions, and a pooling branch that averages over valid pixels only.
 */

import * as ops from "../../core/ops/mod.ts";
import { Module } from "../../core/nn/mod.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { avgPoolValid, BasicConv2d, chain, type ConvShape } from "./basic_conv.ts";

const ROW: ConvShape = { kernel: [1, 7], padding: [0, 3] };
const COL: ConvShape = { kernel: [7, 1], padding: [3, 0] };
const POINT: ConvShape = { kernel: 1 };

export class InceptionC extends Module {
  readonly branch1x1: BasicConv2d;
  readonly branch7x7_1: BasicConv2d;
  readonly branch7x7_2: BasicConv2d;
  readonly branch7x7_3: BasicConv2d;
  readonly branch7x7dbl_1: BasicConv2d;
  readonly branch7x7dbl_2: BasicConv2d;
  readonly branch7x7dbl_3: BasicConv2d;
  readonly branch7x7dbl_4: BasicConv2d;
  readonly branch7x7dbl_5: BasicConv2d;
  readonly branch_pool: BasicConv2d;

  constructor(inC: number, channels7x7: number) {
    super();
    const c7 = channels7x7;
    const conv = (name: string, i: number, o: number, shape: ConvShape) =>
      this.child(name, new BasicConv2d(i, o, shape));
    this.branch1x1 = conv("branch1x1", inC, 192, POINT);
    this.branch7x7_1 = conv("branch7x7_1", inC, c7, POINT);
    this.branch7x7_2 = conv("branch7x7_2", c7, c7, ROW);
    this.branch7x7_3 = conv("branch7x7_3", c7, 192, COL);
    this.branch7x7dbl_1 = conv("branch7x7dbl_1", inC, c7, POINT);
    this.branch7x7dbl_2 = conv("branch7x7dbl_2", c7, c7, COL);
    this.branch7x7dbl_3 = conv("branch7x7dbl_3", c7, c7, ROW);
    this.branch7x7dbl_4 = conv("branch7x7dbl_4", c7, c7, COL);
    this.branch7x7dbl_5 = conv("branch7x7dbl_5", c7, 192, ROW);
    this.branch_pool = conv("branch_pool", inC, 192, POINT);
  }

  /** (N, inC, H, W) -> (N, 768, H, W). */
  forward(x: Tensor): Tensor {
    return tidy(() =>
      ops.cat([
        this.branch1x1.forward(x),
        chain(x, this.branch7x7_1, this.branch7x7_2, this.branch7x7_3),
        chain(
          x,
          this.branch7x7dbl_1,
          this.branch7x7dbl_2,
          this.branch7x7dbl_3,
          this.branch7x7dbl_4,
          this.branch7x7dbl_5,
        ),
        chain(avgPoolValid(x), this.branch_pool),
      ], 1)
    );
  }
}
