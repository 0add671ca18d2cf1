/**
 * The arithmetic of one Lloyd iteration done in fixed row blocks, so that it can be split
 * over processes and still give one process's bytes (lloyd_shard.ts does the splitting):
 *
 *   rows -> blocks of `blockRows` rows counted from row 0 (whatever the shard count)
 *        -> each block's statistics from zero: per-centroid row count, float64 sum of the
 *           rows assigned to it, and sum |x|^2, adding the block's rows in order
 *        -> the blocks added in block order (foldBlock) -> new centroids and inertia.
 *
 * Float64 addition is not associative, so a shard keeps every block's statistics apart
 * instead of one running total: the merge then makes exactly the additions one process makes.
 * lloyd.ts adds all rows into one total instead; the two agree to float64 rounding (the
 * float32 centroids to about one unit in the last place).
 */

import type { Backend } from "../../core/backend.ts";
import { CentroidIndex } from "./assign.ts";
import type { Centroids } from "./centroids.ts";
import type { RowReader } from "./row_range.ts";

/** Rows given to the index at once, counted from the block's start (lloyd.ts uses 16384 too). */
const PIECE_ROWS = 16384;

/** Sufficient statistics of some rows for one assignment to `k` centroids of dimension `dim`. */
export interface BlockStats {
  /** Rows per centroid (float64, as lloyd.ts keeps them). */
  counts: Float64Array;
  /** k x dim float64 sums of the rows assigned to each centroid. */
  sums: Float64Array;
  /** Sum over the rows of |x|^2. */
  squares: number;
}

export function emptyStats(k: number, dim: number): BlockStats {
  return { counts: new Float64Array(k), sums: new Float64Array(k * dim), squares: 0 };
}

/** Adds `block` into `total`, element by element (the one place blocks are added). */
export function foldBlock(total: BlockStats, block: BlockStats): void {
  for (let i = 0; i < total.counts.length; i++) total.counts[i] += block.counts[i];
  for (let i = 0; i < total.sums.length; i++) total.sums[i] += block.sums[i];
  total.squares += block.squares;
}

export interface BlockOptions {
  backend?: Backend;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/**
 * The statistics of every block of rows [start, end): `start` lies on a block boundary and
 * `end` on one or at the last row. Non-finite values are refused with their row.
 */
export async function* blockStats(
  rows: RowReader,
  centroids: Centroids,
  range: { start: number; end: number },
  blockRows: number,
  opts: BlockOptions = {},
): AsyncGenerator<BlockStats> {
  const { k, dim } = centroids;
  if (rows.dim !== dim) {
    throw new Error(`kmeans: the features have dimension ${rows.dim}, the centroids ${dim}`);
  }
  if (range.start % blockRows !== 0 || (range.end % blockRows !== 0 && range.end !== rows.rows)) {
    throw new Error(
      `kmeans: rows [${range.start}, ${range.end}) do not fall on blocks of ${blockRows}`,
    );
  }
  const index = new CentroidIndex(centroids.data, k, dim, opts.backend);
  try {
    for (let b = range.start; b < range.end; b += blockRows) {
      const stats = emptyStats(k, dim);
      const blockEnd = Math.min(range.end, b + blockRows);
      for (let p = b; p < blockEnd; p += PIECE_ROWS) {
        opts.signal?.throwIfAborted();
        const n = Math.min(PIECE_ROWS, blockEnd - p);
        const x = rows.read(p, n);
        for (let i = 0; i < x.length; i++) {
          const v = x[i];
          if (!Number.isFinite(v)) {
            throw new Error(
              `kmeans: row ${p + Math.floor(i / dim)} holds a non-finite value (${v})`,
            );
          }
          stats.squares += v * v;
        }
        const labels = await index.labels(x);
        for (let r = 0; r < n; r++) {
          const l = labels[r];
          stats.counts[l]++;
          const off = l * dim, xo = r * dim;
          for (let j = 0; j < dim; j++) stats.sums[off + j] += x[xo + j];
        }
        opts.onProgress?.(p + n - range.start, range.end - range.start);
      }
      yield stats;
    }
  } finally {
    index.dispose();
  }
}

/** What an iteration reports (the step's lloyd.json). */
export interface LloydReport {
  format: "digit-kmeans-lloyd";
  k: number;
  dim: number;
  rows: number;
  /**
   * Sum of squared distances of the rows to the centroids they were assigned to, i.e. to the
   * input centroids (faiss's `obj` of this iteration), in float64 from the statistics.
   */
  inertia: number;
  /** faiss's imbalance factor: K * sum(n_k^2) / n^2 (1 = perfectly balanced). */
  imbalance: number;
  /** Clusters no row was assigned to: they keep their input centroid. */
  empty: number[];
}

/**
 * The new centroids (sum / count in float64, rounded once to float32) and the report. An
 * empty cluster keeps its old centroid: lloyd.ts splits a large cluster instead (faiss's
 * split_clusters), a random choice this step leaves out so that its result stays a plain
 * function of the rows and the input centroids; the report lists such clusters.
 */
export function updateCentroids(
  old: Centroids,
  total: BlockStats,
): { centroids: Float32Array; report: LloydReport } {
  const { k, dim } = old;
  const rows = total.counts.reduce((a, b) => a + b, 0);
  // The same formula as lloyd.ts: sum|x|^2 - 2 sum_k c_k . S_k + sum_k n_k |c_k|^2.
  let inertia = total.squares, sumSq = 0;
  const centroids = new Float32Array(k * dim);
  const empty: number[] = [];
  for (let c = 0; c < k; c++) {
    const n = total.counts[c];
    sumSq += n * n;
    if (n === 0) {
      empty.push(c);
      centroids.set(old.data.subarray(c * dim, (c + 1) * dim), c * dim);
      continue;
    }
    let dot = 0, cc = 0;
    for (let j = 0; j < dim; j++) {
      const v = old.data[c * dim + j];
      dot += v * total.sums[c * dim + j];
      cc += v * v;
      centroids[c * dim + j] = total.sums[c * dim + j] / n;
    }
    inertia += -2 * dot + n * cc;
  }
  return {
    centroids,
    report: {
      format: "digit-kmeans-lloyd",
      k,
      dim,
      rows,
      inertia: Math.max(inertia, 0),
      imbalance: rows > 0 ? (sumSq * k) / (rows * rows) : 0,
      empty,
    },
  };
}
