/**
 * Any range of rows of several (n_i, D) float32 .npy files taken as one matrix, in the given
 * file order. A shard of the sharded Lloyd step reads its slice of rows this way: slices
 * follow fixed row blocks, not file boundaries, so one read may span two feature files.
 */

import { type NpyMatrixInfo, npyMatrixInfo, readNpyRows } from "./npy_matrix.ts";

export interface RowReader {
  readonly rows: number;
  readonly dim: number;
  /** Rows [start, start + count), row-major. */
  read(start: number, count: number): Float32Array;
}

/** Several (n_i, D) float32 .npy files as one matrix: their headers, D and row offsets. */
export interface NpyFileSet {
  infos: NpyMatrixInfo[];
  dim: number;
  /** first[i]: global index of file i's first row; first[infos.length]: the row count. */
  first: number[];
  rows: number;
}

/** Reads the headers of `paths` and checks that every file has the first one's columns. */
export function npyFileSet(paths: readonly string[]): NpyFileSet {
  if (paths.length === 0) throw new Error("kmeans: no feature files given");
  const infos: NpyMatrixInfo[] = paths.map(npyMatrixInfo);
  const dim = infos[0].cols;
  const first = [0];
  for (const info of infos) {
    if (info.cols !== dim) {
      throw new Error(
        `kmeans: ${info.path} has ${info.cols} columns but ${infos[0].path} has ${dim}`,
      );
    }
    first.push(first[first.length - 1] + info.rows);
  }
  return { infos, dim, first, rows: first[infos.length] };
}

export function npyRowReader(paths: readonly string[]): RowReader {
  const { infos, dim, first, rows } = npyFileSet(paths);
  return {
    rows,
    dim,
    read(start, count) {
      if (!Number.isSafeInteger(start) || start < 0 || count < 0 || start + count > rows) {
        throw new Error(`kmeans: rows [${start}, ${start + count}) outside 0..${rows}`);
      }
      const out = new Float32Array(count * dim);
      const end = start + count;
      for (let f = 0; f < infos.length && first[f] < end; f++) {
        const from = Math.max(start, first[f]), to = Math.min(end, first[f + 1]);
        if (from >= to) continue;
        out.set(readNpyRows(infos[f], from - first[f], to - from), (from - start) * dim);
      }
      return out;
    },
  };
}
