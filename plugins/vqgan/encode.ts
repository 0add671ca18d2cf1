/**
 * VQ codes of a whole dataset, the stage-2 training targets (DiGIT computes them on the
 * fly with `vqgan.encode`; we compute them once): images are resized (short side) and
 * centre-cropped to the VQGAN's resolution when needed, encoded in batches, and written
 * as a core token file (I32 codes, vocab = codebook size, labels kept).
 */

import type { Dataset } from "../../core/data/dataset.ts";
import { centerCrop, resizeShortSide } from "../../core/image/transforms.ts";
import type { RgbImage } from "../../core/image/rgb.ts";
import { writeTokenFile } from "../../core/io/tokens.ts";
import type { VQGAN } from "./vqgan.ts";

export interface EncodeOptions {
  first?: number;
  count?: number;
  batchSize?: number;
  /** The file's `source` text (default: the dataset and the range encoded). A shard passes the whole run's. */
  source?: string;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/** An image at size x size: short side resized (bicubic, as PIL), then centre-cropped. */
export function fitSquare(img: RgbImage, size: number): RgbImage {
  if (img.width === size && img.height === size) return img;
  return centerCrop(resizeShortSide(img, size, "bicubic"), size);
}

/** The `source` text of a token file of the codes of images [first, first + count). */
export function encodeSource(dataset: Dataset, first: number, count: number): string {
  return `vqgan codes of ${dataset.name} [${first}, ${first + count})`;
}

export async function encodeDataset(
  model: VQGAN,
  dataset: Dataset,
  outPath: string,
  opts: EncodeOptions = {},
): Promise<void> {
  const first = opts.first ?? 0;
  const count = Math.min(opts.count ?? dataset.length - first, dataset.length - first);
  if (!(count > 0)) {
    throw new Error(`encodeDataset: no images in '${dataset.name}' from index ${first}`);
  }
  const R = model.imageSize, B = opts.batchSize ?? model.batchSize;
  const per = R * R * 3;
  const g = model.gridSize;
  const tokens = new Int32Array(count * g * g);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i += B) {
    opts.signal?.throwIfAborted();
    const n = Math.min(B, count - i);
    const data = new Uint8Array(n * per);
    for (let k = 0; k < n; k++) {
      const sample = await dataset.get(first + i + k);
      data.set(fitSquare(sample.image, R).data, k * per);
      labels[i + k] = sample.label;
    }
    const grid = await model.encode({ data, count: n, height: R, width: R });
    tokens.set(grid.tokens, i * g * g);
    opts.onProgress?.(i + n, count);
  }
  await writeTokenFile(outPath, {
    tokens,
    count,
    height: g,
    width: g,
    vocab: model.cfg.nEmbed,
    labels,
    source: opts.source ?? encodeSource(dataset, first, count),
  });
}
