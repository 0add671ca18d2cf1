/**
 * Image files for the demo: a dataset written out as numbered PNGs (the held-out reference
 * set the Frechet distances compare against) and an enlarged contact sheet to look at.
 */

import type { Dataset } from "../../core/data/dataset.ts";
import { readImage, writePng } from "../../core/image/codec.ts";
import type { RgbImage } from "../../core/image/rgb.ts";
import { labelRows, writeLabels } from "../../core/data/labels.ts";

/**
 * Tiles `images` into a grid, `columns` wide, each enlarged `scale` times (nearest
 * neighbour, so the pixels the model made stay visible) with a `gap`-pixel white border.
 */
export function contactSheet(
  images: readonly RgbImage[],
  columns: number,
  scale = 1,
  gap = 2,
): RgbImage {
  if (images.length === 0) throw new Error("contactSheet: no images");
  const { width: w, height: h } = images[0];
  const cols = Math.min(columns, images.length);
  const rows = Math.ceil(images.length / cols);
  const cw = w * scale, ch = h * scale;
  const width = cols * (cw + gap) + gap, height = rows * (ch + gap) + gap;
  const data = new Uint8Array(width * height * 3).fill(255);
  images.forEach((img, k) => {
    if (img.width !== w || img.height !== h) {
      throw new Error(
        `contactSheet: image ${k} is ${img.width}x${img.height}, the first is ${w}x${h}`,
      );
    }
    const x0 = gap + (k % cols) * (cw + gap), y0 = gap + Math.floor(k / cols) * (ch + gap);
    for (let y = 0; y < ch; y++) {
      const src = Math.floor(y / scale) * w;
      for (let x = 0; x < cw; x++) {
        const s = (src + Math.floor(x / scale)) * 3, d = ((y0 + y) * width + x0 + x) * 3;
        data[d] = img.data[s];
        data[d + 1] = img.data[s + 1];
        data[d + 2] = img.data[s + 2];
      }
    }
  });
  return { width, height, data };
}

/** PNG file names of a folder in natural order ("2.png" before "10.png"). */
export async function pngFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.toLowerCase().endsWith(".png")) names.push(e.name);
  }
  return names.sort(new Intl.Collator("en", { numeric: true }).compare);
}

/** A contact sheet of the first `count` PNGs of a folder. */
export async function folderSheet(
  dir: string,
  count: number,
  columns: number,
  scale: number,
): Promise<RgbImage> {
  const names = (await pngFiles(dir)).slice(0, count);
  if (names.length === 0) throw new Error(`folderSheet: '${dir}' has no PNG images`);
  return contactSheet(
    await Promise.all(names.map((n) => readImage(`${dir}/${n}`))),
    columns,
    scale,
  );
}

export interface ExportOptions {
  /** Items to write: 0..count-1. */
  count: number;
  /** Folder of `00000.png`, ... (created). */
  dir: string;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Writes dataset items as PNGs plus `labels.tsv` (file, class id, class name: the dataset's
 * labels, which the domain metric checks samples against); returns the images (for a contact sheet).
 */
export async function exportDataset(dataset: Dataset, opts: ExportOptions): Promise<RgbImage[]> {
  if (opts.count > dataset.length) {
    throw new Error(
      `export-images: ${opts.count} images asked for, dataset '${dataset.name}' has ${dataset.length}`,
    );
  }
  await Deno.mkdir(opts.dir, { recursive: true });
  const images: RgbImage[] = [];
  const files: string[] = [], labels: number[] = [];
  for (let i = 0; i < opts.count; i++) {
    opts.signal?.throwIfAborted();
    const { image, label } = await dataset.get(i);
    files.push(`${String(i).padStart(5, "0")}.png`);
    labels.push(label);
    await writePng(`${opts.dir}/${files[i]}`, image);
    images.push(image);
    if ((i + 1) % 64 === 0 || i + 1 === opts.count) opts.onProgress?.(i + 1, opts.count);
  }
  await writeLabels(opts.dir, labelRows(files, labels, dataset.classNames));
  return images;
}
