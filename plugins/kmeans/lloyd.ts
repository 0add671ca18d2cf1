/**
 * Lloyd's K-Means as DiGIT ran it through faiss (spec §1.5: faiss.Kmeans(d, K, niter=20),
 * seed 1234, at most 256 points per centroid, exact L2), streaming over the training rows:
 *
 *   1. subsample to K * maxPointsPerCentroid rows when there are more (seeded);
 *   2. initial centroids: faiss's random rows, k-means++, or given;
 *   3. each iteration, one pass over the rows: nearest centroid by matmul (assign.ts), and
 *      per-cluster sufficient statistics (row count, sum of rows, in float64) accumulated
 *      block by block, so the rows never need to be in memory at once;
 *   4. centroid = sum / count; an empty cluster takes half of a large one, chosen with
 *      probability ~ its size, the two copies nudged apart by 1/1024 (faiss's split_clusters);
 *   5. spherical: centroids rescaled to unit length after every update.
 *
 * The inertia reported for an iteration is the sum of squared distances of the rows to the
 * centroids they were assigned to in that iteration (faiss's `obj`), computed in float64 from
 * the statistics: sum|x|^2 - 2 sum_k c_k . S_k + sum_k n_k |c_k|^2.
 */

import type { Backend } from "../../core/backend.ts";
import { Rng } from "../../core/random.ts";
import { CentroidIndex } from "./assign.ts";
import { type InitMethod, kmeansPlusPlusInit, randomInit } from "./init.ts";
import { type FeatureSource, memorySource, sampleRows, subsetSource } from "./source.ts";

export interface IterationStats {
  iteration: number;
  /** Sum of squared distances to the assigned centroids (float64 from the statistics). */
  inertia: number;
  /** Seconds since the iterations started. */
  seconds: number;
  /** faiss's imbalance factor: K * sum(n_k^2) / n^2 (1 = perfectly balanced). */
  imbalance: number;
  /** Empty clusters that were re-seeded by splitting. */
  splits: number;
}

export interface KMeansLogger {
  info(message: string): void;
  warn(message: string): void;
  progress?(label: string, done: number, total: number): void;
}

export interface KMeansOptions {
  k: number;
  /** Lloyd iterations (faiss.Kmeans' niter; DiGIT: 20). */
  iterations?: number;
  /** "random" (faiss, default), "kmeans++", or initial centroids (K x D values). */
  init?: InitMethod | Float32Array;
  /** Seed of the subsample, the init and the splits (faiss's default 1234). */
  seed?: number;
  /** Subsample to K * this many rows when there are more; 0 keeps every row (faiss: 256). */
  maxPointsPerCentroid?: number;
  /** Warn when there are fewer than K * this many rows (faiss: 39). */
  minPointsPerCentroid?: number;
  /** Unit-length centroids (faiss `spherical`). */
  spherical?: boolean;
  /** The subsample is gathered into memory when it fits in this many bytes (default 2 GiB). */
  memoryBytes?: number;
  /**
   * When the subsample does not fit, it is written once to this .npy file and streamed from
   * there (the caller removes it); without it, every pass re-reads the subsample's rows.
   */
  spillPath?: string;
  /** k-means++ runs on at most this many rows (default 64 * K). */
  kmeansppMaxRows?: number;
  backend?: Backend;
  log?: KMeansLogger;
  onIteration?: (stats: IterationStats, centroids: Float32Array) => void;
  signal?: AbortSignal;
}

export interface KMeansResult {
  /** (K, D) float32, row-major: what np.save(km_8k.npy) holds. */
  centroids: Float32Array;
  k: number;
  dim: number;
  /** Rows the iterations ran on (after subsampling). */
  trainingRows: number;
  stats: IterationStats[];
}

/** Sufficient statistics of one assignment pass. */
interface PassStats {
  counts: Float64Array;
  sums: Float64Array;
  /** sum over rows of |x|^2 */
  squares: number;
}

const EPS = 1 / 1024;
const BLOCK_ROWS = 16384;

/**
 * One pass: labels and per-cluster statistics. The first pass also checks that every value is
 * finite and sums |x|^2, which later passes reuse (`squares`).
 */
