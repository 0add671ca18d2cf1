/**
 * torchvision (0.14) transforms on RgbImage, with torchvision's own arithmetic:
 *  - resizeShortSide = Resize(size): short side to `size`, long side int(size*long/short);
 *  - centerCrop = CenterCrop: offsets int(round((in-out)/2)) with Python's round-half-even,
 *    zero padding when the crop is larger than the image (as F.center_crop pads);
 *  - randomCrop / randomHorizontalFlip draw from our seeded Rng instead of torch's;
 *  - toTensor: CHW float32 in [0,1], value/255 rounded to f32;
 *  - normalize: (x - mean) / std in float32.
 * Resizing goes through resample_pil.ts, bit-exact with PIL.
 */

import type { Rng } from "../random.ts";
import { type PilFilter, resizePil } from "./resample_pil.ts";
import type { FloatImage, RgbImage } from "./rgb.ts";

export { type PilFilter, resamplePil, resizePil } from "./resample_pil.ts";

export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];

/** torchvision's output size for Resize(size) with an int size (short side). */
export function shortSideSize(width: number, height: number, size: number): [number, number] {
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((size * long) / short); // Python int(size * long / short)
  return width <= height ? [size, newLong] : [newLong, size];
}

/** torchvision Resize(size): the short side becomes `size`, aspect kept. */
export function resizeShortSide(
  img: RgbImage,
  size: number,
  filter: PilFilter = "bilinear",
): RgbImage {
  const [w, h] = shortSideSize(img.width, img.height, size);
  if (w === img.width && h === img.height) return img;
  return resizePil(img, w, h, filter);
}

/** Copy the window (top, left, height, width); parts outside the image are zero. */
export function crop(
  img: RgbImage,
  top: number,
  left: number,
  height: number,
  width: number,
): RgbImage {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const sy = top + y;
    if (sy < 0 || sy >= img.height) continue;
    const x0 = Math.max(0, -left);
    const x1 = Math.min(width, img.width - left);
    if (x1 <= x0) continue;
    const src = (sy * img.width + left + x0) * 3;
    out.set(img.data.subarray(src, src + (x1 - x0) * 3), (y * width + x0) * 3);
  }
  return { width, height, data: out };
}

/** Python's round(): half to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision CenterCrop(size) (size: [height, width] or a square side). */
export function centerCrop(img: RgbImage, size: number | [number, number]): RgbImage {
  const [ch, cw] = typeof size === "number" ? [size, size] : size;
  let { width: w, height: h } = img;
  let padLeft = 0;
  let padTop = 0;
  if (cw > w || ch > h) {
    // F.center_crop pads (left = (cw-w)//2, top = (ch-h)//2) then crops.
    padLeft = cw > w ? Math.floor((cw - w) / 2) : 0;
    padTop = ch > h ? Math.floor((ch - h) / 2) : 0;
    const padRight = cw > w ? Math.floor((cw - w + 1) / 2) : 0;
    const padBottom = ch > h ? Math.floor((ch - h + 1) / 2) : 0;
    w += padLeft + padRight;
    h += padTop + padBottom;
  }
  const top = roundHalfEven((h - ch) / 2);
  const left = roundHalfEven((w - cw) / 2);
  return crop(img, top - padTop, left - padLeft, ch, cw);
}

/** torchvision RandomCrop(size) without padding; offsets drawn from `gen`. */
export function randomCrop(
  img: RgbImage,
  size: number | [number, number],
  gen: Rng,
): RgbImage {
  const [th, tw] = typeof size === "number" ? [size, size] : size;
  if (img.height < th || img.width < tw) {
    throw new Error(`randomCrop: crop ${th}x${tw} larger than image ${img.height}x${img.width}`);
  }
  if (img.height === th && img.width === tw) return img;
  const top = gen.int(img.height - th + 1);
  const left = gen.int(img.width - tw + 1);
  return crop(img, top, left, th, tw);
}

export function horizontalFlip(img: RgbImage): RgbImage {
  const { width, height } = img;
  const out = new Uint8Array(img.data.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * 3;
      const d = (y * width + width - 1 - x) * 3;
      out[d] = img.data[s];
      out[d + 1] = img.data[s + 1];
      out[d + 2] = img.data[s + 2];
    }
  }
  return { width, height, data: out };
}

/** torchvision RandomHorizontalFlip(p): flips when a uniform draw is below p. */
export function randomHorizontalFlip(img: RgbImage, gen: Rng, p = 0.5): RgbImage {
  return gen.uniform() < p ? horizontalFlip(img) : img;
}

/** ToTensor: HWC uint8 to CHW float32 in [0, 1]. */
export function toTensor(img: RgbImage): FloatImage {
  const { width, height } = img;
  const n = width * height;
  const out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    out[i] = img.data[3 * i] / 255;
    out[n + i] = img.data[3 * i + 1] / 255;
    out[2 * n + i] = img.data[3 * i + 2] / 255;
  }
  return { channels: 3, height, width, data: out };
}

/** Normalize(mean, std) in float32, returning a new image. */
export function normalize(
  img: FloatImage,
  mean: readonly number[] = IMAGENET_MEAN,
  std: readonly number[] = IMAGENET_STD,
): FloatImage {
  if (mean.length !== img.channels || std.length !== img.channels) {
    throw new Error(
      `normalize: ${img.channels} channels but mean/std have ${mean.length}/${std.length}`,
    );
  }
  const n = img.width * img.height;
  const out = new Float32Array(img.data.length);
  for (let c = 0; c < img.channels; c++) {
    const m = Math.fround(mean[c]);
    const s = Math.fround(std[c]);
    for (let i = c * n; i < (c + 1) * n; i++) out[i] = Math.fround(img.data[i] - m) / s;
  }
  return { ...img, data: out };
}
