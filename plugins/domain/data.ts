/**
 * Real images for the domain classifier: a dataset read once into memory (the demo's
 * datasets are a few thousand 32x32 images, ~6 MB), checked for what a classifier needs,
 * and augmented with small shifts and mirror flips so that it does not learn exact pixel
 * positions, and with blur and noise so that it does not key on texture: generated images
 * are judged by their shape, not by where it sits or how crisp its edges are.
 */

import type { Dataset } from "../../core/data/dataset.ts";
import { readImages } from "../../core/data/read_images.ts";
import type { ImageBatch } from "../../core/interfaces.ts";
import type { Rng } from "../../core/random.ts";

export interface LabelledImages extends ImageBatch {
  labels: Int32Array;
  /** Where the images came from, for messages. */
  name: string;
}

/** The first `limit` items of a dataset (all when absent); one image size, square. */
export async function readLabelled(
  dataset: Dataset,
  what: string,
  limit = dataset.length,
  signal?: AbortSignal,
): Promise<LabelledImages> {
  const batch = await readImages(dataset, { what, count: limit, square: true, signal });
  batch.labels.forEach((label, i) => {
    if (label >= dataset.numClasses || label < 0 || !Number.isInteger(label)) {
      throw new Error(
        `${what}: '${dataset.name}' item ${i} has label ${label}, outside its ${dataset.numClasses} classes`,
      );
    }
  });
  return { ...batch, name: dataset.name };
}

/** How many distinct labels occur. */
export function distinctLabels(labels: Int32Array): number {
  return new Set(labels).size;
}

export interface ClassifierAugment {
  /** Random shift in pixels, x and y. */
  shift: number;
  /** Mirror with probability 1/2. */
  flip: boolean;
  /** Probability of blurring an image (1 to 3 passes of a [1 2 1]/4 kernel per axis). */
  blur: number;
  /** Largest standard deviation of added Gaussian pixel noise, in 0..255 units. */
  noise: number;
}

/**
 * The images `rows` of `src`, each shifted by up to `shift` pixels in x and y (edges
 * replicated, so no black borders appear that real images never have), mirrored with
 * probability 1/2 when `flip`, then maybe blurred and given pixel noise. Why blur and noise:
 * without them a classifier trained on crisp real images labelled 57% of a VQGAN's slightly
 * soft but plainly recognizable reconstructions correctly; the judge must look at shape.
 * Draws come from `gen` only, so a resumed run repeats them.
 */
export function augmentedBatch(
  src: ImageBatch,
  rows: ArrayLike<number>,
  gen: Rng,
  aug: ClassifierAugment,
): ImageBatch {
  const { shift, flip } = aug;
  const { height: H, width: W } = src;
  const per = H * W * 3;
  const data = new Uint8Array(rows.length * per);
  for (let n = 0; n < rows.length; n++) {
    const dx = shift > 0 ? gen.int(2 * shift + 1) - shift : 0;
    const dy = shift > 0 ? gen.int(2 * shift + 1) - shift : 0;
    const mirror = flip && gen.uniform() < 0.5;
    const from = rows[n] * per;
    const to = n * per;
    for (let y = 0; y < H; y++) {
      const sy = Math.min(H - 1, Math.max(0, y - dy));
      for (let x = 0; x < W; x++) {
        const mx = mirror ? W - 1 - x : x;
        const sx = Math.min(W - 1, Math.max(0, mx - dx));
        const s = from + (sy * W + sx) * 3;
        const d = to + (y * W + x) * 3;
        data[d] = src.data[s];
        data[d + 1] = src.data[s + 1];
        data[d + 2] = src.data[s + 2];
      }
    }
    const image = data.subarray(to, to + per);
    if (aug.blur > 0 && gen.uniform() < aug.blur) {
      const passes = 1 + gen.int(3);
      for (let k = 0; k < passes; k++) blurOnce(image, H, W);
    }
    if (aug.noise > 0) {
      const std = aug.noise * gen.uniform();
      for (let i = 0; i < per; i++) {
        image[i] = Math.min(255, Math.max(0, Math.round(image[i] + std * gen.normal())));
      }
    }
  }
  return { data, count: rows.length, height: H, width: W };
}

/** One separable [1 2 1]/4 pass per axis, in place, edges replicated. */
function blurOnce(image: Uint8Array, H: number, W: number): void {
  const tmp = new Float32Array(H * W * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const l = Math.max(0, x - 1), r = Math.min(W - 1, x + 1);
      for (let c = 0; c < 3; c++) {
        tmp[(y * W + x) * 3 + c] = (image[(y * W + l) * 3 + c] + 2 * image[(y * W + x) * 3 + c] +
          image[(y * W + r) * 3 + c]) / 4;
      }
    }
  }
  for (let y = 0; y < H; y++) {
    const u = Math.max(0, y - 1), d = Math.min(H - 1, y + 1);
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < 3; c++) {
        image[(y * W + x) * 3 + c] = Math.round(
          (tmp[(u * W + x) * 3 + c] + 2 * tmp[(y * W + x) * 3 + c] + tmp[(d * W + x) * 3 + c]) / 4,
        );
      }
    }
  }
}

/** Images [first, first + count) of a batch, without copying. */
export function sliceBatch(src: ImageBatch, first: number, count: number): ImageBatch {
  const per = src.height * src.width * 3;
  return { ...src, count, data: src.data.subarray(first * per, (first + count) * per) };
}
