/**
 * Initial centroids.
 *  - "random": faiss's default (Clustering::train): the first K rows of a random permutation
 *    of the training set seeded with seed+1 (faiss's seed is 1234 by default).
 *  - "kmeans++": Arthur & Vassilvitskii's D^2 sampling: each next centroid is a row drawn
 *    with probability proportional to its squared distance to the nearest chosen one. It is
 *    sequential, O(rows * K * D) on the host, so for large K it runs on a sample of rows.
 */

import { Rng } from "../../core/random.ts";
import {
  type FeatureSource,
  gatherRows,
  permutationPrefix,
  sampleRows,
  subsetSource,
} from "./source.ts";

export type InitMethod = "random" | "kmeans++";
export const INIT_METHODS: readonly InitMethod[] = ["random", "kmeans++"];

/** faiss-style random init: rows perm[0..K) of a permutation seeded with seed + 1. */
export async function randomInit(
  source: FeatureSource,
  k: number,
  seed: number,
): Promise<Float32Array> {
  return await gatherRows(source, permutationPrefix(source.rows, k, seed + 1));
}

/** D^2 sampling on rows held in memory (n x dim). */
export function kmeansPlusPlusInMemory(
  data: Float32Array,
  n: number,
  dim: number,
  k: number,
  seed: number,
): Float32Array {
  if (n < k) throw new Error(`kmeans++: ${n} rows cannot seed ${k} centroids`);
  const gen = new Rng(seed);
  const out = new Float32Array(k * dim);
  const nearest = new Float64Array(n).fill(Infinity);
  let chosen = gen.int(n);
  for (let c = 0; c < k; c++) {
    out.set(data.subarray(chosen * dim, (chosen + 1) * dim), c * dim);
    // Update each row's squared distance to its nearest chosen centroid.
    let total = 0;
    for (let i = 0; i < n; i++) {
      let d = 0;
      for (let j = 0; j < dim; j++) {
        const t = data[i * dim + j] - out[c * dim + j];
        d += t * t;
      }
      if (d < nearest[i]) nearest[i] = d;
      total += nearest[i];
    }
    if (c + 1 === k) break;
    if (total === 0) {
      // Fewer distinct rows than K: any row will do (the empty clusters get split later).
      chosen = gen.int(n);
      continue;
    }
    const target = gen.uniform() * total;
    let acc = 0;
    chosen = n - 1;
    for (let i = 0; i < n; i++) {
      acc += nearest[i];
      if (acc > target) {
        chosen = i;
        break;
      }
    }
  }
  return out;
}

/**
 * k-means++ over the source, or over `maxRows` rows drawn from it (seeded) when it is larger:
 * the rows are gathered into memory first.
 */
export async function kmeansPlusPlusInit(
  source: FeatureSource,
  k: number,
  seed: number,
  maxRows = Infinity,
): Promise<Float32Array> {
  let rows = source;
  if (source.rows > maxRows) {
    rows = await subsetSource(source, sampleRows(source.rows, maxRows, seed + 2), Infinity);
  }
  const data = new Float32Array(rows.rows * rows.dim);
  for await (const b of rows.blocks(65536)) data.set(b.data, b.start * rows.dim);
  return kmeansPlusPlusInMemory(data, rows.rows, rows.dim, k, seed);
}
