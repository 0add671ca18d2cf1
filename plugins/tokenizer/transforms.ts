/**
 * The image pipelines the tokenizer commands apply before the encoder (spec §1.3):
 *  - K-Means features (DiGIT preprocess/data_handler.py): Resize(side, bicubic) on the short
 *    side, RandomCrop(side), RandomHorizontalFlip, with side = the encoder's input (224);
 *  - tokens of a dataset: Resize(256, bicubic) + CenterCrop(256) (DiGIT's validation
 *    transform; training re-tokenises random crops online, offline tokens are fixed).
 * Random draws come from an Rng seeded per image, so a run is reproducible and resumable.
 */

import {
  centerCrop,
  randomCrop,
  randomHorizontalFlip,
  resizeShortSide,
} from "../../core/image/transforms.ts";
import type { RgbImage } from "../../core/image/rgb.ts";
import type { Rng } from "../../core/random.ts";

export type ImageTransform = (image: RgbImage, gen: Rng) => RgbImage;

export type CropMode = "center" | "random";
export const CROP_MODES: readonly CropMode[] = ["center", "random"];

/** Short side to `side` (bicubic, as PIL), then a side x side crop, optionally flipped. */
export function cropTransform(side: number, crop: CropMode, flip: boolean): ImageTransform {
  return (image, gen) => {
    const resized = resizeShortSide(image, side, "bicubic");
    const cropped = crop === "center" ? centerCrop(resized, side) : randomCrop(resized, side, gen);
    return flip ? randomHorizontalFlip(cropped, gen) : cropped;
  };
}
