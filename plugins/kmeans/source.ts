/**
 * Where K-Means reads its vectors: a FeatureSource yields consecutive row blocks, so a
 * training set split over many .npy shards (DiGIT's is ~100 GB) is streamed once per
 * iteration with bounded memory, while a small one simply lives in memory.
 */

import { hashBits } from "../../core/random.ts";
import { NpyMatrixWriter, readNpyRows } from "./npy_matrix.ts";
import { npyFileSet } from "./row_range.ts";

export interface RowBlock {
  /** Index of the block's first row in the source. */
  start: number;
  rows: number;
  /** rows x dim values, row-major. */
  data: Float32Array;
}

export interface FeatureSource {
  readonly dim: number;
  readonly rows: number;
  /** True when every block is already in memory (cheap to read many times). */
  readonly inMemory: boolean;
  /** All rows in order, in blocks of at most `maxRows`. */
  blocks(maxRows: number): AsyncIterable<RowBlock>;
}

/** Rows held in one Float32Array. */
export function memorySource(data: Float32Array, dim: number): FeatureSource {
  if (!Number.isInteger(dim) || dim < 1 || data.length % dim !== 0) {
    throw new Error(`kmeans: ${data.length} values do not split into rows of ${dim}`);
  }
  const rows = data.length / dim;
  return {
    dim,
    rows,
    inMemory: true,
    async *blocks(maxRows: number) {
      for (let s = 0; s < rows; s += maxRows) {
        const n = Math.min(maxRows, rows - s);
        yield { start: s, rows: n, data: data.subarray(s * dim, (s + n) * dim) };
      }
    },
  };
}

/** Rows of several (n_i, D) float32 .npy files, concatenated in the given order. */
export function npyFilesSource(paths: readonly string[]): FeatureSource {
  const { infos, dim, rows } = npyFileSet(paths);
  return {
    dim,
    rows,
    inMemory: false,
    async *blocks(maxRows: number) {
      let base = 0;
      for (const info of infos) {
        for (let s = 0; s < info.rows; s += maxRows) {
          const n = Math.min(maxRows, info.rows - s);
          yield { start: base + s, rows: n, data: readNpyRows(info, s, n) };
        }
        base += info.rows;
      }
    },
  };
}

/**
 * The rows of `source` at the ascending indices `picked`, renumbered 0..picked.length-1.
 * Gathered into memory when they fit in `memoryBytes`; else written once to the .npy file
 * `spillTo` when given (one sequential file instead of a sparse read of every shard on every
 * pass), else re-gathered from the source on every pass.
 */
export async function subsetSource(
  source: FeatureSource,
  picked: Int32Array,
  memoryBytes = 2 ** 31,
  spillTo?: string,
): Promise<FeatureSource> {
  for (let i = 1; i < picked.length; i++) {
    if (picked[i] <= picked[i - 1]) {
      throw new Error("kmeans subset: indices must be strictly ascending");
    }
  }
  const dim = source.dim;
  const gatherFrom = async function* (maxRows: number): AsyncIterable<RowBlock> {
    let p = 0;
    let out = 0;
    for await (const b of source.blocks(Math.max(maxRows, 4096))) {
      const end = b.start + b.rows;
      let first = p;
      while (p < picked.length && picked[p] < end) p++;
      // Emit the rows of this block in pieces of at most maxRows.
      while (first < p) {
        const n = Math.min(maxRows, p - first);
        const data = new Float32Array(n * dim);
        for (let i = 0; i < n; i++) {
          const r = picked[first + i] - b.start;
          data.set(b.data.subarray(r * dim, (r + 1) * dim), i * dim);
        }
        yield { start: out, rows: n, data };
        out += n;
        first += n;
      }
    }
  };
  if (picked.length * dim * 4 <= memoryBytes) {
    const all = new Float32Array(picked.length * dim);
    for await (const b of gatherFrom(65536)) all.set(b.data, b.start * dim);
    return memorySource(all, dim);
  }
  if (spillTo !== undefined) {
    const writer = new NpyMatrixWriter(spillTo, picked.length, dim);
    try {
      for await (const b of gatherFrom(65536)) writer.append(b.data);
      writer.close();
    } catch (e) {
      writer.abort();
      throw e;
    }
    return npyFilesSource([spillTo]);
  }
  return { dim, rows: picked.length, inMemory: false, blocks: gatherFrom };
}

/** Uniform integer in [0, n) from two 32-bit draws (53 bits, so n may exceed 2^24). */
function drawBelow(seed: number, counter: number, n: number): number {
  const hi = hashBits(seed, 2 * counter) >>> 11; // 21 bits
  const lo = hashBits(seed, 2 * counter + 1); // 32 bits
  return Math.floor(((hi * 2 ** 32 + lo) / 2 ** 53) * n);
}

/**
 * The first `count` entries of a seeded random permutation of 0..rows-1 (a partial
 * Fisher-Yates shuffle), in draw order. faiss samples its training subset the same way.
 */
export function permutationPrefix(rows: number, count: number, seed: number): Int32Array {
  const m = Math.min(count, rows);
  const perm = new Int32Array(rows);
  for (let i = 0; i < rows; i++) perm[i] = i;
  for (let i = 0; i < m; i++) {
    const j = i + drawBelow(seed, i, rows - i);
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  return perm.slice(0, m);
}

/** `count` distinct row indices out of `rows`, ascending, chosen by `seed`. */
export function sampleRows(rows: number, count: number, seed: number): Int32Array {
  return permutationPrefix(rows, count, seed).sort();
}

/** Specific rows (any order, repeats allowed) of a source, in the order asked. */
export async function gatherRows(
  source: FeatureSource,
  indices: ArrayLike<number>,
): Promise<Float32Array> {
  const dim = source.dim;
  const out = new Float32Array(indices.length * dim);
  const order = Array.from(indices, (r, i) => [r, i] as const).sort((a, b) => a[0] - b[0]);
  for (const [r] of order) {
    if (!Number.isInteger(r) || r < 0 || r >= source.rows) {
      throw new Error(`kmeans: row ${r} outside 0..${source.rows - 1}`);
    }
  }
  let p = 0;
  for await (const b of source.blocks(65536)) {
    while (p < order.length && order[p][0] < b.start + b.rows) {
      const [r, i] = order[p++];
      out.set(b.data.subarray((r - b.start) * dim, (r - b.start + 1) * dim), i * dim);
    }
    if (p === order.length) break;
  }
  return out;
}
