/**
 * Float64 linear algebra (core/linalg): products against naive loops, the symmetric
 * eigensolver against closed-form spectra, reconstruction and orthogonality, and the
 * TypeScript path against LAPACK when OpenBLAS is loaded.
 */

import { expect, it } from "./lib/test.ts";
import {
  eigh,
  eighTs,
  eigvalsh,
  gemm,
  gramUpper,
  mirrorUpper,
  nativeLapack,
  sqrtPsd,
  transpose,
  withPureTs,
} from "../core/linalg/mod.ts";

const hasLapack = nativeLapack() !== null;

/** Deterministic values in [-0.5, 0.5) (an LCG; any fixed numbers do). */
function numbers(count: number, seed: number): Float64Array {
  let s = seed >>> 0;
  return Float64Array.from({ length: count }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  });
}

function randomSymmetric(n: number, seed: number): Float64Array {
  const r = numbers(n * n, seed);
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) A[i * n + j] = A[j * n + i] = r[i * n + j];
  }
  return A;
}

function naiveProduct(A: Float64Array, B: Float64Array, m: number, k: number, n: number) {
  const C = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += A[i * k + p] * B[p * n + j];
      C[i * n + j] = s;
    }
  }
  return C;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** max |A - V^T diag(w) V| and max |V V^T - I| for eigenvector rows V. */
function eigenResiduals(A: Float64Array, n: number, values: Float64Array, rows: Float64Array) {
  let reconstruction = 0, orthogonality = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let a = 0, g = 0;
      for (let k = 0; k < n; k++) {
        a += rows[k * n + i] * values[k] * rows[k * n + j];
        g += rows[i * n + k] * rows[j * n + k];
      }
      reconstruction = Math.max(reconstruction, Math.abs(a - A[i * n + j]));
      orthogonality = Math.max(orthogonality, Math.abs(g - (i === j ? 1 : 0)));
    }
  }
  return { reconstruction, orthogonality };
}

/** Both paths when LAPACK is there, else the TypeScript one only. */
const paths: [string, <T>(f: () => T) => T][] = [
  ["ts", withPureTs],
  ...(hasLapack ? [["lapack", <T>(f: () => T) => f()] as [string, <T>(f: () => T) => T]] : []),
];

it("gemm: all transpose combinations match a naive triple loop (1e-13)", () => {
  const m = 13, k = 29, n = 7;
  const A = numbers(m * k, 1), B = numbers(k * n, 2);
  const want = naiveProduct(A, B, m, k, n);
  for (const [, run] of paths) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = transA ? transpose(A, m, k) : A;
        const b = transB ? transpose(B, k, n) : B;
        const C = numbers(m * n, 3);
        const C0 = C.slice();
        run(() => gemm(transA, transB, m, n, k, 2, a, b, 0.5, C));
        const expected = want.map((v, i) => 2 * v + 0.5 * C0[i]);
        expect(maxAbsDiff(C, expected), `transA=${transA} transB=${transB}`).toBeLessThan(1e-13);
      }
    }
  }
});

it("gramUpper: upper triangle of alpha X^T X + beta C, lower untouched", () => {
  for (const [k, n] of [[1, 1], [5, 3], [300, 37], [513, 64]]) {
    const X = numbers(k * n, k + n);
    const want = naiveProduct(transpose(X, k, n), X, n, k, n);
    for (const [name, run] of paths) {
      const C = new Float64Array(n * n).fill(7);
      run(() => gramUpper(n, k, 3, X, 0.5, C));
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          const expected = j >= i ? 3 * want[i * n + j] + 3.5 : 7;
          expect(Math.abs(C[i * n + j] - expected), `${name} k=${k} n=${n} (${i},${j})`)
            .toBeLessThan(
              1e-12 * k,
            );
        }
      }
      mirrorUpper(C, n);
      expect(C[(n - 1) * n]).toBe(C[n - 1]);
    }
  }
});

it("eigh: closed-form spectra (diagonal, 2x2, Toeplitz tridiagonal, reflected)", () => {
  for (const [name, run] of paths) {
    // Diagonal with repeats and a negative entry: sorted ascending.
    const diag = [3, -1, 0, 3, 2];
    const D = new Float64Array(25);
    diag.forEach((v, i) => (D[i * 5 + i] = v));
    expect(Array.from(run(() => eigvalsh(D, 5))), name).toEqual([-1, 0, 2, 3, 3]);

    const two = run(() => eigh(Float64Array.of(2, 1, 1, 2), 2));
    expect(maxAbsDiff(two.values, [1, 3]), name).toBeLessThan(1e-15);
    // Eigenvector of 3 is +-(1, 1)/sqrt(2).
    expect(Math.abs(Math.abs(two.vectorRows![2]) - Math.SQRT1_2)).toBeLessThan(1e-15);

    // tridiag(-1, 2, -1): lambda_k = 2 - 2 cos(k pi / (n + 1)).
    const n = 60;
    const T = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      T[i * n + i] = 2;
      if (i + 1 < n) T[i * n + i + 1] = T[(i + 1) * n + i] = -1;
    }
    const exact = Float64Array.from(
      { length: n },
      (_, k) => 2 - 2 * Math.cos(((k + 1) * Math.PI) / (n + 1)),
    );
    const t = run(() => eigh(T, n));
    expect(maxAbsDiff(t.values, exact), `${name} Toeplitz`).toBeLessThan(1e-13);

    // A = H diag(w) H with the reflection H = I - 2 v v^T / v^T v (orthogonal): spectrum w.
    const m = 40;
    const v = numbers(m, 9);
    const vv = v.reduce((s, x) => s + x * x, 0);
    const w = Float64Array.from({ length: m }, (_, i) => (i % 5 === 0 ? 0 : (i - 17) * 0.25));
    const H = new Float64Array(m * m);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) H[i * m + j] = (i === j ? 1 : 0) - (2 * v[i] * v[j]) / vv;
    }
    const HW = H.map((x, idx) => x * w[idx % m]);
    const A = naiveProduct(HW, H, m, m, m);
    const got = run(() => eigh(A, m));
    const sorted = w.slice().sort();
    expect(maxAbsDiff(got.values, sorted), `${name} reflected`).toBeLessThan(1e-13);
    const res = eigenResiduals(A, m, got.values, got.vectorRows!);
    expect(
      res.reconstruction < 1e-13 && res.orthogonality < 1e-13,
      `${name} ${JSON.stringify(res)}`,
    ).toBeTruthy();
  }
});

