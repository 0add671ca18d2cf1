/**
 * A toy encoder for metric tests: one feature vector per pixel, its RGB values in [0, 1], so
 * a Frechet distance on it compares the colour statistics of two image sets.
 */

import type { Encoder, ImageBatch } from "../../core/interfaces.ts";
import * as ops from "../../core/ops/mod.ts";
import type { Tensor } from "../../core/tensor.ts";

export class PixelEncoder implements Encoder {
  readonly name = "pixels";
  readonly inputSize = 32;
  readonly gridSize = 32;
  readonly featureDim = 3;
  preprocess(images: ImageBatch): Tensor {
    const data = Float32Array.from(images.data, (v) => v / 255);
    return ops.tensor(data, [images.count, images.height * images.width, 3]);
  }
  encode(input: Tensor): Tensor {
    return ops.identity(input);
  }
}
