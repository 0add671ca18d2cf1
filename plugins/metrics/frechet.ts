/**
 * Frechet distance between two Gaussians N(mu1, S1) and N(mu2, S2), the formula behind FID:
 *
 *   d^2 = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2).
 *
 * pytorch-fid and torch-fidelity 0.3.0 take scipy's `sqrtm(S1 @ S2)` (a Schur method on a
 * non-symmetric product); newer torch-fidelity sums sqrt(eigvals(S1 @ S2)). We use the
 * symmetric form: with S1 = G^T G, where G's rows are sqrt(w_i) v_i from S1's eigenpairs,
 * the matrix M = G S2 G^T is symmetric PSD and has the same eigenvalues as S1 S2, so
 *   tr sqrt(S1 S2) = sum_i sqrt(max(lambda_i(M), 0)).
 * Only symmetric eigensolves are needed: robust for singular covariances, and fast.
 */

import { gemm, trace } from "../../core/linalg/blas.ts";
import { eigvalsh } from "../../core/linalg/eigh.ts";
import { psdFactorRows } from "../../core/linalg/sqrt_psd.ts";
import type { GaussianStats } from "./stats.ts";

export interface FrechetParts {
  /** The Frechet distance (FID when the statistics are Inception pool3 features). */
  distance: number;
  /** |mu1 - mu2|^2 */
  meanTerm: number;
  traceSigma1: number;
  traceSigma2: number;
  /** tr sqrt(S1 S2) */
  traceSqrtProduct: number;
}

/** Frechet distance between N(mu1, sigma1) and N(mu2, sigma2); sigmas are (d, d) row-major. */
export function frechetDistance(
  mu1: Float64Array,
  sigma1: Float64Array,
  mu2: Float64Array,
  sigma2: Float64Array,
): number {
  return frechetDistanceParts(mu1, sigma1, mu2, sigma2).distance;
}

/** Same, from two `GaussianStats`. */
export function frechetDistanceOfStats(a: GaussianStats, b: GaussianStats): number {
  return frechetDistance(a.mu, a.sigma, b.mu, b.sigma);
}

/** The distance and its terms, for reports and debugging. */
export function frechetDistanceParts(
  mu1: Float64Array,
  sigma1: Float64Array,
  mu2: Float64Array,
  sigma2: Float64Array,
): FrechetParts {
  const d = mu1.length;
  if (mu2.length !== d || sigma1.length !== d * d || sigma2.length !== d * d) {
    throw new Error(
      `frechetDistance: shapes disagree: mu1 (${d}), mu2 (${mu2.length}), ` +
        `sigma1 ${sigma1.length} and sigma2 ${sigma2.length} elements (want ${d * d})`,
    );
  }
  for (
    const [name, a] of [["mu1", mu1], ["sigma1", sigma1], ["mu2", mu2], ["sigma2", sigma2]] as const
  ) {
    const bad = a.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`frechetDistance: ${name}[${bad}] is ${a[bad]}`);
  }
  let meanTerm = 0;
  for (let i = 0; i < d; i++) {
    const diff = mu1[i] - mu2[i];
    meanTerm += diff * diff;
  }
  const traceSqrtProduct = traceSqrtOfProduct(sigma1, sigma2, d);
  const traceSigma1 = trace(sigma1, d);
  const traceSigma2 = trace(sigma2, d);
  const distance = meanTerm + traceSigma1 + traceSigma2 - 2 * traceSqrtProduct;
  return { distance, meanTerm, traceSigma1, traceSigma2, traceSqrtProduct };
}

/** tr sqrt(S1 S2) for symmetric PSD S1, S2 of size (d, d). */
export function traceSqrtOfProduct(sigma1: Float64Array, sigma2: Float64Array, d: number): number {
  const G = psdFactorRows(sigma1, d, 0.5); // G^T G = S1
  const GS2 = new Float64Array(d * d);
  gemm(false, false, d, d, d, 1, G, sigma2, 0, GS2);
  const M = new Float64Array(d * d);
  gemm(false, true, d, d, d, 1, GS2, G, 0, M); // M = G S2 G^T
  const lambdas = eigvalsh(M, d); // reads M's upper triangle
  let total = 0;
  for (const lambda of lambdas) total += Math.sqrt(Math.max(lambda, 0));
  return total;
}
