/**
 * Eigendecomposition of a real symmetric matrix in float64.
 *
 * With LAPACK loaded this is `dsyevd` (divide and conquer). Otherwise it is the textbook
 * two-step method in TypeScript:
 *   1. Householder reflections reduce A to a tridiagonal T = Q^T A Q;
 *   2. implicit QL sweeps with a Wilkinson-style shift diagonalise T, and the same plane
 *      rotations turn Q into the eigenvectors.
 * Both return eigenvalues in ascending order and eigenvectors as the ROWS of a row-major
 * (n, n) array, which is LAPACK's own memory layout, so no transpose is needed either way.
 */

import { nativeLapack } from "./native.ts";

export interface SymmetricEigen {
  /** Eigenvalues in ascending order. */
  values: Float64Array;
  /**
   * Row-major (n, n); row i is the unit eigenvector of values[i], so that
   * A = sum_i values[i] * row_i^T row_i. Present only when vectors were requested.
   */
  vectorRows?: Float64Array;
}

export interface EighOptions {
  /** Compute eigenvectors too (default true). Eigenvalues alone are much cheaper. */
  vectors?: boolean;
}

/**
 * Eigenvalues (and eigenvectors) of the symmetric (n, n) row-major matrix A. Only the upper
 * triangle (j >= i) is read; A itself is not modified.
 */
export function eigh(A: Float64Array, n: number, options: EighOptions = {}): SymmetricEigen {
  if (!Number.isInteger(n) || n < 0 || A.length < n * n) {
    throw new Error(`eigh: expected an (n, n) matrix with n=${n}, got ${A.length} elements`);
  }
  const wantVectors = options.vectors ?? true;
  const lapack = nativeLapack();
  if (lapack) {
    const work = A.slice(0, n * n);
    const values = new Float64Array(n);
    // Row-major upper triangle = column-major lower triangle.
    const info = lapack.dsyevd(wantVectors ? "V" : "N", "L", n, work, n, values);
    if (info !== 0) throw new Error(`eigh: LAPACK dsyevd failed with info=${info} (n=${n})`);
    return wantVectors ? { values, vectorRows: work } : { values };
  }
  return eighTs(A, n, wantVectors);
}

/** The TypeScript path of `eigh` (exported so tests can compare it with LAPACK). */
export function eighTs(A: Float64Array, n: number, wantVectors: boolean): SymmetricEigen {
  const W = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) W[i * n + j] = W[j * n + i] = A[i * n + j];
  }
  for (let i = 0; i < n * n; i++) {
    if (!Number.isFinite(W[i])) throw new Error(`eigh: non-finite entry ${W[i]} (n=${n})`);
  }
  const diag = new Float64Array(n);
  const offDiag = new Float64Array(n);
  const tau = new Float64Array(n);
  tridiagonalize(W, n, diag, offDiag, tau);
  const rows = wantVectors ? householderProductTransposed(W, n, tau) : null;
  tridiagonalQL(diag, offDiag, n, rows);
  return sortAscending(diag, rows, n);
}

/**
 * Householder reduction. Step k zeroes row/column k beyond the first off-diagonal entry with
 * H_k = I - tau_k u_k u_k^T acting on indices k+1..n-1. On return diag/offDiag hold T
 * (offDiag[i] = T[i, i+1]), and row k of W holds u_k in columns k+1..n-1.
 */
function tridiagonalize(
  W: Float64Array,
  n: number,
  diag: Float64Array,
  offDiag: Float64Array,
  tau: Float64Array,
): void {
  const p = new Float64Array(n);
  for (let k = 0; k + 2 < n; k++) {
    const row = k * n;
    const first = row + k + 1;
    diag[k] = W[row + k];
    // Scale by the largest entry so the squared norm neither underflows nor overflows.
    let scale = 0;
    for (let j = first; j < row + n; j++) scale = Math.max(scale, Math.abs(W[j]));
    let tail = 0;
    if (scale > 0) {
      for (let j = first + 1; j < row + n; j++) {
        const x = W[j] / scale;
        tail += x * x;
      }
    }
    if (tail === 0) {
      // Already tridiagonal in this column: no reflection.
      offDiag[k] = W[first];
      tau[k] = 0;
      W.fill(0, first, row + n);
      continue;
    }
    const x0 = W[first] / scale;
    const norm = Math.sqrt(x0 * x0 + tail);
    const alpha = x0 > 0 ? -norm : norm; // opposite sign to x0: no cancellation in u0
    W[first] = x0 - alpha;
    for (let j = first + 1; j < row + n; j++) W[j] /= scale;
    const t = 2 / (W[first] * W[first] + tail);
    tau[k] = t;
    offDiag[k] = alpha * scale;

    // Two-sided update of the trailing block B = W[k+1:, k+1:]:
    //   B <- H B H = B - u w^T - w u^T, with p = t B u and w = p - (t/2)(p.u) u.
    const m = n - k - 1;
    let pu = 0;
    for (let i = 0; i < m; i++) {
      const bi = (k + 1 + i) * n + k + 1;
      let s = 0;
      for (let j = 0; j < m; j++) s += W[bi + j] * W[first + j];
      p[i] = t * s;
      pu += p[i] * W[first + i];
    }
    const half = 0.5 * t * pu;
    for (let i = 0; i < m; i++) p[i] -= half * W[first + i];
    for (let i = 0; i < m; i++) {
      const bi = (k + 1 + i) * n + k + 1;
      const ui = W[first + i], wi = p[i];
      for (let j = 0; j < m; j++) W[bi + j] -= ui * p[j] + wi * W[first + j];
    }
  }
  if (n >= 2) {
    diag[n - 2] = W[(n - 2) * n + n - 2];
    offDiag[n - 2] = W[(n - 2) * n + n - 1];
  }
  if (n >= 1) diag[n - 1] = W[n * n - 1];
  if (n >= 1) offDiag[n - 1] = 0;
}

