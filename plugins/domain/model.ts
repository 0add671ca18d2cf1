/**
 * The domain classifier: a small CNN that the project trains on a dataset's real images, so
 * that generated images can be judged by a network that knows the domain (class accuracy,
 * Frechet distance on its features, precision/recall) instead of by weight-free features.
 *
 *   input (N, 3, S, S) in [0, 1], mapped to [-1, 1]
 *   block 1: conv 3x3 stride 2 -> GroupNorm -> ReLU                    (S -> S/2)
 *   block 2, 3: conv 3x3 -> GroupNorm -> ReLU -> max-pool 2x2          (-> S/4 -> S/8)
 *   global max pool -> Linear(C3, featureDim) -> ReLU                  (penultimate features)
 *   Linear(featureDim, numClasses)                                      (logits)
 *
 * Why this shape (measured on 32x32 shapes, 2-core CPU): the full-resolution layer is the
 * costliest one, and a stride-2 first conv instead of conv + pool roughly halves the step
 * time at no loss in accuracy. Global *max* pooling ("is this pattern anywhere?") learned
 * much faster than average pooling for shapes at random positions (37% vs 18% held-out
 * accuracy after 150 steps). 500 steps of 32 give ~99% held-out accuracy on 10 classes.
 *
 * Why 64 feature dimensions (one trained classifier each, at the demo's sizes, 100 vs 500
 * images): with 32, FD was steadier (fresh real sets at 1.1x-1.3x the floor, against 1.0x-2.2x
 * with 64), but uniform noise landed inside the k-NN balls of real images: precision 0.76 for
 * noise, against 0.07 with 64. Precision must reject noise, and 2.2x is still far below what
 * bad sets score (noise and single-class sets: ~1000x the floor; grey images: ~3x). k-NN
 * recall stays fragile either way: 100 images of one class reached recall 0.72 with 64
 * dimensions (0.15 with 32); FD and the IS analogue (1.1 against ~8.4) are what expose that.
 *
 * The penultimate layer is post-ReLU, like Inception's pool3 that FID uses: the features
 * FD and precision/recall are computed on are what the head reads.
 */

import type { ImageBatch } from "../../core/interfaces.ts";
import { Conv2d, GroupNorm, Linear, Module } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import type { Tensor } from "../../core/tensor.ts";

export interface DomainClassifierConfig {
  /** Side of the (square) input images in pixels; a multiple of 8. */
  imageSize: number;
  numClasses: number;
  /** Output channels of the three conv blocks. */
  channels: [number, number, number];
  /** Width of the penultimate (feature) layer. */
  featureDim: number;
  /** GroupNorm groups per block (must divide each block's channels). */
  groups: number;
}

export const DEFAULT_CLASSIFIER: Omit<DomainClassifierConfig, "imageSize" | "numClasses"> = {
  channels: [16, 32, 64],
  featureDim: 64,
  groups: 8,
};

/** The architecture's own checks, with messages that name the offending key. */
export function checkClassifierConfig(c: DomainClassifierConfig, what: string): void {
  if (!Number.isInteger(c.imageSize) || c.imageSize < 8 || c.imageSize % 8 !== 0) {
    throw new Error(`${what}: image size ${c.imageSize} must be a multiple of 8 (three 2x2 pools)`);
  }
  if (!Number.isInteger(c.numClasses) || c.numClasses < 2) {
    throw new Error(
      `${what}: the dataset has ${c.numClasses} class(es); a classifier needs at least 2`,
    );
  }
  for (const ch of c.channels) {
    if (ch % c.groups !== 0) {
      throw new Error(`${what}: ${c.groups} GroupNorm groups do not divide ${ch} channels`);
    }
  }
}

class ConvBlock extends Module {
  readonly conv: Conv2d;
  readonly norm: GroupNorm;
  /** `stride` 2 downsamples in the conv; stride 1 is followed by a 2x2 max-pool. */
  constructor(inC: number, outC: number, groups: number, readonly stride: 1 | 2, gen: Rng) {
    super();
    this.conv = this.child("conv", new Conv2d(inC, outC, 3, { padding: 1, stride, gen }));
    this.norm = this.child("norm", new GroupNorm(groups, outC));
  }
  forward(x: Tensor): Tensor {
    const h = ops.relu(this.norm.forward(this.conv.forward(x)));
    return this.stride === 2 ? h : ops.maxPool2d(h, { kernel: 2 });
  }
}

export class DomainClassifier extends Module {
  readonly blocks: ConvBlock[];
  readonly fc: Linear;
  readonly head: Linear;

  constructor(readonly cfg: DomainClassifierConfig, seed = 0) {
    super();
    checkClassifierConfig(cfg, "domain classifier");
    const gen = new Rng(seed);
    const [c1, c2, c3] = cfg.channels;
    this.blocks = this.list("blocks", [
      new ConvBlock(3, c1, cfg.groups, 2, gen),
      new ConvBlock(c1, c2, cfg.groups, 1, gen),
      new ConvBlock(c2, c3, cfg.groups, 1, gen),
    ]);
    this.fc = this.child("fc", new Linear(c3, cfg.featureDim, { gen }));
    this.head = this.child("head", new Linear(cfg.featureDim, cfg.numClasses, { gen }));
  }

  /** (N, 3, S, S) in [0, 1] -> (N, featureDim) penultimate features. */
  features(x: Tensor): Tensor {
    let h = ops.affine(x, 2, -1);
    for (const b of this.blocks) h = b.forward(h);
    const [n, c, height, width] = h.shape;
    const pooled = ops.reshape(ops.maxPool2d(h, { kernel: [height, width] }), [n, c]);
    return ops.relu(this.fc.forward(pooled));
  }

  /** (N, featureDim) features -> (N, numClasses) logits. */
  logits(features: Tensor): Tensor {
    return this.head.forward(features);
  }

  forward(x: Tensor): Tensor {
    return this.logits(this.features(x));
  }
}

/** uint8 NHWC images -> float (N, 3, H, W) in [0, 1]. */
export function batchToTensor(batch: ImageBatch): Tensor {
  const { count, height: H, width: W } = batch;
  const plane = H * W;
  const out = new Float32Array(count * 3 * plane);
  for (let n = 0; n < count; n++) {
    const src = n * plane * 3;
    const dst = n * 3 * plane;
    for (let p = 0; p < plane; p++) {
      out[dst + p] = batch.data[src + 3 * p] / 255;
      out[dst + plane + p] = batch.data[src + 3 * p + 1] / 255;
      out[dst + 2 * plane + p] = batch.data[src + 3 * p + 2] / 255;
    }
  }
  return ops.tensor(out, [count, 3, H, W]);
}