async function assignmentPass(
  training: FeatureSource,
  index: CentroidIndex,
  squaresKnown: number | null,
  signal?: AbortSignal,
): Promise<PassStats> {
  const firstPass = squaresKnown === null;
  const { k, dim } = index;
  const counts = new Float64Array(k);
  const sums = new Float64Array(k * dim);
  let squares = squaresKnown ?? 0;
  for await (const block of training.blocks(BLOCK_ROWS)) {
    signal?.throwIfAborted();
    const x = block.data;
    if (firstPass) {
      for (let i = 0; i < x.length; i++) {
        const v = x[i];
        if (!Number.isFinite(v)) {
          throw new Error(
            `kmeans: row ${block.start + Math.floor(i / dim)} holds a non-finite value (${v})`,
          );
        }
        squares += v * v;
      }
    }
    const labels = await index.labels(x);
    for (let r = 0; r < block.rows; r++) {
      const l = labels[r];
      counts[l]++;
      const off = l * dim, xo = r * dim;
      for (let j = 0; j < dim; j++) sums[off + j] += x[xo + j];
    }
  }
  return { counts, sums, squares };
}

/** sum |x - c_label|^2 from the statistics, in float64. */
function inertiaOf(stats: PassStats, centroids: Float32Array, dim: number): number {
  let total = stats.squares;
  for (let c = 0; c < stats.counts.length; c++) {
    if (stats.counts[c] === 0) continue;
    let dot = 0, cc = 0;
    for (let j = 0; j < dim; j++) {
      const v = centroids[c * dim + j];
      dot += v * stats.sums[c * dim + j];
      cc += v * v;
    }
    total += -2 * dot + stats.counts[c] * cc;
  }
  return Math.max(total, 0);
}

/**
 * Re-seeds each empty cluster with a perturbed copy of a populated one (faiss's
 * split_clusters): cluster j is chosen with probability (n_j - 1) / (n - K), visiting the
 * clusters round-robin. `counts` is updated as if the split were even. Returns the count.
 */
export function splitEmptyClusters(
  centroids: Float32Array,
  counts: Float64Array,
  dim: number,
  rows: number,
  gen: Rng,
): number {
  const k = counts.length;
  let splits = 0;
  for (let ci = 0; ci < k; ci++) {
    if (counts[ci] !== 0) continue;
    let cj = 0;
    for (;; cj = (cj + 1) % k) {
      const p = (counts[cj] - 1) / (rows - k);
      if (gen.uniform() < p) break;
    }
    centroids.copyWithin(ci * dim, cj * dim, (cj + 1) * dim);
    for (let j = 0; j < dim; j++) {
      const up = j % 2 === 0;
      centroids[ci * dim + j] *= up ? 1 + EPS : 1 - EPS;
      centroids[cj * dim + j] *= up ? 1 - EPS : 1 + EPS;
    }
    counts[ci] = counts[cj] / 2;
    counts[cj] -= counts[ci];
    splits++;
  }
  return splits;
}

function normalizeRows(c: Float32Array, k: number, dim: number): void {
  for (let i = 0; i < k; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += c[i * dim + j] ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < dim; j++) c[i * dim + j] *= inv;
  }
}

/** The training rows: all of them, or a seeded K * maxPointsPerCentroid subsample. */
export async function trainingSet(
  source: FeatureSource,
  opts: KMeansOptions,
): Promise<FeatureSource> {
  const { k } = opts;
  const seed = opts.seed ?? 1234;
  const maxPer = opts.maxPointsPerCentroid ?? 256;
  const minPer = opts.minPointsPerCentroid ?? 39;
  if (!Number.isInteger(k) || k < 1) {
    throw new Error(`kmeans: k must be a positive integer, got ${k}`);
  }
  if (source.rows < k) {
    throw new Error(
      `kmeans: ${source.rows} training rows cannot make ${k} clusters (need at least as many rows as clusters)`,
    );
  }
  if (maxPer > 0 && source.rows > k * maxPer) {
    opts.log?.info(`kmeans: sampling ${k * maxPer} of ${source.rows} rows for training`);
    return await subsetSource(
      source,
      sampleRows(source.rows, k * maxPer, seed),
      opts.memoryBytes ?? 2 ** 31,
      opts.spillPath,
    );
  }
  if (source.rows < k * minPer) {
    opts.log?.warn(
      `kmeans: clustering ${source.rows} rows into ${k} centroids; at least ${
        k * minPer
      } are advised`,
    );
  }
  if (source.inMemory || source.rows * source.dim * 4 > (opts.memoryBytes ?? 2 ** 31)) {
    return source;
  }
  // Small enough: read the shards once instead of once per iteration.
  const all = new Float32Array(source.rows * source.dim);
  for await (const b of source.blocks(65536)) all.set(b.data, b.start * source.dim);
  return memorySource(all, source.dim);
}

