/**
 * A complete encoder plugin: swap DINOv2 for your own feature extractor.
 *
 * `RandomProjectionEncoder` cuts each image into P x P patches and maps every patch's pixels
 * (centred to [-1, 1]) through one fixed, seeded Gaussian projection to `dim` features. It
 * needs no weights, runs anywhere, and is enough to see the whole tokenizer pipeline
 * (dump-features -> fit-kmeans -> tokenize-dataset) work end to end with another encoder.
 *
 * Load it from a task file and name it where an encoder is asked for:
 *
 *   plugins: [../examples/custom-encoder/plugin.ts]
 *   steps:
 *     - name: features
 *       type: dump-features
 *       params:
 *         dataset: { kind: imagefolder, root: data/train }
 *         encoder: { name: random-projection, options: { image_size: 64, patch: 8, dim: 32 } }
 *
 * The `Encoder` interface (core/interfaces.ts, exported by mod.ts) has exactly six members:
 *   readonly name: string; readonly inputSize: number; readonly gridSize: number;
 *   readonly featureDim: number;
 *   preprocess(images: ImageBatch): Tensor   uint8 NHWC -> (N, 3, inputSize, inputSize)
 *   encode(input: Tensor): Tensor            -> (N, gridSize * gridSize, featureDim)
 * The tokenizer also uses two members outside the interface when a class has them:
 * `imageSize` (the crop side to hand over, when it differs from inputSize) and `dispose()`
 * (called when the tokenizer made the encoder). This class has `dispose()`.
 *
 * Everything comes from the package root, mod.ts (in your own project, the package's
 * specifier instead of the relative path).
 */

import {
  definePlugin,
  type Encoder,
  type ImageBatch,
  noGrad,
  ops,
  Rng,
  s,
  type Tensor,
  tidy,
} from "../../mod.ts";

export interface RandomProjectionOptions {
  /** Side of the (square) input images. */
  imageSize: number;
  /** Side of a patch; imageSize must be a multiple of it. */
  patch: number;
  /** Features per patch. */
  dim: number;
  /** Seed of the projection matrix. */
  seed: number;
}

export class RandomProjectionEncoder implements Encoder {
  readonly name: string;
  readonly inputSize: number;
  readonly gridSize: number;
  readonly featureDim: number;
  /** (dim, 3 * patch * patch), scaled by 1/sqrt(fan-in) so features are O(1). */
  readonly #projection: Tensor;

  constructor(readonly opts: RandomProjectionOptions) {
    const { imageSize, patch, dim, seed } = opts;
    if (imageSize % patch !== 0) {
      throw new Error(
        `random-projection: image size ${imageSize} is not a multiple of patch ${patch}`,
      );
    }
    this.name = `random-projection-${imageSize}px-p${patch}-d${dim}`;
    this.inputSize = imageSize;
    this.gridSize = imageSize / patch;
    this.featureDim = dim;
    const fanIn = 3 * patch * patch;
    // `.keep()`: a tensor made inside a `tidy` scope is freed when the scope ends unless it
    // is returned or kept. The projection lives as long as the encoder (until dispose()),
    // and the plugin may be built inside someone's tidy, so keep it.
    this.#projection = ops.randn([dim, fanIn], new Rng(seed), 1 / Math.sqrt(fanIn)).keep();
  }

  preprocess(images: ImageBatch): Tensor {
    const { count, height, width, data } = images;
    if (height !== this.inputSize || width !== this.inputSize) {
      throw new Error(
        `${this.name}: images are ${height}x${width}, expected ${this.inputSize}x${this.inputSize}`,
      );
    }
    // NHWC uint8 -> NCHW in [-1, 1].
    const plane = height * width;
    const x = new Float32Array(count * 3 * plane);
    for (let n = 0; n < count; n++) {
      for (let i = 0; i < plane; i++) {
        for (let c = 0; c < 3; c++) {
          x[(n * 3 + c) * plane + i] = data[(n * plane + i) * 3 + c] / 127.5 - 1;
        }
      }
    }
    return ops.tensor(x, [count, 3, height, width]);
  }

  encode(input: Tensor): Tensor {
    const [N, C, H, W] = input.shape;
    const P = this.opts.patch, G = this.gridSize;
    if (C !== 3 || H !== this.inputSize || W !== this.inputSize) {
      throw new Error(
        `${this.name}: encode expects (N, 3, ${this.inputSize}, ${this.inputSize}), got [${input.shape}]`,
      );
    }
    // `noGrad`: no autograd graph is recorded (features are never trained through, so the
    // graph would only hold memory). `tidy` frees the reshaped and permuted intermediates
    // and keeps only the returned features.
    return noGrad(() =>
      tidy(() => {
        // (N, 3, G, P, G, P) -> (N, G, G, 3, P, P) -> (N, G*G, 3*P*P): one row per patch, raster order.
        const patches = ops.reshape(
          ops.permute(ops.reshape(input, [N, 3, G, P, G, P]), [0, 2, 4, 1, 3, 5]),
          [N, G * G, 3 * P * P],
        );
        return ops.linear(patches, this.#projection);
      })
    );
  }

  /** Not part of `Encoder`: the tokenizer calls it when it made the encoder. */
  dispose(): void {
    this.#projection.dispose();
  }
}

export default definePlugin({
  name: "example-random-projection",
  version: "0.1.0",
  description: "example: a weight-free random-projection patch encoder",
  register(r) {
    r.encoder({
      name: "random-projection",
      description: "fixed Gaussian projection of each P x P patch",
      options: s.object({
        image_size: s.int({ min: 1 }).default(64),
        patch: s.int({ min: 1 }).default(8),
        dim: s.int({ min: 1 }).default(32),
        seed: s.int().default(0),
      }),
      create: (o) =>
        new RandomProjectionEncoder({
          imageSize: o.image_size,
          patch: o.patch,
          dim: o.dim,
          seed: o.seed,
        }),
    });
  },
});
