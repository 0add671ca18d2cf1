/**
 * Float64 matrix products on row-major, densely packed `Float64Array`s.
 *
 * Each function calls OpenBLAS when it is loaded and otherwise runs a plain TypeScript
 * loop that gives the same result up to rounding. Shapes are passed explicitly and checked,
 * so a wrong call fails with the shapes in the message rather than reading garbage.
 */

import { nativeBlas } from "./native.ts";

function need(op: string, name: string, array: Float64Array, length: number, shape: string) {
  if (array.length < length) {
    throw new Error(`${op}: ${name} ${shape} needs ${length} elements, got ${array.length}`);
  }
}

/**
 * C = alpha * op(A) op(B) + beta * C, where op(A) is (m, k) and op(B) is (k, n).
 * A is stored (m, k), or (k, m) when transA; B is stored (k, n), or (n, k) when transB.
 */
export function gemm(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  A: Float64Array,
  B: Float64Array,
  beta: number,
  C: Float64Array,
): void {
  need("gemm", "A", A, m * k, transA ? `(${k}, ${m})` : `(${m}, ${k})`);
  need("gemm", "B", B, k * n, transB ? `(${n}, ${k})` : `(${k}, ${n})`);
  need("gemm", "C", C, m * n, `(${m}, ${n})`);
  const blas = nativeBlas();
  if (blas) {
    blas.dgemm(transA, transB, m, n, k, alpha, A, transA ? m : k, B, transB ? k : n, beta, C, n);
    return;
  }
  // Plain loop on untransposed copies: row i of C accumulates rows of B scaled by A[i, p].
  const a = transA ? transpose(A, k, m) : A;
  const b = transB ? transpose(B, n, k) : B;
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    if (beta === 0) C.fill(0, ci, ci + n);
    else if (beta !== 1) { for (let j = 0; j < n; j++) C[ci + j] *= beta; }
    for (let p = 0; p < k; p++) {
      const s = alpha * a[i * k + p];
      if (s === 0) continue;
      const bp = p * n;
      for (let j = 0; j < n; j++) C[ci + j] += s * b[bp + j];
    }
  }
}

/** Convenience: a fresh (m, n) = op(A) op(B). */
export function matmul(
  A: Float64Array,
  B: Float64Array,
  m: number,
  k: number,
  n: number,
  transA = false,
  transB = false,
): Float64Array {
  const C = new Float64Array(m * n);
  gemm(transA, transB, m, n, k, 1, A, B, 0, C);
  return C;
}

/**
 * Upper triangle (row-major, j >= i) of C = alpha * X^T X + beta * C, where X is (k, n):
 * k rows of n-dimensional samples. The strict lower triangle of C is left untouched; call
 * `mirrorUpper` to fill it.
 */
export function gramUpper(
  n: number,
  k: number,
  alpha: number,
  X: Float64Array,
  beta: number,
  C: Float64Array,
): void {
  need("gramUpper", "X", X, k * n, `(${k}, ${n})`);
  need("gramUpper", "C", C, n * n, `(${n}, ${n})`);
  const blas = nativeBlas();
  if (blas) {
    blas.dsyrk("U", true, n, k, alpha, X, n, beta, C, n);
    return;
  }
  for (let i = 0; i < n; i++) {
    const ci = i * n;
    if (beta === 0) C.fill(0, ci + i, ci + n);
    else if (beta !== 1) { for (let j = i; j < n; j++) C[ci + j] *= beta; }
  }
  if (k === 0 || alpha === 0) return;
  // Transpose a block of samples so that each entry is a contiguous dot product.
  const BLOCK = 256;
  const xt = new Float64Array(n * Math.min(BLOCK, k));
  for (let r0 = 0; r0 < k; r0 += BLOCK) {
    const kb = Math.min(BLOCK, k - r0);
    for (let r = 0; r < kb; r++) {
      const src = (r0 + r) * n;
      for (let i = 0; i < n; i++) xt[i * kb + r] = X[src + i];
    }
    gramBlockUpper(n, kb, alpha, xt, C);
  }
}

/** C[i, j] += alpha * <xt_i, xt_j> for j >= i; xt is (n, kb). Two rows at a time. */
function gramBlockUpper(n: number, kb: number, alpha: number, xt: Float64Array, C: Float64Array) {
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const a0 = i * kb, a1 = a0 + kb;
    // The 2x2 diagonal corner.
    let s00 = 0, s01 = 0, s11 = 0;
    for (let r = 0; r < kb; r++) {
      const u = xt[a0 + r], v = xt[a1 + r];
      s00 += u * u;
      s01 += u * v;
      s11 += v * v;
    }
    C[i * n + i] += alpha * s00;
    C[i * n + i + 1] += alpha * s01;
    C[(i + 1) * n + i + 1] += alpha * s11;
    for (let j = i + 2; j < n; j++) {
      const b = j * kb;
      let t0 = 0, t1 = 0;
      for (let r = 0; r < kb; r++) {
        const w = xt[b + r];
        t0 += xt[a0 + r] * w;
        t1 += xt[a1 + r] * w;
      }
      C[i * n + j] += alpha * t0;
      C[(i + 1) * n + j] += alpha * t1;
    }
  }
  if (i < n) {
    const a0 = i * kb;
    let s = 0;
    for (let r = 0; r < kb; r++) s += xt[a0 + r] * xt[a0 + r];
    C[i * n + i] += alpha * s;
  }
}

/** Copies the upper triangle of the (n, n) matrix C onto its lower triangle. */
export function mirrorUpper(C: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) C[j * n + i] = C[i * n + j];
  }
}

/** A fresh (cols, rows) transpose of the row-major (rows, cols) matrix A. */
export function transpose(A: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  const TILE = 32; // tiles keep both the reads and the writes within a few cache lines
  for (let i0 = 0; i0 < rows; i0 += TILE) {
    const i1 = Math.min(rows, i0 + TILE);
    for (let j0 = 0; j0 < cols; j0 += TILE) {
      const j1 = Math.min(cols, j0 + TILE);
      for (let i = i0; i < i1; i++) {
        for (let j = j0; j < j1; j++) out[j * rows + i] = A[i * cols + j];
      }
    }
  }
  return out;
}

/** Sum of the diagonal of the (n, n) matrix A. */
export function trace(A: Float64Array, n: number): number {
  let t = 0;
  for (let i = 0; i < n; i++) t += A[i * n + i];
  return t;
}
