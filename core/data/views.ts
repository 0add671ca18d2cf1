/**
 * Datasets seen through a transformation, for the generic keys of a dataset spec:
 *   shuffle: seed   items in a seeded random order (before offset/limit, so that a held-out
 *                   slice of a folder sorted by class still holds every class)
 *   resize: N       every image resized (short side to N, bicubic as PIL) and centre-cropped
 *                   to N x N, so a folder of photos of any size trains the 32 px models
 */

import { centerCrop, resizeShortSide } from "../image/transforms.ts";
import { Rng } from "../random.ts";
import { checkIndex, type Dataset, type Sample } from "./dataset.ts";

export class ShuffledDataset implements Dataset {
  readonly name: string;
  readonly length: number;
  readonly numClasses: number;
  readonly classNames?: readonly string[];
  readonly #order: Int32Array;

  constructor(readonly source: Dataset, readonly seed: number) {
    if (!Number.isInteger(seed)) {
      throw new Error(`${source.name}: shuffle seed ${seed} must be an integer`);
    }
    this.name = `${source.name}:shuffled${seed}`;
    this.length = source.length;
    this.numClasses = source.numClasses;
    this.classNames = source.classNames;
    this.#order = new Rng(seed).permutation(source.length);
  }

  async get(index: number): Promise<Sample> {
    checkIndex(this, index);
    return await this.source.get(this.#order[index]);
  }

  describe(index: number): string {
    checkIndex(this, index);
    return this.source.describe?.(this.#order[index]) ?? `${this.name} item ${index}`;
  }
}

export class ResizedDataset implements Dataset {
  readonly name: string;
  readonly length: number;
  readonly numClasses: number;
  readonly classNames?: readonly string[];

  constructor(readonly source: Dataset, readonly size: number) {
    if (!Number.isInteger(size) || size < 1) {
      throw new Error(`${source.name}: resize ${size} must be a whole number of pixels >= 1`);
    }
    this.name = `${source.name}:${size}px`;
    this.length = source.length;
    this.numClasses = source.numClasses;
    this.classNames = source.classNames;
  }

  async get(index: number): Promise<Sample> {
    const { image, label } = await this.source.get(index);
    if (image.width === this.size && image.height === this.size) return { image, label };
    return { image: centerCrop(resizeShortSide(image, this.size, "bicubic"), this.size), label };
  }

  describe(index: number): string {
    return this.source.describe?.(index) ?? `${this.name} item ${index}`;
  }
}
