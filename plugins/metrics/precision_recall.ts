/**
 * Improved precision and recall (Kynkaanniemi et al., NeurIPS 2019), with torch-fidelity's
 * conventions (`torch_fidelity/metric_prc.py`):
 *
 * - each sample of a set gets a radius: the distance to its k-th nearest neighbour in the
 *   same set, i.e. the (k+1)-th smallest distance counting itself (k = 3);
 * - precision = share of generated samples within (<=) the radius of at least one real one;
 * - recall    = share of real samples within the radius of at least one generated one;
 * - f_score   = 2 P R / max(1e-5, P + R).
 *
 * Distances come from |a|^2 + |b|^2 - 2 a.b in float64, with the a.b products done as gemm
 * over blocks of rows so that memory stays at a few blocks, never N x N. Comparisons are on
 * squared distances (same order as distances).
 */

import { gemm } from "../../core/linalg/blas.ts";

export interface PrecisionRecallOptions {
  /** k of the k-NN radius (torch-fidelity `prc_neighborhood`, default 3). */
  neighborhood?: number;
  /** Rows per distance block (memory ~ 2 * blockRows^2 * 8 bytes plus the blocks). */
  blockRows?: number;
}

export interface PrecisionRecall {
  precision: number;
  recall: number;
  fScore: number;
}

type Features = Float32Array | Float64Array;

/** Precision and recall of `generated` (nGenerated, dim) against `real` (nReal, dim). */
export function precisionRecall(
  real: Features,
  nReal: number,
  generated: Features,
  nGenerated: number,
  dim: number,
  options: PrecisionRecallOptions = {},
): PrecisionRecall {
  const k = options.neighborhood ?? 3;
  const block = options.blockRows ?? 1024;
  checkShape("real", real, nReal, dim);
  checkShape("generated", generated, nGenerated, dim);
  for (const [name, n] of [["real", nReal], ["generated", nGenerated]] as const) {
    if (n < k + 1) {
      throw new Error(`precisionRecall: ${name} has ${n} samples, need more than k=${k}`);
    }
  }
  const realSet = new FeatureSet(real, nReal, dim);
  const generatedSet = new FeatureSet(generated, nGenerated, dim);
  const realRadii = kNearestRadiiSquared(realSet, k, block);
  const generatedRadii = kNearestRadiiSquared(generatedSet, k, block);
  const precision = shareInsideAnyBall(generatedSet, realSet, realRadii, block);
  const recall = shareInsideAnyBall(realSet, generatedSet, generatedRadii, block);
  const fScore = (2 * precision * recall) / Math.max(1e-5, precision + recall);
  return { precision, recall, fScore };
}

function checkShape(name: string, x: Features, n: number, dim: number) {
  if (x.length !== n * dim) {
    throw new Error(`precisionRecall: ${name} has ${x.length} values, expected (${n}, ${dim})`);
  }
}

/** A (count, dim) feature matrix handed out in float64 row blocks, with squared norms. */
class FeatureSet {
  readonly norms: Float64Array;

  constructor(readonly data: Features, readonly count: number, readonly dim: number) {
    this.norms = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      let s = 0;
      for (let j = 0; j < dim; j++) {
        const v = data[i * dim + j];
        s += v * v;
      }
      if (!Number.isFinite(s)) throw new Error(`precisionRecall: non-finite feature in row ${i}`);
      this.norms[i] = s;
    }
  }

  /** Rows [start, start + rows) as float64: a view of float64 data, else copied to scratch. */
  rows(start: number, rows: number, scratch: Float64Array): Float64Array {
    const src = this.data.subarray(start * this.dim, (start + rows) * this.dim);
    if (src instanceof Float64Array) return src;
    const view = scratch.subarray(0, src.length);
    view.set(src);
    return view;
  }
}

/**
 * Calls visit(i0, rows, j0, cols, d2) for every (query block, reference block) pair, where
 * d2 is the (rows, cols) row-major block of squared distances, clamped at zero.
 */
function forEachDistanceBlock(
  queries: FeatureSet,
  refs: FeatureSet,
  block: number,
  visit: (i0: number, rows: number, j0: number, cols: number, d2: Float64Array) => void,
): void {
  const dim = queries.dim;
  const queryScratch = new Float64Array(Math.min(block, queries.count) * dim);
  const refScratch = new Float64Array(Math.min(block, refs.count) * dim);
  const d2 = new Float64Array(Math.min(block, queries.count) * Math.min(block, refs.count));
  for (let i0 = 0; i0 < queries.count; i0 += block) {
    const rows = Math.min(block, queries.count - i0);
    const q = queries.rows(i0, rows, queryScratch);
    for (let j0 = 0; j0 < refs.count; j0 += block) {
      const cols = Math.min(block, refs.count - j0);
      const r = refs.rows(j0, cols, refScratch);
      const out = d2.subarray(0, rows * cols);
      gemm(false, true, rows, cols, dim, -2, q, r, 0, out);
      for (let i = 0; i < rows; i++) {
        const qi = queries.norms[i0 + i];
        for (let j = 0; j < cols; j++) {
          out[i * cols + j] = Math.max(0, out[i * cols + j] + qi + refs.norms[j0 + j]);
        }
      }
      visit(i0, rows, j0, cols, out);
    }
  }
}

/** Squared distance from each sample to its k-th nearest neighbour in the same set. */
function kNearestRadiiSquared(set: FeatureSet, k: number, block: number): Float64Array {
  // smallest[i * (k+1) ..] keeps the k+1 smallest squared distances of row i, ascending
  // (the first is the sample itself, at ~0).
  const keep = k + 1;
  const smallest = new Float64Array(set.count * keep).fill(Infinity);
  forEachDistanceBlock(set, set, block, (i0, rows, _j0, cols, d2) => {
    for (let i = 0; i < rows; i++) {
      const base = (i0 + i) * keep;
      for (let j = 0; j < cols; j++) {
        const v = d2[i * cols + j];
        if (v >= smallest[base + keep - 1]) continue;
        let t = keep - 1;
        while (t > 0 && smallest[base + t - 1] > v) {
          smallest[base + t] = smallest[base + t - 1];
          t--;
        }
        smallest[base + t] = v;
      }
    }
  });
  const radii = new Float64Array(set.count);
  for (let i = 0; i < set.count; i++) radii[i] = smallest[i * keep + k];
  return radii;
}

/** Share of `queries` rows within radius of at least one row of `refs`. */
function shareInsideAnyBall(
  queries: FeatureSet,
  refs: FeatureSet,
  refRadiiSquared: Float64Array,
  block: number,
): number {
  const inside = new Uint8Array(queries.count);
  forEachDistanceBlock(queries, refs, block, (i0, rows, j0, cols, d2) => {
    for (let i = 0; i < rows; i++) {
      if (inside[i0 + i]) continue;
      for (let j = 0; j < cols; j++) {
        if (d2[i * cols + j] <= refRadiiSquared[j0 + j]) {
          inside[i0 + i] = 1;
          break;
        }
      }
    }
  });
  let total = 0;
  for (const v of inside) total += v;
  return total / queries.count;
}
