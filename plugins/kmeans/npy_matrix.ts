/**
 * Float32 matrices in .npy files that may be far larger than memory: read a header, read a
 * range of rows, write a file row block by row block. Layout is numpy's: '<f4', C order,
 * shape (rows, cols); DiGIT's centroids (km_8k.npy) and feature shards are such files.
 */

import { encodeNpy, parsePyLiteral } from "../../core/io/npy.ts";

export interface NpyMatrixInfo {
  path: string;
  rows: number;
  cols: number;
  /** Byte offset of the first element. */
  dataOffset: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

function readExactly(
  file: Deno.FsFile,
  at: number,
  out: Uint8Array,
  path: string,
  what: string,
): void {
  file.seekSync(at, Deno.SeekMode.Start);
  let got = 0;
  while (got < out.length) {
    const n = file.readSync(out.subarray(got));
    if (n === null || n === 0) {
      throw new Error(`${path}: file ended while reading ${what} (${got}/${out.length} bytes)`);
    }
    got += n;
  }
}

/** Shape and data offset of a 2-D '<f4' C-order .npy, checking the file is long enough. */
export function npyMatrixInfo(path: string): NpyMatrixInfo {
  const file = Deno.openSync(path, { read: true });
  try {
    const size = file.statSync().size;
    const pre = new Uint8Array(12);
    readExactly(file, 0, pre.subarray(0, Math.min(12, size)), path, "the npy preamble");
    if (!MAGIC.every((b, i) => pre[i] === b)) {
      throw new Error(`${path}: not a .npy file (bad magic)`);
    }
    const major = pre[6];
    const dv = new DataView(pre.buffer);
    const headerStart = major === 1 ? 10 : 12;
    const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
    const headerBytes = new Uint8Array(headerLen);
    readExactly(file, headerStart, headerBytes, path, "the npy header");
    const header = parsePyLiteral(new TextDecoder("latin1").decode(headerBytes)) as Map<
      string,
      unknown
    >;
    const descr = header.get("descr"),
      fortran = header.get("fortran_order"),
      shape = header.get("shape") as number[];
    if (descr !== "<f4" || fortran !== false || !Array.isArray(shape) || shape.length !== 2) {
      throw new Error(
        `${path}: expected a (rows, cols) float32 C-order array ('<f4'), got descr ${
          JSON.stringify(descr)
        }, ` +
          `fortran_order ${fortran}, shape (${Array.isArray(shape) ? shape.join(", ") : shape})`,
      );
    }
    const [rows, cols] = shape;
    const dataOffset = headerStart + headerLen;
    if (size < dataOffset + rows * cols * 4) {
      throw new Error(
        `${path}: truncated: (${rows}, ${cols}) float32 needs ${
          dataOffset + rows * cols * 4
        } bytes, the file has ${size}`,
      );
    }
    return { path, rows, cols, dataOffset };
  } finally {
    file.close();
  }
}

/** Rows [start, start+count) of a matrix described by `info`. */
export function readNpyRows(info: NpyMatrixInfo, start: number, count: number): Float32Array {
  if (start < 0 || count < 0 || start + count > info.rows) {
    throw new Error(`${info.path}: rows [${start}, ${start + count}) outside 0..${info.rows}`);
  }
  const out = new Float32Array(count * info.cols);
  const file = Deno.openSync(info.path, { read: true });
  try {
    readExactly(
      file,
      info.dataOffset + start * info.cols * 4,
      new Uint8Array(out.buffer),
      info.path,
      `rows ${start}..${start + count}`,
    );
  } finally {
    file.close();
  }
  return out;
}

/** The whole matrix. */
export function readNpyMatrix(path: string): { data: Float32Array; rows: number; cols: number } {
  const info = npyMatrixInfo(path);
  return { data: readNpyRows(info, 0, info.rows), rows: info.rows, cols: info.cols };
}

export function writeNpyMatrix(path: string, data: Float32Array, rows: number, cols: number): void {
  if (data.length !== rows * cols) {
    throw new Error(`writeNpyMatrix ${path}: ${data.length} values are not ${rows}x${cols}`);
  }
  Deno.writeFileSync(
    path,
    encodeNpy({ dtype: "f32", shape: [rows, cols], data, sourceDtype: "f32" }),
  );
}

/**
 * Writes a (rows, cols) float32 .npy of known size block by block, to `path + ".partial"`,
 * renamed into place by `close()`: a file at `path` is therefore always complete.
 */
export class NpyMatrixWriter {
  #file: Deno.FsFile;
  #written = 0;
  readonly tmpPath: string;
  constructor(readonly path: string, readonly rows: number, readonly cols: number) {
    this.tmpPath = `${path}.partial`;
    this.#file = Deno.openSync(this.tmpPath, { write: true, create: true, truncate: true });
    const header = encodeNpy({
      dtype: "f32",
      shape: [rows, cols],
      data: new Float32Array(0),
      sourceDtype: "f32",
    });
    this.#writeAll(header);
  }
  #writeAll(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) off += this.#file.writeSync(bytes.subarray(off));
  }
  append(block: Float32Array): void {
    if (block.length % this.cols !== 0) {
      throw new Error(
        `${this.path}: block of ${block.length} values is not a multiple of ${this.cols} columns`,
      );
    }
    const n = block.length / this.cols;
    if (this.#written + n > this.rows) {
      throw new Error(`${this.path}: writing past the declared ${this.rows} rows`);
    }
    this.#writeAll(new Uint8Array(block.buffer, block.byteOffset, block.byteLength));
    this.#written += n;
  }
  close(): void {
    this.#file.close();
    if (this.#written !== this.rows) {
      throw new Error(`${this.path}: ${this.#written} rows written, ${this.rows} declared`);
    }
    Deno.renameSync(this.tmpPath, this.path);
  }
  abort(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
    try {
      Deno.removeSync(this.tmpPath);
    } catch { /* never created */ }
  }
}