/**
 * Q^T = H_{n-3} ... H_1 H_0 as a fresh row-major matrix, built by right-multiplying the
 * identity by H_{n-3}, then H_{n-4}, ...: each step only touches the trailing block, and
 * row by row it is a dot product plus an axpy on contiguous memory.
 */
function householderProductTransposed(W: Float64Array, n: number, tau: Float64Array) {
  const Z = new Float64Array(n * n);
  for (let i = 0; i < n; i++) Z[i * n + i] = 1;
  for (let k = n - 3; k >= 0; k--) {
    const t = tau[k];
    if (t === 0) continue;
    const u = k * n + k + 1;
    const m = n - k - 1;
    for (let i = k + 1; i < n; i++) {
      const zi = i * n + k + 1;
      let s = 0;
      for (let j = 0; j < m; j++) s += Z[zi + j] * W[u + j];
      s *= t;
      if (s === 0) continue;
      for (let j = 0; j < m; j++) Z[zi + j] -= s * W[u + j];
    }
  }
  return Z;
}

const MAX_SWEEPS_PER_EIGENVALUE = 60;

/**
 * Diagonalises the symmetric tridiagonal (diag, offDiag) in place by implicit QL with a
 * shift from the leading 2x2 block. If `rows` is given, every plane rotation is applied
 * to its rows i, i+1, so rows that start as Q^T end as eigenvectors of Q T Q^T.
 */
function tridiagonalQL(
  diag: Float64Array,
  offDiag: Float64Array,
  n: number,
  rows: Float64Array | null,
): void {
  const d = diag, e = offDiag;
  // An off-diagonal entry is negligible next to the norm of T, not of its neighbours: the
  // rotations leave absolute errors of eps |T| everywhere, so a purely local test never
  // passes between (near-)zero eigenvalues of a singular matrix.
  let norm = 0;
  for (let i = 0; i < n; i++) norm = Math.max(norm, Math.abs(d[i]) + Math.abs(e[i]));
  const negligible = Number.EPSILON * norm;
  for (let l = 0; l < n; l++) {
    for (let sweep = 0;; sweep++) {
      // Find the first negligible off-diagonal entry at or after l.
      let m = l;
      for (; m < n - 1; m++) {
        if (Math.abs(e[m]) <= negligible) break;
      }
      if (m === l) break; // d[l] has converged
      if (sweep === MAX_SWEEPS_PER_EIGENVALUE) {
        throw new Error(`eigh: QL did not converge for eigenvalue ${l} of ${n}`);
      }
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = Math.hypot(g, 1);
      g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
      let s = 1, c = 1, p = 0;
      let underflow = false;
      for (let i = m - 1; i >= l; i--) {
        const f = s * e[i], b = c * e[i];
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          // The rotation underflowed: split the problem here and sweep again.
          d[i + 1] -= p;
          e[m] = 0;
          underflow = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        if (rows) rotateRows(rows, n, i, c, s);
      }
      if (underflow) continue;
      d[l] -= p;
      e[l] = g;
      e[m] = 0;
    }
  }
}

/** (row_i, row_{i+1}) <- (c row_i - s row_{i+1}, s row_i + c row_{i+1}). */
function rotateRows(Z: Float64Array, n: number, i: number, c: number, s: number) {
  const a = i * n, b = a + n;
  for (let t = 0; t < n; t++) {
    const x = Z[a + t], y = Z[b + t];
    Z[a + t] = c * x - s * y;
    Z[b + t] = s * x + c * y;
  }
}

function sortAscending(values: Float64Array, rows: Float64Array | null, n: number) {
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a] - values[b]);
  const sorted = Float64Array.from(order, (i) => values[i]);
  if (!rows) return { values: sorted };
  const vectorRows = new Float64Array(n * n);
  order.forEach((src, dst) => vectorRows.set(rows.subarray(src * n, src * n + n), dst * n));
  return { values: sorted, vectorRows };
}

/** Eigenvalues only (ascending). */
export function eigvalsh(A: Float64Array, n: number): Float64Array {
  return eigh(A, n, { vectors: false }).values;
}
