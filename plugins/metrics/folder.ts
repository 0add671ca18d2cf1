/**
 * Image folders as torch-fidelity reads them for FID/IS (`glob_samples_paths` with its
 * defaults): the files directly inside the folder (not recursive) whose extension is png,
 * jpg or jpeg in any case, sorted by path; each decoded to 8-bit RGB with no resizing.
 * Batches need one image size, so a folder whose images differ in size is an error;
 * `checkSizes()` finds that (and files that are not PNG/JPEG) from the file headers alone,
 * before any network runs.
 */

import { readImage } from "../../core/image/codec.ts";
import { isJpeg } from "../../core/image/jpeg.ts";
import { isPng } from "../../core/image/png.ts";
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
      const isFile = entry.isFile ||
        (entry.isSymlink && (await Deno.stat(path).then((s) => s.isFile, () => false)));
      if (!isFile) {
        folders++;
        continue;
      }
      const ext = entry.name.includes(".")
        ? entry.name.slice(entry.name.lastIndexOf(".") + 1).toLowerCase()
        : "";
      (IMAGE_EXTENSIONS.includes(ext) ? files : skipped).push(path);
    }
    files.sort(byCodePoint);
    skipped.sort(byCodePoint);
    if (files.length === 0) {
      const others = skipped.length
        ? `; it has ${skipped.length} other file(s), e.g. ${
          skipped.slice(0, 3).map((f) => f.slice(base.length + 1)).join(", ")
        }`
        : "";
      const sub = folders ? ` and ${folders} subfolder(s), which are not searched` : "";
      throw new Error(
        `${what} '${dir}' has no ${
          IMAGE_EXTENSIONS.map((e) => "." + e).join("/")
        } images${others}${sub}`,
      );
    }
    return new ImageFolder(dir, files, skipped, what);
  }

  get count(): number {
    return this.files.length;
  }

  /**
   * Reads every file's header: the common size, or an error naming the first file whose size
   * differs or that is not a PNG or JPEG. Cheap (a few KB per file), so bad folders fail fast.
   */
  async checkSizes(limit?: number): Promise<{ width: number; height: number }> {
    for (const file of this.files.slice(0, limit ?? this.files.length)) {
      const size = await probeImageSize(file);
      if (!size) {
        const img = await readImage(file); // decodes, or throws the codec's error naming the file
        this.#checkSize(file, img.width, img.height);
      } else this.#checkSize(file, size.width, size.height);
    }
    const { width, height } = this.#size!;
    return { width, height };
  }

  /**
   * Decoded batches of `batchSize` images in file order: the first `limit` files when given,
   * or the files [start, end) of `range`.
   */
  async *batches(
    batchSize: number,
    opts: { limit?: number; range?: { start: number; end: number }; signal?: AbortSignal } = {},
  ): AsyncGenerator<FolderBatch> {
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new Error(`ImageFolder.batches: bad batch size ${batchSize}`);
    }
    const files = opts.range
      ? this.files.slice(opts.range.start, opts.range.end)
      : opts.limit !== undefined
      ? this.files.slice(0, opts.limit)
      : this.files;
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

/** Width and height from a PNG IHDR or a JPEG SOF marker; null when the header is not found. */
export async function probeImageSize(
  path: string,
): Promise<{ width: number; height: number } | null> {
  const f = await Deno.open(path);
  try {
    const head = new Uint8Array(65536);
    let n = 0;
    for (let r; n < head.length && (r = await f.read(head.subarray(n))) !== null;) n += r;
    const b = head.subarray(0, n);
    if (isPng(b) && n >= 24) {
      const dv = new DataView(b.buffer, b.byteOffset, n);
      return { width: dv.getUint32(16), height: dv.getUint32(20) };
    }
    if (!isJpeg(b)) {
      const bytes = Array.from(b.subarray(0, 4), (v) => v.toString(16).padStart(2, "0")).join(" ");
      throw new Error(`${path}: not a PNG or JPEG file (first bytes: ${bytes || "none"})`);
    }
    // Walk the marker segments up to the frame header (SOF0..SOF15 but DHT, JPG, DAC).
    for (let at = 2; at + 9 <= n;) {
      if (b[at] !== 0xff) return null;
      const marker = b[at + 1];
      if (marker === 0xff) {
        at++;
        continue;
      }
      if (
        marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc
      ) {
        return { height: (b[at + 5] << 8) | b[at + 6], width: (b[at + 7] << 8) | b[at + 8] };
      }
      at += 2 + ((b[at + 2] << 8) | b[at + 3]);
    }
    return null;
  } finally {
    f.close();
  }
}
