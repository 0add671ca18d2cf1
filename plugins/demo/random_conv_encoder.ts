/**
 * A weight-free feature extractor for Frechet distances on small images: three seeded,
 * randomly initialised 3x3 convolutions with ReLU and 2x2 average pooling between them.
 *
 * Why not the tokenizer's random-projection encoder: it is linear in the pixels, so its
 * mean-pooled features only see average colours. Random ReLU networks respond to edges,
 * corners and blobs, which is what separates a star from a blur, and they need no download
 * (the demo runs offline). The numbers are comparable only between runs of the same encoder
 * options; they are not FID.
 */

import { normalizeBatch } from "../../core/image/pipelines.ts";
import { noGrad } from "../../core/autograd.ts";
import type { Encoder, ImageBatch } from "../../core/interfaces.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";

const HALF = [0.5, 0.5, 0.5];

export interface RandomConvOptions {
  /** Side of the square input images; a multiple of 4. */
  imageSize: number;
  /** Channels of the three convolutions. */
  channels: [number, number, number];
  seed: number;
}

export class RandomConvEncoder implements Encoder {
  readonly name: string;
  readonly inputSize: number;
  /** Two 2x2 poolings: a 32 px image gives an 8x8 grid. */
  readonly gridSize: number;
  readonly featureDim: number;
  readonly #weights: Tensor[];

  constructor(readonly opts: RandomConvOptions) {
    const { imageSize, channels, seed } = opts;
    if (!Number.isInteger(imageSize) || imageSize < 4 || imageSize % 4 !== 0) {
      throw new Error(`random-conv: image_size ${imageSize} must be a positive multiple of 4`);
    }
    this.name = `random-conv-${imageSize}px-${channels.join("-")}-s${seed}`;
    this.inputSize = imageSize;
    this.gridSize = imageSize / 4;
    this.featureDim = channels[2];
    const gen = new Rng(seed);
    let inC = 3;
    // He-normal initialisation keeps activations O(1) through the ReLUs.
    this.#weights = channels.map((outC) => {
      const w = ops.randn([outC, inC, 3, 3], gen, Math.sqrt(2 / (inC * 9))).keep();
      inC = outC;
      return w;
    });
  }

  /** uint8 NHWC -> (N, 3, S, S) in [-1, 1]. */
  preprocess(images: ImageBatch): Tensor {
    const { count, height, width } = images;
    if (height !== this.inputSize || width !== this.inputSize) {
      throw new Error(
        `${this.name}: images are ${height}x${width}, expected ${this.inputSize}x${this.inputSize}`,
      );
    }
    // (v / 255 - 0.5) / 0.5: [-1, 1].
    return ops.tensor(normalizeBatch(images, HALF, HALF), [count, 3, height, width]);
  }

  /** (N, 3, S, S) -> (N, (S/4)^2, channels[2]), raster order. */
  encode(input: Tensor): Tensor {
    const [N, C, H, W] = input.shape;
    if (C !== 3 || H !== this.inputSize || W !== this.inputSize) {
      throw new Error(
        `${this.name}: encode expects (N, 3, ${this.inputSize}, ${this.inputSize}), got [${input.shape}]`,
      );
    }
    const [w1, w2, w3] = this.#weights;
    return noGrad(() =>
      tidy(() => {
        let h = ops.relu(ops.conv2d(input, w1, null, { padding: 1 }));
        h = ops.relu(ops.conv2d(ops.avgPool2d(h, { kernel: 2 }), w2, null, { padding: 1 }));
        h = ops.relu(ops.conv2d(ops.avgPool2d(h, { kernel: 2 }), w3, null, { padding: 1 }));
        const G = this.gridSize;
        return ops.reshape(ops.permute(h, [0, 2, 3, 1]), [N, G * G, this.featureDim]);
      })
    );
  }

  dispose(): void {
    for (const w of this.#weights) w.dispose();
  }
}
