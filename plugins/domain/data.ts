/**
 * Real images for the domain classifier: a dataset read once into memory (the demo's
 * datasets are a few thousand 32x32 images, ~6 MB), checked for what a classifier needs,
 * and augmented with small shifts and mirror flips so that it does not learn exact pixel
 * positions: generated images are judged by their shape, not by where it sits.
 */

import type { Dataset } from "../../core/data/dataset.ts";
import { readImages } from "../../core/data/read_images.ts";
import type { ImageBatch } from "../../core/interfaces.ts";
import type { Generator } from "../../core/random.ts";

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

/**
 * The images `rows` of `src`, each shifted by up to `shift` pixels in x and y (edges
 * replicated, so no black borders appear that real images never have) and mirrored with
 * probability 1/2 when `flip`. Draws come from `gen` only, so a resumed run repeats them.
 */
export function augmentedBatch(
  src: ImageBatch,
  rows: ArrayLike<number>,
  gen: Generator,
  shift: number,
  flip: boolean,
): ImageBatch {
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
  }
  return { data, count: rows.length, height: H, width: W };
}

/** Images [first, first + count) of a batch, without copying. */
export function sliceBatch(src: ImageBatch, first: number, count: number): ImageBatch {
  const per = src.height * src.width * 3;
  return { ...src, count, data: src.data.subarray(first * per, (first + count) * per) };
}
