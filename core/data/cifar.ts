/**
 * CIFAR-10 "binary version": data_batch_{1..5}.bin and test_batch.bin, each a sequence of
 * 3073-byte records (label byte, then 1024 R, 1024 G, 1024 B bytes of a 32x32 image,
 * row-major). Class names come from batches.meta.txt when present.
 *
 * A missing or mis-sized batch file is fatal at open.
 */

import { checkIndex, type Dataset, type Sample } from "./dataset.ts";

export const CIFAR10_CLASSES = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
];
const SIDE = 32;
const PIXELS = SIDE * SIDE;
const RECORD = 1 + 3 * PIXELS;

export class Cifar10Dataset implements Dataset {
  readonly numClasses = 10;
  readonly length: number;

  private constructor(
    readonly name: string,
    private readonly records: Uint8Array,
    readonly classNames: readonly string[],
  ) {
    this.length = records.length / RECORD;
  }

  /** Open the train (5 batches) or test split from the extracted `cifar-10-batches-bin` folder. */
  static open(dir: string, split: "train" | "test"): Promise<Cifar10Dataset> {
    dir = dir.replace(/\/+$/, "");
    const names = split === "train"
      ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`)
      : ["test_batch.bin"];
    return Cifar10Dataset.fromFiles(names.map((n) => `${dir}/${n}`), `${dir}/batches.meta.txt`);
  }

  static async fromFiles(paths: string[], metaPath?: string): Promise<Cifar10Dataset> {
    const parts: Uint8Array[] = [];
    for (const p of paths) {
      const b = await Deno.readFile(p).catch((e) => {
        throw new Error(`Cifar10Dataset: ${p}: ${(e as Error).message}`);
      });
      if (b.length === 0 || b.length % RECORD !== 0) {
        throw new Error(
          `Cifar10Dataset: ${p}: size ${b.length} is not a multiple of the ${RECORD}-byte record`,
        );
      }
      for (let o = 0; o < b.length; o += RECORD) {
        if (b[o] > 9) {
          throw new Error(`Cifar10Dataset: ${p}: record ${o / RECORD} has label ${b[o]} (> 9)`);
        }
      }
      parts.push(b);
    }
    const all = new Uint8Array(parts.reduce((s, b) => s + b.length, 0));
    let off = 0;
    for (const b of parts) {
      all.set(b, off);
      off += b.length;
    }
    let classes = CIFAR10_CLASSES;
    if (metaPath) {
      try {
        const lines = (await Deno.readTextFile(metaPath)).split("\n").map((s) => s.trim()).filter(
          Boolean,
        );
        if (lines.length === 10) classes = lines;
      } catch { /* optional file */ }
    }
    return new Cifar10Dataset(`cifar10:${paths[0]}${paths.length > 1 ? "..." : ""}`, all, classes);
  }

  // deno-lint-ignore require-await
  async get(index: number): Promise<Sample> {
    checkIndex(this, index);
    const r = index * RECORD;
    const data = new Uint8Array(PIXELS * 3);
    for (let i = 0; i < PIXELS; i++) {
      data[3 * i] = this.records[r + 1 + i];
      data[3 * i + 1] = this.records[r + 1 + PIXELS + i];
      data[3 * i + 2] = this.records[r + 1 + 2 * PIXELS + i];
    }
    return { image: { width: SIDE, height: SIDE, data }, label: this.records[r] };
  }
}
