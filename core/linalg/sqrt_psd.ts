/**
 * Square root of a symmetric positive semi-definite matrix through its eigendecomposition:
 * sqrt(S) = V diag(sqrt(max(w, 0))) V^T. Eigenvalues that rounding pushed below zero are
 * clamped, which is what "PSD" promises for covariance matrices.
 */

import { gramUpper, mirrorUpper } from "./blas.ts";
import { eigh } from "./eigh.ts";

/** The symmetric square root of the PSD (n, n) matrix S, row-major (n, n). */
export function sqrtPsd(S: Float64Array, n: number): Float64Array {
  // sqrt(S) = sum_i sqrt(w_i) v_i v_i^T = B^T B with rows b_i = w_i^{1/4} v_i (one syrk).
  const B = psdFactorRows(S, n, 0.25);
  const root = new Float64Array(n * n);
  gramUpper(n, n, 1, B, 0, root);
  mirrorUpper(root, n);
  return root;
}

/**
 * Rows g_i = max(w_i, 0)^power * v_i for the eigenpairs (w_i, v_i) of the symmetric S, as a
 * row-major (n, n) array. With power 1/2, G^T G = S and G S2 G^T has the eigenvalues of S S2.
 */
export function psdFactorRows(S: Float64Array, n: number, power: number): Float64Array {
  const { values, vectorRows } = eigh(S, n, { vectors: true });
  const G = vectorRows!;
  for (let i = 0; i < n; i++) {
    const scale = Math.pow(Math.max(values[i], 0), power);
    for (let j = 0; j < n; j++) G[i * n + j] *= scale;
  }
  return G;
}
