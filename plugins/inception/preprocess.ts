/**
 * torch-fidelity's input pipeline for the Inception feature extractor, on uint8 images:
 *   uint8 -> float32 -> TF1-style bilinear resize to 299x299 (align_corners=False, no
 *   half-pixel offset) -> (x - 128) / 128.
 * The resize is core/image/resize_tf1.ts, bit-exact with torch-fidelity on CPU.
 */

import type { Backend } from "../../core/backend.ts";
import { resizeBilinearTf1Planes } from "../../core/image/resize_tf1.ts";
import type { ImageBatch } from "../../core/interfaces.ts";
import * as ops from "../../core/ops/mod.ts";
import type { Tensor } from "../../core/tensor.ts";
import { INCEPTION_INPUT_SIZE } from "./model.ts";

/** Checks that `images` is a well-formed NHWC uint8 RGB batch; `what` names it in errors. */
export function checkImageBatch(images: ImageBatch, what = "images"): void {
  const { count, height, width, data } = images;
  if (![count, height, width].every((v) => Number.isInteger(v) && v > 0)) {
    throw new Error(
      `${what}: batch needs positive integer count/height/width, got ${count}x${height}x${width}`,
    );
  }
  if (data.length !== count * height * width * 3) {
    throw new Error(
      `${what}: ${count} RGB images of ${height}x${width} need ${
        count * height * width * 3
      } bytes, got ${data.length}`,
    );
  }
}

/** Images [start, end) of a batch as NCHW float planes, resized TF1-style, not yet scaled. */
export function resizeForInception(
  images: ImageBatch,
  start = 0,
  end = images.count,
  size = INCEPTION_INPUT_SIZE,
) {
  const { height: H, width: W, data } = images;
  const n = end - start;
  const plane = H * W;
  const chw = new Float32Array(n * 3 * plane);
  for (let i = 0; i < n; i++) {
    const src = (start + i) * plane * 3;
    const dst = i * 3 * plane;
    for (let p = 0; p < plane; p++) {
      chw[dst + p] = data[src + 3 * p];
      chw[dst + plane + p] = data[src + 3 * p + 1];
      chw[dst + 2 * plane + p] = data[src + 3 * p + 2];
    }
  }
  return resizeBilinearTf1Planes(chw, n * 3, H, W, size, size);
}

/** The network input for images [start, end): (n, 3, 299, 299) float32 in [-1, 1]. */
export function inceptionInput(
  images: ImageBatch,
  start = 0,
  end = images.count,
  backend?: Backend,
): Tensor {
  checkImageBatch(images);
  if (
    !(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start < end &&
      end <= images.count)
  ) {
    throw new Error(`inceptionInput: bad range [${start}, ${end}) of ${images.count} images`);
  }
  const x = resizeForInception(images, start, end);
  // float32 (x - 128), then an exact division by a power of two, as torch computes it.
  for (let i = 0; i < x.length; i++) x[i] = Math.fround(x[i] - 128) / 128;
  const S = INCEPTION_INPUT_SIZE;
  return ops.tensor(x, [end - start, 3, S, S], { backend });
}
