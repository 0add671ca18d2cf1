/**
 * Mixed_7b and Mixed_7c (torchvision InceptionE) with the FID patches. The two blocks differ
 * only in their pooling branch:
 *   - Mixed_7b (FIDInceptionE_1): 3x3 average pool over valid pixels only;
 *   - Mixed_7c (FIDInceptionE_2): 3x3 *max* pool (stride 1, padding 1), a quirk of the
 *     TensorFlow graph the weights come from.
 */

import * as ops from "../../core/ops/mod.ts";
import { Module } from "../../core/nn/mod.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { avgPoolValid, BasicConv2d, chain, type ConvShape } from "./basic_conv.ts";

export type EPool = "avg" | "max";

const ROW: ConvShape = { kernel: [1, 3], padding: [0, 1] };
const COL: ConvShape = { kernel: [3, 1], padding: [1, 0] };

export class InceptionE extends Module {
  readonly branch1x1: BasicConv2d;
  readonly branch3x3_1: BasicConv2d;
  readonly branch3x3_2a: BasicConv2d;
  readonly branch3x3_2b: BasicConv2d;
  readonly branch3x3dbl_1: BasicConv2d;
  readonly branch3x3dbl_2: BasicConv2d;
  readonly branch3x3dbl_3a: BasicConv2d;
  readonly branch3x3dbl_3b: BasicConv2d;
  readonly branch_pool: BasicConv2d;

  constructor(inC: number, readonly pool: EPool) {
    super();
    const conv = (name: string, i: number, o: number, shape: ConvShape) =>
      this.child(name, new BasicConv2d(i, o, shape));
    this.branch1x1 = conv("branch1x1", inC, 320, { kernel: 1 });
    this.branch3x3_1 = conv("branch3x3_1", inC, 384, { kernel: 1 });
    this.branch3x3_2a = conv("branch3x3_2a", 384, 384, ROW);
    this.branch3x3_2b = conv("branch3x3_2b", 384, 384, COL);
    this.branch3x3dbl_1 = conv("branch3x3dbl_1", inC, 448, { kernel: 1 });
    this.branch3x3dbl_2 = conv("branch3x3dbl_2", 448, 384, { kernel: 3, padding: 1 });
    this.branch3x3dbl_3a = conv("branch3x3dbl_3a", 384, 384, ROW);
    this.branch3x3dbl_3b = conv("branch3x3dbl_3b", 384, 384, COL);
    this.branch_pool = conv("branch_pool", inC, 192, { kernel: 1 });
  }

  /** (N, inC, H, W) -> (N, 320 + 768 + 768 + 192 = 2048, H, W). */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const b3 = this.branch3x3_1.forward(x);
      const d3 = chain(x, this.branch3x3dbl_1, this.branch3x3dbl_2);
      const pooled = this.pool === "avg"
        ? avgPoolValid(x)
        : ops.maxPool2d(x, { kernel: 3, stride: 1, padding: 1 });
      return ops.cat([
        this.branch1x1.forward(x),
        this.branch3x3_2a.forward(b3),
        this.branch3x3_2b.forward(b3),
        this.branch3x3dbl_3a.forward(d3),
        this.branch3x3dbl_3b.forward(d3),
        this.branch_pool.forward(pooled),
      ], 1);
    });
  }
}
