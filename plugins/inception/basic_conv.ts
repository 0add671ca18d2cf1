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
  fold(): void {
    this.#dropFolded();
    const w = this.conv.weight.dataSync() as Float32Array;
    const gamma = this.bn.weight.dataSync();
    const beta = this.bn.bias.dataSync();
    const mean = this.bn.runningMean.dataSync();
    const variance = this.bn.runningVar.dataSync();
    const perOut = w.length / this.outC;
    const fw = new Float32Array(w.length);
    const fb = new Float32Array(this.outC);
    for (let o = 0; o < this.outC; o++) {
      const alpha = gamma[o] / Math.sqrt(variance[o] + BN_EPS);
      for (let i = o * perOut; i < (o + 1) * perOut; i++) fw[i] = w[i] * alpha;
      fb[o] = beta[o] - mean[o] * alpha;
    }
    this.#folded = {
      weight: ops.tensor(fw, this.conv.weight.shape).keep(),
      bias: ops.tensor(fb, [this.outC]).keep(),
    };
  }

  forward(x: Tensor): Tensor {
    if (!this.#folded) this.fold();
    const { weight, bias } = this.#folded!;
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

/** Runs `fn` on each tensor-producing branch and concatenates along channels, freeing parts. */
export function concatChannels(parts: Tensor[]): Tensor {
  const out = ops.cat(parts, 1);
  for (const p of parts) p.dispose();
  return out;
}
