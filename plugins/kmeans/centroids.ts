/**
 * Centroid files exactly like DiGIT's: `np.save("km_8k.npy", kmeans.centroids)`, a float32
 * C-order array of shape (K, D). The name follows DiGIT's `km_{K // 1000}k.npy`.
 */

import type { HostTensor } from "../../core/io/host_tensor.ts";
import { readNpyMatrix, writeNpyMatrix } from "./npy_matrix.ts";

export interface Centroids {
  /** (k, dim) values, row-major. */
  data: Float32Array;
  k: number;
  dim: number;
}

export function readCentroids(path: string): Centroids {
  const m = readNpyMatrix(path);
  if (m.rows < 1 || m.cols < 1) {
    throw new Error(`${path}: empty centroid array (${m.rows}, ${m.cols})`);
  }
  return { data: m.data, k: m.rows, dim: m.cols };
}

export function writeCentroids(path: string, c: Centroids): void {
  writeNpyMatrix(path, c.data, c.k, c.dim);
}

/** DiGIT's file name for K clusters: km_8k.npy for 8192, km_16k.npy for 16384 (km_64.npy below 1000). */
export function centroidFileName(k: number): string {
  return k < 1000 ? `km_${k}.npy` : `km_${Math.floor(k / 1000)}k.npy`;
}

/** Centroids from a loaded (K, D) float tensor, e.g. the `centroids` of a DiGIT checkpoint. */
export function centroidsFromHost(t: HostTensor, what = "centroids"): Centroids {
  if (t.dtype !== "f32" || t.shape.length !== 2) {
    throw new Error(`${what}: expected a (K, D) float tensor, got ${t.dtype} [${t.shape}]`);
  }
  return { data: t.data as Float32Array, k: t.shape[0], dim: t.shape[1] };
}
