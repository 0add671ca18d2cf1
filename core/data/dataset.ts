/**
 * What a dataset is: a fixed-length, randomly addressable list of labelled RGB images.
 * File-backed datasets read and decode in `get`, so a broken file surfaces there, as an
 * error whose message names the file; the loader decides whether to skip it or stop.
 */

import { readImage } from "../image/codec.ts";
import type { RgbImage } from "../image/rgb.ts";

export interface Sample {
  image: RgbImage;
  label: number;
}

export interface Dataset {
  readonly name: string;
  readonly length: number;
  readonly numClasses: number;
  /** Class names in label order, when known. */
  readonly classNames?: readonly string[];
  get(index: number): Promise<Sample>;
  /** The file behind item `index`, for messages (file-backed datasets only). */
  describe?(index: number): string;
}

/** What to do with an item that cannot be read: skip it (counted, warned) or stop. */
export type OnError = "skip" | "fail";

export function checkIndex(ds: { name: string; length: number }, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= ds.length) {
    throw new RangeError(`${ds.name}: index ${index} out of range [0, ${ds.length})`);
  }
}

/** Items [offset, offset + length) of another dataset, renumbered from 0. */
export class DatasetSlice implements Dataset {
  readonly name: string;
  readonly numClasses: number;
  readonly classNames?: readonly string[];

  constructor(readonly source: Dataset, readonly offset: number, readonly length: number) {
    const ok = (v: number) => Number.isInteger(v) && v >= 0;
    if (!ok(offset) || !ok(length) || offset + length > source.length) {
      throw new RangeError(
        `${source.name}: offset ${offset} and limit ${length} must be whole numbers within its ${source.length} items`,
      );
    }
    this.name = `${source.name}[${offset}:${offset + length}]`;
    this.numClasses = source.numClasses;
    this.classNames = source.classNames;
  }

  async get(index: number): Promise<Sample> {
    checkIndex(this, index);
    return await this.source.get(this.offset + index);
  }

  describe(index: number): string {
    return this.source.describe?.(this.offset + index) ?? `${this.name} item ${index}`;
  }
}

export interface LabelledFile {
  path: string;
  label: number;
}

/** Image files with given labels (the base of ImageFolder; also for flat folders + a label list). */
export class ImageFileList implements Dataset {
  readonly length: number;
  constructor(
    readonly name: string,
    readonly files: readonly LabelledFile[],
    readonly numClasses: number,
    readonly classNames?: readonly string[],
  ) {
    this.length = files.length;
  }

  describe(index: number): string {
    return this.files[index]?.path ?? `#${index}`;
  }

  async get(index: number): Promise<Sample> {
    checkIndex(this, index);
    const f = this.files[index];
    return { image: await readImage(f.path), label: f.label };
  }
}

/**
 * A flat folder plus a TSV of "file<TAB>label" lines (the layout of
 * shared/data/imagenet-sample/labels.tsv). Lines starting with # are ignored.
 */
export async function imageListFromTsv(
  dir: string,
  tsv: string,
  numClasses: number,
): Promise<ImageFileList> {
  const text = await Deno.readTextFile(tsv).catch((e) => {
    throw new Error(`imageListFromTsv: ${tsv}: ${(e as Error).message}`);
  });
  const files: LabelledFile[] = [];
  for (const [n, line] of text.split("\n").entries()) {
    if (!line.trim() || line.startsWith("#")) continue;
    const [file, label] = line.split("\t");
    const y = Number(label);
    if (!file || !Number.isInteger(y) || y < 0 || y >= numClasses) {
      throw new Error(`imageListFromTsv: ${tsv}:${n + 1}: bad line "${line}"`);
    }
    files.push({ path: `${dir.replace(/\/$/, "")}/${file}`, label: y });
  }
  return new ImageFileList(`list:${tsv}`, files, numClasses);
}
