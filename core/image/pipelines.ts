/**
 * DiGIT's preprocessing chains (spec digit.md §1.3 and §7), built from the exact
 * transforms in transforms.ts. Random steps draw from the Rng the data loader
 * hands each sample, so they are reproducible and resumable.
 *
 *   stage-1/2 training images   Resize(256, bicubic) -> RandomCrop(256) -> RandomHorizontalFlip
 *   K-Means feature images      Resize(224, bicubic) -> RandomCrop(224) -> RandomHorizontalFlip
 *   evaluation                  Resize(s, bicubic) -> CenterCrop(s)
 *   FID reference set           Resize(256, bilinear) -> CenterCrop(256)
 *   encoder input (online)      uint8 -> [0,1] -> Normalize(ImageNet) -> bicubic x 224/256 if 256 wide
 */

import type { ImageBatch } from "../interfaces.ts";
import type { Rng } from "../random.ts";
import { interpolateBicubic } from "./interpolate_torch.ts";
import type { PilFilter } from "./resample_pil.ts";
import type { RgbImage } from "./rgb.ts";
import {
  centerCrop,
  IMAGENET_MEAN,
  IMAGENET_STD,
  randomCrop,
  randomHorizontalFlip,
  resizeShortSide,
} from "./transforms.ts";

/** Same shape as the data loader's SampleTransform. */
export type ImageTransform = (image: RgbImage, gen: Rng) => RgbImage;

/** Resize(size, filter) -> RandomCrop(size) -> RandomHorizontalFlip(0.5). */
export function randomCropFlip(size: number, filter: PilFilter = "bicubic"): ImageTransform {
  return (image, gen) =>
    randomHorizontalFlip(randomCrop(resizeShortSide(image, size, filter), size, gen), gen);
}

/** DiGIT's "randcrop" training transform at 256 px. */
export const digitTrainTransform = (size = 256): ImageTransform => randomCropFlip(size, "bicubic");

/** The K-Means feature-dump transform (preprocess/data_handler.py) at 224 px. */
export const kmeansFeatureTransform = (size = 224): ImageTransform =>
  randomCropFlip(size, "bicubic");

/** Resize(resize, filter) -> CenterCrop(crop); deterministic. */
export function centerTransform(
  resize: number,
  crop: number,
  filter: PilFilter = "bicubic",
): ImageTransform {
  return (image) => centerCrop(resizeShortSide(image, resize, filter), crop);
}

/** prepare_imgnet_val.py: the FID reference images. */
export const fidReferenceTransform: ImageTransform = centerTransform(256, 256, "bilinear");

/** uint8 NHWC batch to normalised float32 NCHW (ToTensor + Normalize, float32 like torch). */
export function normalizeBatch(
  batch: ImageBatch,
  mean: readonly number[] = IMAGENET_MEAN,
  std: readonly number[] = IMAGENET_STD,
): Float32Array {
  const { count, height, width, data } = batch;
  const plane = height * width;
  const out = new Float32Array(count * 3 * plane);
  // The result depends only on (channel, byte): three 256-entry tables, computed the same way.
  const table = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const m = Math.fround(mean[c]), sd = Math.fround(std[c]);
    for (let v = 0; v < 256; v++) table[c * 256 + v] = Math.fround(Math.fround(v / 255) - m) / sd;
  }
  for (let n = 0; n < count; n++) {
    const o = n * 3 * plane, src = n * plane * 3;
    for (let i = 0; i < plane; i++) {
      const p = src + 3 * i;
      out[o + i] = table[data[p]];
      out[o + plane + i] = table[256 + data[p + 1]];
      out[o + 2 * plane + i] = table[512 + data[p + 2]];
    }
  }
  return out;
}

/**
 * prepare_semantic's encoder input: normalise, then if the images are 256 wide resize
 * with F.interpolate(scale_factor=224/256, mode="bicubic"). Returns NCHW float32.
 */
export function digitEncoderInput(
  batch: ImageBatch,
): { data: Float32Array; shape: [number, number, number, number] } {
  const x = normalizeBatch(batch);
  if (batch.width !== 256) return { data: x, shape: [batch.count, 3, batch.height, batch.width] };
  const y = interpolateBicubic(x, batch.count * 3, batch.height, batch.width, {
    scaleFactor: 224 / 256,
  });
  return { data: y.data, shape: [batch.count, 3, y.height, y.width] };
}
