/**
 * Moving images between uint8 batches (NHWC, what files hold) and float tensors (NCHW in
 * [0, 1], what the VQGAN reads and writes), plus PSNR and a tiled grid for previews.
 */

import type { ImageBatch } from "../../core/interfaces.ts";
import * as ops from "../../core/ops/mod.ts";
import type { Tensor } from "../../core/tensor.ts";
import type { RgbImage } from "../../core/image/rgb.ts";

/** uint8 NHWC -> float (N, 3, H, W) in [0, 1] (torchvision's ToTensor). */
export function imagesToTensor(batch: ImageBatch, first = 0, count = batch.count - first): Tensor {
  const { height: H, width: W } = batch;
  const plane = H * W;
  if (first < 0 || count < 0 || first + count > batch.count) {
    throw new Error(
      `imagesToTensor: images ${first}..${first + count - 1} outside a batch of ${batch.count}`,
    );
  }
  const out = new Float32Array(count * 3 * plane);
  for (let n = 0; n < count; n++) {
    const src = (first + n) * plane * 3;
    const dst = n * 3 * plane;
    for (let p = 0; p < plane; p++) {
      out[dst + p] = batch.data[src + 3 * p] / 255;
      out[dst + plane + p] = batch.data[src + 3 * p + 1] / 255;
      out[dst + 2 * plane + p] = batch.data[src + 3 * p + 2] / 255;
    }
  }
  return ops.tensor(out, [count, 3, H, W]);
}

/**
 * Float (N, 3, H, W) -> uint8 NHWC as DiGIT and MAGE write PNGs: clip(x*255, 0, 255) then
 * truncation (astype(uint8)), not rounding. The product is rounded to f32 first, as numpy does.
 */
export function floatToImages(
  data: Float32Array,
  count: number,
  height: number,
  width: number,
): ImageBatch {
  const plane = height * width;
  if (data.length !== count * 3 * plane) {
    throw new Error(
      `floatToImages: ${data.length} values do not make ${count}x3x${height}x${width}`,
    );
  }
  const out = new Uint8Array(count * plane * 3);
  for (let n = 0; n < count; n++) {
    for (let c = 0; c < 3; c++) {
      const src = (n * 3 + c) * plane;
      for (let p = 0; p < plane; p++) {
        const v = Math.fround(data[src + p] * 255);
        out[(n * plane + p) * 3 + c] = v <= 0 ? 0 : v >= 255 ? 255 : Math.floor(v);
      }
    }
  }
  return { data: out, count, height, width };
}

export async function tensorToImages(x: Tensor): Promise<ImageBatch> {
  const [N, C, H, W] = x.shape;
  if (x.ndim !== 4 || C !== 3) {
    throw new Error(`tensorToImages: expected (N, 3, H, W), got [${x.shape}]`);
  }
  return floatToImages((await x.data()) as Float32Array, N, H, W);
}

/** Peak signal-to-noise ratio (dB) between two uint8 batches, over all pixels. */
export function psnr(a: ImageBatch, b: ImageBatch): number {
  if (a.data.length !== b.data.length) {
    throw new Error(`psnr: batches differ in size (${a.data.length} vs ${b.data.length} bytes)`);
  }
  let se = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = a.data[i] - b.data[i];
    se += d * d;
  }
  const mse = se / a.data.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

/** One image of a batch as an RgbImage (a copy). */
export function imageAt(batch: ImageBatch, index: number): RgbImage {
  const n = batch.height * batch.width * 3;
  return {
    width: batch.width,
    height: batch.height,
    data: batch.data.slice(index * n, (index + 1) * n),
  };
}

/**
 * A contact sheet: `columns` images per row, each shrunk by an integer box filter to at most
 * `cell` pixels, with a `gap`-pixel white border. Images are added one at a time, so a
 * caller never needs the whole set in memory.
 */
export class ContactSheet {
  readonly image: RgbImage;
  readonly factor: number;
  readonly cellW: number;
  readonly cellH: number;
  #count = 0;

  constructor(
    readonly slots: number,
    readonly columns: number,
    imageH: number,
    imageW: number,
    cell = 128,
    readonly gap = 2,
  ) {
    this.factor = Math.max(1, Math.ceil(Math.max(imageH, imageW) / cell));
    this.cellH = Math.floor(imageH / this.factor);
    this.cellW = Math.floor(imageW / this.factor);
    const rows = Math.max(1, Math.ceil(slots / columns));
    const width = columns * (this.cellW + gap) + gap;
    const height = rows * (this.cellH + gap) + gap;
    this.image = { width, height, data: new Uint8Array(width * height * 3).fill(255) };
  }

  get full(): boolean {
    return this.#count >= this.slots;
  }

  /** Place the next image (ignored once the sheet is full). */
  add(img: RgbImage): void {
    if (this.full) return;
    const k = this.#count++;
    const x0 = this.gap + (k % this.columns) * (this.cellW + this.gap);
    const y0 = this.gap + Math.floor(k / this.columns) * (this.cellH + this.gap);
    const f = this.factor;
    const area = f * f;
    for (let y = 0; y < this.cellH; y++) {
      for (let x = 0; x < this.cellW; x++) {
        for (let c = 0; c < 3; c++) {
          let s = 0;
          for (let dy = 0; dy < f; dy++) {
            const row = (y * f + dy) * img.width;
            for (let dx = 0; dx < f; dx++) s += img.data[(row + x * f + dx) * 3 + c];
          }
          this.image.data[((y0 + y) * this.image.width + x0 + x) * 3 + c] = Math.round(s / area);
        }
      }
    }
  }
}
