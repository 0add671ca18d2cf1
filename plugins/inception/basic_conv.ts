/**
 * BasicConv2d of the FID Inception-v3: convolution without bias, BatchNorm (eps 1e-3,
 * running statistics only) and ReLU.
 *
 * The state dict keeps PyTorch's names (`<name>.conv.weight`, `<name>.bn.weight`, `.bias`,
 * `.running_mean`, `.running_var`). For inference the BatchNorm is folded into the
 * convolution once, after the weights are loaded:
 *   alpha = gamma / sqrt(var + eps),  w' = w * alpha,  b' = beta - mean * alpha,
 * computed in float64 and rounded once to float32. That differs from PyTorch's
 * conv-then-BN only by float32 rounding.
 */

import * as ops from "../../core/ops/mod.ts";
import { Module } from "../../core/nn/mod.ts";
import type { Tensor } from "../../core/tensor.ts";

export const BN_EPS = 1e-3;

export type Pair = number | [number, number];

export interface ConvShape {
  kernel: Pair;
  stride?: number;
  padding?: Pair;
}

const pair = (v: Pair): [number, number] => (typeof v === "number" ? [v, v] : v);

/** The convolution's weight alone (`conv.weight`, OIHW, no bias). */
class ConvWeight extends Module {
  readonly weight: Tensor;
  constructor(inC: number, outC: number, kernel: [number, number]) {
    super();
    this.weight = this.param("weight", ops.zeros([outC, inC, kernel[0], kernel[1]]));
  }
}

/** BatchNorm2d in eval mode: affine parameters and running statistics. */
class BatchNormStats extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  constructor(channels: number) {
    super();
    this.weight = this.param("weight", ops.ones([channels]));
    this.bias = this.param("bias", ops.zeros([channels]));
    this.runningMean = this.buffer("running_mean", ops.zeros([channels]));
    this.runningVar = this.buffer("running_var", ops.ones([channels]));
  }
}

export class BasicConv2d extends Module {
  readonly conv: ConvWeight;
  readonly bn: BatchNormStats;
  readonly stride: number;
  readonly padding: [number, number];
  #folded: { weight: Tensor; bias: Tensor } | null = null;

  constructor(readonly inC: number, readonly outC: number, shape: ConvShape) {
    super();
    this.conv = this.child("conv", new ConvWeight(inC, outC, pair(shape.kernel)));
    this.bn = this.child("bn", new BatchNormStats(outC));
    this.stride = shape.stride ?? 1;
    this.padding = pair(shape.padding ?? 0);
  }

  /** Recompute the folded weights from the current parameters (call after loading). */
  async fold(): Promise<void> {
    const [w, gamma, beta, mean, variance] = await Promise.all(
      [this.conv.weight, this.bn.weight, this.bn.bias, this.bn.runningMean, this.bn.runningVar]
        .map((t) => t.data()),
    );
    const perOut = w.length / this.outC;
    const fw = new Float32Array(w.length);
    const fb = new Float32Array(this.outC);
    for (let o = 0; o < this.outC; o++) {
      const alpha = gamma[o] / Math.sqrt(variance[o] + BN_EPS);
      for (let i = o * perOut; i < (o + 1) * perOut; i++) fw[i] = w[i] * alpha;
      fb[o] = beta[o] - mean[o] * alpha;
    }
    this.#dropFolded();
    this.#folded = {
      weight: ops.tensor(fw, this.conv.weight.shape, { backend: this.conv.weight.backend }).keep(),
      bias: ops.tensor(fb, [this.outC], { backend: this.conv.weight.backend }).keep(),
    };
  }

  forward(x: Tensor): Tensor {
    if (!this.#folded) {
      throw new Error(
        `BasicConv2d(${this.inC}->${this.outC}): BatchNorm not folded; call fold() after loading weights`,
      );
    }
    const { weight, bias } = this.#folded;
    const y = ops.conv2d(x, weight, bias, { stride: this.stride, padding: this.padding });
    const out = ops.relu(y);
    y.dispose();
    return out;
  }

  #dropFolded(): void {
    this.#folded?.weight.dispose();
    this.#folded?.bias.dispose();
    this.#folded = null;
  }

  override dispose(): void {
    this.#dropFolded();
    super.dispose();
  }
}

/** Applies convolutions in order (inside a tidy scope, which frees the intermediates). */
export function chain(x: Tensor, ...convs: BasicConv2d[]): Tensor {
  return convs.reduce((h, c) => c.forward(h), x);
}

/** The FID patch's 3x3 average pool: stride 1, padding 1, padded pixels not counted. */
export function avgPoolValid(x: Tensor): Tensor {
  return ops.avgPool2d(x, { kernel: 3, stride: 1, padding: 1, countIncludePad: false });
}

/** The 3x3 stride-2 max pool between stages and in the reduction blocks. */
export function maxPoolReduce(x: Tensor): Tensor {
  return ops.maxPool2d(x, { kernel: 3, stride: 2 });
}
