/**
 * Streaming mean and covariance of feature vectors in float64, as FID needs them.
 *
 * Rows arrive in batches of any size. They are copied into a fixed-size chunk, and only
 * full chunks (plus the last partial one) are folded into the running moments, so the
 * result depends on the sequence of rows and never on how the caller batched them: it is
 * bit-for-bit identical for batch sizes 1, 7 or 5000.
 *
 * Each chunk is centred on its own mean before its outer products are summed (one syrk),
 * and chunks are merged with Chan et al.'s pairwise update
 *   M2 = M2_a + M2_b + (n_a n_b / n) delta delta^T,   delta = mean_b - mean_a,
 * which avoids the cancellation of the naive sum(x x^T) - n mu mu^T.
 * `covariance()` matches numpy's `np.cov(x, rowvar=False)` (divisor n - 1).
 */

import { gramUpper, mirrorUpper } from "../../core/linalg/blas.ts";

export interface FeatureStatsOptions {
  /** Rows per internal chunk (default 512). Changing it changes rounding, not results. */
  chunkRows?: number;
}

/** Mean and covariance of a feature set, the inputs of the Frechet distance. */
export interface GaussianStats {
  dim: number;
  /** Number of samples the statistics were computed from. */
  count: number;
  /** (dim) mean. */
  mu: Float64Array;
  /** (dim, dim) row-major covariance, divisor count - 1. */
  sigma: Float64Array;
}

export class FeatureStats {
  readonly dim: number;
  readonly chunkRows: number;
  #count = 0;
  #mean: Float64Array;
  /** Upper triangle of the sum of centred outer products over folded rows. */
  #m2: Float64Array;
  #chunk: Float64Array;
  #chunkFill = 0;

  constructor(dim: number, options: FeatureStatsOptions = {}) {
    if (!Number.isInteger(dim) || dim <= 0) {
      throw new Error(`FeatureStats: dim must be a positive integer, got ${dim}`);
    }
    this.dim = dim;
    this.chunkRows = options.chunkRows ?? 512;
    if (!Number.isInteger(this.chunkRows) || this.chunkRows <= 0) {
      throw new Error(`FeatureStats: chunkRows must be a positive integer, got ${this.chunkRows}`);
    }
    this.#mean = new Float64Array(dim);
    this.#m2 = new Float64Array(dim * dim);
    this.#chunk = new Float64Array(this.chunkRows * dim);
  }

  /** Number of rows seen so far. */
  get count(): number {
    return this.#count + this.#chunkFill;
  }

  /** Adds a batch of rows: `features` is (rows, dim) row-major. */
  update(features: Float32Array | Float64Array): void {
    const d = this.dim;
    if (features.length % d !== 0) {
      throw new Error(
        `FeatureStats.update: ${features.length} values is not a whole number of rows of dim ${d}`,
      );
    }
    const rows = features.length / d;
    for (let r = 0; r < rows;) {
      const take = Math.min(rows - r, this.chunkRows - this.#chunkFill);
      const src = features.subarray(r * d, (r + take) * d);
      for (let i = 0; i < src.length; i++) {
        const v = src[i];
        if (!Number.isFinite(v)) {
          throw new Error(
            `FeatureStats.update: non-finite value ${v} at row ${r + Math.floor(i / d)}, ` +
              `column ${i % d}`,
          );
        }
      }
      this.#chunk.set(src, this.#chunkFill * d);
      this.#chunkFill += take;
      r += take;
      if (this.#chunkFill === this.chunkRows) this.#foldChunk();
    }
  }

  /** The (dim) mean of all rows so far. */
  mean(): Float64Array {
    if (this.count === 0) throw new Error("FeatureStats.mean: no samples yet");
    return this.#moments().mean;
  }

  /** The (dim, dim) covariance with divisor n - 1, like `np.cov(x, rowvar=False)`. */
  covariance(): Float64Array {
    return this.finalize().sigma;
  }

  /** Mean, covariance and count together. */
  finalize(): GaussianStats {
    if (this.count < 2) {
      throw new Error(
        `FeatureStats: covariance needs at least 2 samples, got ${this.count} (dim ${this.dim})`,
      );
    }
    const { mean, m2, count } = this.#moments();
    const n = this.dim;
    const scale = 1 / (count - 1);
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) m2[i * n + j] *= scale;
    }
    mirrorUpper(m2, n);
    return { dim: n, count, mu: mean, sigma: m2 };
  }