it("eigh: random symmetric matrices reconstruct with orthonormal eigenvectors", () => {
  for (const n of [1, 2, 3, 17, 120]) {
    const A = randomSymmetric(n, 100 + n);
    for (const [name, run] of paths) {
      const { values, vectorRows } = run(() => eigh(A, n));
      const res = eigenResiduals(A, n, values, vectorRows!);
      expect(res.reconstruction, `${name} n=${n} ${JSON.stringify(res)}`).toBeLessThan(
        1e-13 * n + 1e-15,
      );
      expect(res.orthogonality, `${name} n=${n} ${JSON.stringify(res)}`).toBeLessThan(
        1e-13 * n + 1e-15,
      );
      for (let i = 1; i < n; i++) expect(values[i - 1]).toBeLessThanOrEqual(values[i]);
      // Eigenvalues alone agree with the full decomposition.
      const only = run(() => eigvalsh(A, n));
      expect(maxAbsDiff(only, values), `${name} n=${n} values-only`).toBeLessThan(1e-13);
    }
  }
});

it.skipIf(!hasLapack)("eigh: TypeScript path agrees with LAPACK dsyevd (n = 300)", () => {
  const n = 300;
  const A = randomSymmetric(n, 7);
  const ts = eighTs(A, n, true);
  const lapack = eigh(A, n);
  expect(maxAbsDiff(ts.values, lapack.values)).toBeLessThan(1e-12);
  // Eigenvectors agree up to sign (the spectrum of this matrix is simple).
  for (let i = 0; i < n; i++) {
    let dot = 0;
    for (let j = 0; j < n; j++) dot += ts.vectorRows![i * n + j] * lapack.vectorRows![i * n + j];
    expect(Math.abs(Math.abs(dot) - 1), `eigenvector ${i}: |dot| = ${Math.abs(dot)}`).toBeLessThan(
      1e-9,
    );
  }
});

it("eigh: reads only the upper triangle and rejects bad input", () => {
  const A = Float64Array.of(2, 1, 99, 2); // lower entry is garbage
  for (const [name, run] of paths) {
    expect(maxAbsDiff(run(() => eigvalsh(A, 2)), [1, 3]), name).toBeLessThan(1e-15);
  }
  expect(() => eigh(new Float64Array(5), 3)).toThrow(/eigh: expected an \(n, n\) matrix with n=3/);
  expect(() => eighTs(Float64Array.of(1, NaN, NaN, 1), 2, false)).toThrow(/non-finite/);
});

it("sqrtPsd: squares back to S, clamps tiny negative eigenvalues, diag closed form", () => {
  for (const [name, run] of paths) {
    const d = Float64Array.of(4, 0, 0, 0, 9, 0, 0, 0, 0);
    expect(maxAbsDiff(run(() => sqrtPsd(d, 3)), [2, 0, 0, 0, 3, 0, 0, 0, 0]), name).toBeLessThan(
      1e-15,
    );
    // Rank-deficient PSD S = X^T X with X (5, 12): rank 5 of 12.
    const k = 5, n = 12;
    const X = numbers(k * n, 4);
    const S = naiveProduct(transpose(X, k, n), X, n, k, n);
    const R = run(() => sqrtPsd(S, n));
    expect(maxAbsDiff(R, transpose(R, n, n)), `${name} symmetric`).toBeLessThan(1e-15);
    expect(maxAbsDiff(naiveProduct(R, R, n, n, n), S), `${name} R^2 = S`).toBeLessThan(1e-13);
  }
});

it("eigh: rank-deficient PSD (many zero eigenvalues) converges; nonzero part = X X^T", () => {
  // S = X^T X with X (20, 160): 140 eigenvalues are 0, the other 20 are those of X X^T
  // (20, 20), a well-conditioned matrix. (A QL deflation test relative to neighbouring
  // diagonal entries never converges on this one.)
  const k = 20, n = 160;
  const X = numbers(k * n, 12);
  const S = naiveProduct(transpose(X, k, n), X, n, k, n);
  const small = naiveProduct(X, transpose(X, k, n), k, n, k);
  for (const [name, run] of paths) {
    const { values, vectorRows } = run(() => eigh(S, n));
    const top = values.subarray(n - k);
    const want = run(() => eigvalsh(small, k));
    expect(maxAbsDiff(top, want), `${name} nonzero eigenvalues`).toBeLessThan(1e-13 * want[k - 1]);
    for (let i = 0; i < n - k; i++) {
      expect(Math.abs(values[i]), `${name} ${i}`).toBeLessThan(1e-14 * want[k - 1]);
    }
    const res = eigenResiduals(S, n, values, vectorRows!);
    expect(
      res.reconstruction < 1e-13 && res.orthogonality < 1e-12,
      `${name} ${JSON.stringify(res)}`,
    ).toBeTruthy();
  }
});
