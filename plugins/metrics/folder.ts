/**
 * Image folders as torch-fidelity reads them for FID/IS (`glob_samples_paths` with its
 * defaults): the files directly inside the folder (not recursive) whose extension is png,
 * jpg or jpeg in any case, sorted by path; each decoded to 8-bit RGB with no resizing.
 * Batches need one image size, so a folder whose images differ in size is an error.
 */

import { readImage } from "../../core/image/codec.ts";
import type { ImageBatch } from "../../core/interfaces.ts";

export const IMAGE_EXTENSIONS: readonly string[] = ["png", "jpg", "jpeg"];

/** Python's sorted() order on str: by code point (not locale). */
export const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export interface FolderBatch extends ImageBatch {
  /** The files of this batch, in order. */
  files: string[];
}

export class ImageFolder {
  #size: { width: number; height: number; file: string } | null = null;

  private constructor(
    readonly dir: string,
    /** Sorted image paths. */
    readonly files: string[],
    /** Files left out for their extension (reported, not read). */
    readonly skipped: string[],
    /** How errors name this folder, e.g. "generated images". */
    readonly what: string,
  ) {}

  /** Lists `dir`; an absent folder, a file, or a folder without images is an error. */
  static async open(dir: string, what = "image folder"): Promise<ImageFolder> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(dir);
    } catch {
      throw new Error(`${what} '${dir}' does not exist`);
    }
    if (!info.isDirectory) throw new Error(`${what} '${dir}' is not a folder`);
    const files: string[] = [];
    const skipped: string[] = [];
    let folders = 0;
    const base = dir.replace(/\/+$/, "") || "/";
    for await (const entry of Deno.readDir(dir)) {
      const path = `${base}/${entry.name}`;
      const isFile = entry.isFile || (entry.isSymlink && (await Deno.stat(path).then((s) => s.isFile, () => false)));
      if (!isFile) {
        folders++;
        continue;
      }
      const ext = entry.name.includes(".") ? entry.name.slice(entry.name.lastIndexOf(".") + 1).toLowerCase() : "";
      (IMAGE_EXTENSIONS.includes(ext) ? files : skipped).push(path);
    }
    files.sort(byCodePoint);
    skipped.sort(byCodePoint);
    if (files.length === 0) {
      const others = skipped.length
        ? `; it has ${skipped.length} other file(s), e.g. ${skipped.slice(0, 3).map((f) => f.slice(base.length + 1)).join(", ")}`
        : "";
      const sub = folders ? ` and ${folders} subfolder(s), which are not searched` : "";
      throw new Error(`${what} '${dir}' has no ${IMAGE_EXTENSIONS.map((e) => "." + e).join("/")} images${others}${sub}`);
    }
    return new ImageFolder(dir, files, skipped, what);
  }

  get count(): number {
    return this.files.length;
  }

  /** Decoded batches of `batchSize` images in file order (the first `limit` files when given). */
  async *batches(batchSize: number, opts: { limit?: number; signal?: AbortSignal } = {}): AsyncGenerator<FolderBatch> {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`ImageFolder.batches: bad batch size ${batchSize}`);
    const files = opts.limit !== undefined ? this.files.slice(0, opts.limit) : this.files;
    for (let start = 0; start < files.length; start += batchSize) {
      opts.signal?.throwIfAborted();
      const names = files.slice(start, start + batchSize);
      let data: Uint8Array | null = null;
      for (const [i, file] of names.entries()) {
        const img = await readImage(file);
        const { width, height } = this.#checkSize(file, img.width, img.height);
        data ??= new Uint8Array(names.length * width * height * 3);
        data.set(img.data, i * width * height * 3);
      }
      const { width, height } = this.#size!;
      yield { data: data!, count: names.length, width, height, files: names };
    }
  }

  #checkSize(file: string, width: number, height: number) {
    this.#size ??= { width, height, file };
    const first = this.#size;
    if (width !== first.width || height !== first.height) {
      throw new Error(
        `${this.what} '${this.dir}': images differ in size: ${first.file} is ${first.width}x${first.height} but ` +
          `${file} is ${width}x${height} (all images must share one size; resize them first, e.g. with prepare-imagenet-val)`,
      );
    }
    return first;
  }
}
