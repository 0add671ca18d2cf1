/**
 * A run of a dataset's items read into one uint8 batch with their labels: what every step
 * that trains on a small dataset held in memory needs (VQGAN, SSL encoder, domain
 * classifier, reconstructions). Every image must have the first one's size.
 */

import type { ImageBatch } from "../interfaces.ts";
import type { Dataset } from "./dataset.ts";

export interface ReadImagesOptions {
  /** Starts every error message (the step or part reading). */
  what: string;
  /** First item (default 0). */
  first?: number;
  /** Items to read (default: to the end of the dataset). */
  count?: number;
  /** Refuse non-square images. */
  square?: boolean;
  signal?: AbortSignal;
}

export async function readImages(
  dataset: Dataset,
  opts: ReadImagesOptions,
): Promise<ImageBatch & { labels: Int32Array }> {
  const { what } = opts;
  const first = opts.first ?? 0;
  const count = Math.min(dataset.length - first, opts.count ?? Infinity);
  if (!(count > 0)) {
    throw new Error(
      `${what}: dataset '${dataset.name}' has no images from index ${first} (length ${dataset.length})`,
    );
  }
  let data: Uint8Array | null = null;
  let height = 0, width = 0;
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    opts.signal?.throwIfAborted();
    const { image, label } = await dataset.get(first + i);
    if (!data) {
      ({ height, width } = image);
      if (opts.square && height !== width) {
        throw new Error(`${what}: images must be square, '${dataset.name}' has ${width}x${height}`);
      }
      data = new Uint8Array(count * height * width * 3);
    } else if (image.height !== height || image.width !== width) {
      throw new Error(
        `${what}: '${dataset.name}' item ${
          first + i
        } is ${image.width}x${image.height}, item ${first} is ${width}x${height}; crop them to one size`,
      );
    }
    data.set(image.data, i * height * width * 3);
    labels[i] = label;
  }
  return { data: data!, count, height, width, labels };
}