async function initialCentroids(
  training: FeatureSource,
  opts: KMeansOptions,
): Promise<Float32Array> {
  const { k } = opts;
  const seed = opts.seed ?? 1234;
  const init = opts.init ?? "random";
  if (init instanceof Float32Array) {
    if (init.length !== k * training.dim) {
      throw new Error(
        `kmeans: initial centroids hold ${init.length} values, expected ${k} x ${training.dim}`,
      );
    }
    return init.slice();
  }
  if (init === "random") return await randomInit(training, k, seed);
  if (init === "kmeans++") {
    return await kmeansPlusPlusInit(training, k, seed, opts.kmeansppMaxRows ?? 64 * k);
  }
  throw new Error(
    `kmeans: unknown init '${init}' (expected random, kmeans++ or an array of centroids)`,
  );
}

/** Fits K centroids to the rows of `source`. */
export async function fitKMeans(source: FeatureSource, opts: KMeansOptions): Promise<KMeansResult> {
  const { k } = opts;
  const dim = source.dim;
  const iterations = opts.iterations ?? 20;
  const seed = opts.seed ?? 1234;
  if (!Number.isInteger(iterations) || iterations < 0) {
    throw new Error(`kmeans: iterations must be an integer >= 0, got ${iterations}`);
  }
  const training = await trainingSet(source, opts);
  const centroids = await initialCentroids(training, opts);
  if (opts.spherical) normalizeRows(centroids, k, dim);
  opts.log?.info(
    `kmeans: ${training.rows} rows of dimension ${dim} into ${k} clusters, ${iterations} iterations`,
  );

  const stats: IterationStats[] = [];
  const t0 = performance.now();
  let squares: number | null = null;
  for (let it = 0; it < iterations; it++) {
    const index = new CentroidIndex(centroids, k, dim, opts.backend);
    let pass: PassStats;
    try {
      pass = await assignmentPass(training, index, squares, opts.signal);
      squares = pass.squares;
    } finally {
      index.dispose();
    }
    const inertia = inertiaOf(pass, centroids, dim);
    let sumSq = 0;
    for (let c = 0; c < k; c++) {
      sumSq += pass.counts[c] ** 2;
      const n = pass.counts[c];
      for (let j = 0; j < dim; j++) centroids[c * dim + j] = n > 0 ? pass.sums[c * dim + j] / n : 0;
    }
    const splits = splitEmptyClusters(
      centroids,
      pass.counts,
      dim,
      training.rows,
      new Rng(seed + 3),
    );
    if (opts.spherical) normalizeRows(centroids, k, dim);
    const s: IterationStats = {
      iteration: it,
      inertia,
      seconds: (performance.now() - t0) / 1000,
      imbalance: (sumSq * k) / (training.rows * training.rows),
      splits,
    };
    stats.push(s);
    // One line per iteration is the progress: "iteration 4/4" ends at 100%, and a second
    // progress line would say the same again.
    opts.log?.info(
      `kmeans: iteration ${it + 1}/${iterations} (${s.seconds.toFixed(2)} s): inertia ${
        inertia.toPrecision(8)
      } ` +
        `imbalance ${s.imbalance.toFixed(3)} splits ${splits}`,
    );
    opts.onIteration?.(s, centroids);
  }
  return { centroids, k, dim, trainingRows: training.rows, stats };
}

/** Sum of squared distances of every row of `source` to its nearest centroid, and the cluster sizes. */
export async function evaluateKMeans(
  source: FeatureSource,
  centroids: Float32Array,
  k: number,
  backend?: Backend,
): Promise<{ inertia: number; counts: Float64Array }> {
  const index = new CentroidIndex(centroids, k, source.dim, backend);
  try {
    const pass = await assignmentPass(source, index, null);
    return { inertia: inertiaOf(pass, centroids, source.dim), counts: pass.counts };
  } finally {
    index.dispose();
  }
}