  reset(): void {
    this.#count = 0;
    this.#chunkFill = 0;
    this.#mean.fill(0);
    this.#m2.fill(0);
  }

  #foldChunk(): void {
    const moments = { mean: this.#mean, m2: this.#m2, count: this.#count };
    foldRows(moments, this.#chunk, this.#chunkFill, this.dim);
    this.#count = moments.count;
    this.#chunkFill = 0;
  }

  /** Count, mean and centred sum of outer products so far (copies), for `mergeMoments`. */
  moments(): Moments {
    return this.#moments();
  }

  /**
   * Moments including the rows still buffered, on copies: asking for results mid-stream
   * must not move the chunk boundaries of the rows that follow.
   */
  #moments(): Moments {
    const moments = { mean: this.#mean.slice(), m2: this.#m2.slice(), count: this.#count };
    const pending = this.#chunk.slice(0, this.#chunkFill * this.dim);
    foldRows(moments, pending, this.#chunkFill, this.dim);
    return moments;
  }
}

/** Count, mean and the upper triangle of the centred sum of outer products of a row set. */
export interface Moments {
  mean: Float64Array;
  /** Upper triangle of the sum of centred outer products. */
  m2: Float64Array;
  count: number;
}

/**
 * Folds the moments of a later row set into `into` (Chan et al.'s pairwise update), so row
 * sets computed apart (blocks, shards) combine without their rows. Folding the same blocks
 * in the same order gives the same bits, whichever process computed each block.
 */
export function mergeMoments(into: Moments, other: Moments, dim: number): void {
  if (other.count === 0) return;
  const total = into.count + other.count;
  if (into.count === 0) {
    into.mean.set(other.mean);
    into.m2.set(other.m2);
    into.count = other.count;
    return;
  }
  const delta = new Float64Array(dim);
  for (let j = 0; j < dim; j++) delta[j] = other.mean[j] - into.mean[j];
  const weight = (into.count * other.count) / total;
  for (let i = 0; i < dim; i++) {
    const wi = weight * delta[i];
    const row = i * dim;
    for (let j = i; j < dim; j++) into.m2[row + j] += other.m2[row + j] + wi * delta[j];
  }
  for (let j = 0; j < dim; j++) into.mean[j] += delta[j] * (other.count / total);
  into.count = total;
}

/** Mean and covariance (divisor n - 1) from moments; `m2` is consumed. */
export function statsFromMoments(m: Moments, dim: number): GaussianStats {
  if (m.count < 2) {
    throw new Error(
      `FeatureStats: covariance needs at least 2 samples, got ${m.count} (dim ${dim})`,
    );
  }
  const scale = 1 / (m.count - 1);
  for (let i = 0; i < dim; i++) {
    for (let j = i; j < dim; j++) m.m2[i * dim + j] *= scale;
  }
  mirrorUpper(m.m2, dim);
  return { dim, count: m.count, mu: m.mean, sigma: m.m2 };
}

/** Merges `rows` rows of x (centred in place, so x is scratch) into the moments. */
function foldRows(moments: Moments, x: Float64Array, rows: number, d: number): void {
  if (rows === 0) return;
  const chunkMean = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < d; j++) chunkMean[j] += x[r * d + j];
  }
  for (let j = 0; j < d; j++) chunkMean[j] /= rows;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < d; j++) x[r * d + j] -= chunkMean[j];
  }
  gramUpper(d, rows, 1, x.subarray(0, rows * d), 1, moments.m2);

  const before = moments.count;
  const total = before + rows;
  if (before > 0) {
    const delta = new Float64Array(d);
    for (let j = 0; j < d; j++) delta[j] = chunkMean[j] - moments.mean[j];
    const weight = (before * rows) / total;
    for (let i = 0; i < d; i++) {
      const wi = weight * delta[i];
      const row = i * d;
      for (let j = i; j < d; j++) moments.m2[row + j] += wi * delta[j];
    }
    for (let j = 0; j < d; j++) moments.mean[j] += delta[j] * (rows / total);
  } else {
    moments.mean.set(chunkMean);
  }
  moments.count = total;
}

/** Statistics of one (rows, dim) array in a single call. */
export function featureStats(features: Float32Array | Float64Array, dim: number): GaussianStats {
  const stats = new FeatureStats(dim);
  stats.update(features);
  return stats.finalize();
}
