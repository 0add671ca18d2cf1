/**
 * Nearest-centroid search through the tensor runtime, as DiGIT's `prepare_semantic` does:
 *
 *   dist(x, c) = (|x|^2 - 2 x.c) + |c|^2,   label = argmin_c dist (the first minimum on ties)
 *
 * x.c is one matmul (CPU BLAS or WebGPU), so the cost is that of an (n, D) x (D, K) product.
 * The -2 is folded into the stored centroids (scaling by 2 is exact in floating point), and
 * `distances`/`assign`/`search` keep DiGIT's order of additions, so their float32 distances
 * are those of its formula. `labels`, used by the K-Means iterations, drops the |x|^2 term
 * (the same for every centroid of a row) and fuses |c|^2 into the matmul as a bias, as faiss
 * does; it costs about half as much.
 * Rows are processed in pieces so the (rows, K) distance matrix stays bounded.
 */

import type { Backend } from "../../core/backend.ts";
import { noGrad } from "../../core/autograd.ts";
import { defaultBackend } from "../../core/device.ts";
import * as ops from "../../core/ops/mod.ts";
import { type Tensor, tidy, tidyAsync } from "../../core/tensor.ts";

/** Budget for one (rows, K) distance block, in floats. */
const DIST_BUDGET = 1 << 23;

export class CentroidIndex {
  readonly k: number;
  readonly dim: number;
  readonly backend: Backend;
  /** -2 * centroids, (K, D) */
  readonly #minus2c: Tensor;
  /** |c|^2, (K) */
  readonly #cc: Tensor;

  constructor(
    centroids: Float32Array,
    k: number,
    dim: number,
    backend: Backend = defaultBackend(),
  ) {
    if (centroids.length !== k * dim) {
      throw new Error(`kmeans: ${centroids.length} centroid values are not ${k} x ${dim}`);
    }
    this.k = k;
    this.dim = dim;
    this.backend = backend;
    const minus2 = new Float32Array(k * dim);
    const cc = new Float32Array(k);
    for (let i = 0; i < k; i++) {
      let s = 0;
      for (let j = 0; j < dim; j++) {
        const v = centroids[i * dim + j];
        minus2[i * dim + j] = -2 * v;
        s += v * v;
      }
      cc[i] = s; // rounded once to float32
    }
    this.#minus2c = ops.tensor(minus2, [k, dim], { backend }).keep();
    this.#cc = ops.tensor(cc, [k], { backend }).keep();
  }

  /** Rows per piece so that a (rows, K) block stays within the budget. */
  get rowsPerPiece(): number {
    return Math.max(1, Math.floor(DIST_BUDGET / this.k));
  }

  #checkDim(d: number, what: string): void {
    if (d !== this.dim) {
      throw new Error(
        `kmeans: ${what} have dimension ${d} but the ${this.k} centroids have dimension ${this.dim}`,
      );
    }
  }

  /** Distances (rows, K) of a device block x (rows, D). */
  distances(x: Tensor): Tensor {
    this.#checkDim(x.shape[x.ndim - 1], "features");
    return noGrad(() =>
      tidy(() => {
        const xx = ops.sum(ops.square(x), -1, true); // (rows, 1)
        const s = ops.linear(x, this.#minus2c); // -2 x.c, (rows, K)
        return ops.add(ops.add(xx, s), this.#cc);
      })
    );
  }

  /** Labels (i32) of features (..., D) on the device, without reading them back. */
  assign(features: Tensor): Tensor {
    const D = features.shape[features.ndim - 1];
    this.#checkDim(D, "features");
    const lead = features.shape.slice(0, -1);
    const rows = features.size / D;
    return noGrad(() =>
      tidy(() => {
        const flat = ops.reshape(features, [rows, D]);
        const step = this.rowsPerPiece;
        const parts: Tensor[] = [];
        for (let s = 0; s < rows; s += step) {
          const piece = ops.slice(flat, 0, s, Math.min(rows, s + step));
          parts.push(ops.argmin(this.distances(piece), 1));
        }
        const labels = parts.length === 1 ? parts[0] : ops.cat(parts, 0);
        return ops.reshape(labels, lead);
      })
    );
  }

  /** Host rows (n*D values) to nearest-centroid labels: argmin_c (|c|^2 - 2 x.c). */
  async labels(data: Float32Array): Promise<Int32Array> {
    const n = this.#rowsOf(data);
    const labels = new Int32Array(n);
    const step = this.rowsPerPiece;
    for (let s = 0; s < n; s += step) {
      const m = Math.min(step, n - s);
      const l = await tidyAsync(async () => {
        const x = ops.tensor(data.subarray(s * this.dim, (s + m) * this.dim), [m, this.dim], {
          backend: this.backend,
        });
        return await noGrad(() => ops.argmin(ops.linear(x, this.#minus2c, this.#cc), 1)).data();
      });
      labels.set(l, s);
    }
    return labels;
  }

  #rowsOf(data: Float32Array): number {
    if (data.length % this.dim !== 0) {
      throw new Error(
        `kmeans: ${data.length} values do not split into rows of the centroids' dimension ${this.dim}`,
      );
    }
    return data.length / this.dim;
  }

  /** Host rows (n*D values) to labels and their (float32) squared distances. */
  async search(data: Float32Array): Promise<{ labels: Int32Array; distances: Float32Array }> {
    const n = this.#rowsOf(data);
    const labels = new Int32Array(n);
    const distances = new Float32Array(n);
    const step = this.rowsPerPiece;
    for (let s = 0; s < n; s += step) {
      const m = Math.min(step, n - s);
      const [l, d] = await tidyAsync(async () => {
        const x = ops.tensor(data.subarray(s * this.dim, (s + m) * this.dim), [m, this.dim], {
          backend: this.backend,
        });
        const dist = this.distances(x);
        const lab = ops.argmin(dist, 1);
        const best = noGrad(() => ops.min(dist, 1));
        return [await lab.data(), await best.data()];
      });
      labels.set(l, s);
      distances.set(d, s);
    }
    return { labels, distances };
  }

  dispose(): void {
    this.#minus2c.dispose();
    this.#cc.dispose();
  }
}
