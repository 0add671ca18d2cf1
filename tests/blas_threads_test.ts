/**
 * OpenBLAS thread count per call (core/native/openblas.ts): the count follows the policy
 * (one thread below the flop threshold, the full count above), OpenBLAS is told only when
 * the choice changes, and each product's result is exactly what OpenBLAS gives at the
 * thread count the policy picks for it (OpenBLAS itself may differ in the last bits between
 * thread counts, on which shapes depending on its kernels), and the same on every repeat. No timings here (bench/blas_threads_bench.ts measures those).
 */

import { expect, it } from "./lib/test.ts";
import { DEFAULT_SINGLE_BELOW_FLOPS, openblas } from "../core/native/openblas.ts";
import { sgemm } from "../core/backends/cpu/gemm.ts";

const blas = openblas(); // load once, outside any test, so the resource sanitizer is quiet

function filled(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 4294967296 - 0.5;
  }
  return out;
}

/** Runs fn under a policy, then puts the previous one back. */
function withPolicy<T>(singleBelowFlops: number, fn: () => T): T {
  const before = blas!.setThreadPolicy({ singleBelowFlops });
  try {
    return fn();
  } finally {
    blas!.setThreadPolicy(before);
  }
}

const SHAPES: [boolean, boolean, number, number, number][] = [
  [false, true, 129, 129, 16], // attention scores
  [false, false, 129, 16, 129], // attention values
  [true, false, 129, 16, 129], // its weight gradient
  [false, false, 4128, 64, 64], // a tiny transformer's projection
  [true, false, 64, 256, 4128], // its weight gradient (K = tokens)
  [false, true, 300, 200, 700],
];

it("blas threads: the default policy is one thread below the documented threshold", () => {
  if (!blas) return;
  const p = blas.threadPolicy();
  expect(p.max).toBeGreaterThanOrEqual(1);
  const env = Deno.env.get("DIGIT_BLAS_SINGLE_BELOW");
  if (env === undefined) expect([0, DEFAULT_SINGLE_BELOW_FLOPS]).toContain(p.singleBelowFlops);
});

it("blas threads: the count follows the flops and is set only when it changes", () => {
  if (!blas || blas.threadPolicy().singleBelowFlops === 0) return; // cannot set threads
  const before = blas.setThreadPolicy({ max: 2, singleBelowFlops: 1e6 });
  try {
    const small = () => sgemm(false, false, 8, 8, 8, 1, A, 0, 8, A, 0, 8, 0, C, 0, 8);
    const large = () => sgemm(false, false, 100, 100, 100, 1, A, 0, 100, A, 0, 100, 0, C, 0, 100);
    const A = filled(100 * 100, 1), C = new Float32Array(100 * 100);
    small();
    expect(blas.threadStats().current).toBe(1);
    const s0 = blas.threadStats().switches;
    small();
    small();
    expect(blas.threadStats().switches).toBe(s0);
    large(); // 2e6 flops
    expect(blas.threadStats().current).toBe(2);
    large();
    expect(blas.threadStats().switches).toBe(s0 + 1);
    small();
    expect(blas.threadStats()).toEqual({ current: 1, switches: s0 + 2 });
  } finally {
    blas.setThreadPolicy(before);
  }
});

/** OpenBLAS's own result at a fixed thread count (the policy pinned to it). */
function sgemmAt(threads: "one" | "all", shape: [boolean, boolean, number, number, number]) {
  const [ta, tb, M, N, K] = shape;
  const A = filled(M * K, M + K), B = filled(K * N, N + 7);
  return withPolicy(threads === "one" ? Infinity : 0, () => {
    const C = filled(M * N, 3);
    sgemm(ta, tb, M, N, K, 0.75, A, 0, ta ? M : K, B, 0, tb ? K : N, 0.5, C, 0, N);
    return C;
  });
}

const same = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => v === b[i]);

it("blas threads: each sgemm gives OpenBLAS's result at the count the policy picks", () => {
  if (!blas) return;
  for (const shape of SHAPES) {
    const [, , M, N, K] = shape;
    const picked = 2 * M * N * K < blas.threadPolicy().singleBelowFlops ? "one" : "all";
    const ref = sgemmAt(picked, shape);
    const [ta, tb] = shape;
    const A = filled(M * K, M + K), B = filled(K * N, N + 7);
    for (let rep = 0; rep < 3; rep++) {
      const C = filled(M * N, 3);
      sgemm(ta, tb, M, N, K, 0.75, A, 0, ta ? M : K, B, 0, tb ? K : N, 0.5, C, 0, N);
      expect(same(C, ref)).toBe(true);
    }
  }
});

it("blas threads: the demo's projection shapes agree on one thread and all to float32 rounding", () => {
  if (!blas) return;
  // With its SkylakeX kernels (the Xeon) OpenBLAS splits these over M / N only and the bits
  // match; with its Haswell kernels on an AMD EPYC the K = 4128 weight gradient differs in the
  // last bits. Either way the policy moves them within float32 rounding of a K-term sum
  // (terms below 0.25, so |error| <= K * 0.25 * 2^-24 * a few; measured 7e-7 and 6e-6).
  for (const shape of SHAPES.slice(3, 5)) {
    const one = sgemmAt("one", shape), all = sgemmAt("all", shape);
    let worst = 0;
    for (let i = 0; i < one.length; i++) worst = Math.max(worst, Math.abs(one[i] - all[i]));
    console.log(`blas threads: shape [${shape}] one vs all threads: max |diff| ${worst}`);
    expect(worst, `shape [${shape}]`).toBeLessThanOrEqual(shape[4] * 0.25 * 2 ** -24 * 4);
  }
});

it("blas threads: dgemm and dsyrk repeat exactly under the policy", () => {
  if (!blas) return;
  const M = 257, N = 130, K = 513;
  const A = Float64Array.from(filled(M * K, 11)), B = Float64Array.from(filled(K * N, 12));
  const gemm = () => {
    const C = new Float64Array(M * N);
    blas.dgemm(false, false, M, N, K, 1, A, K, B, N, 0, C, N);
    return C;
  };
  const syrk = () => {
    const C = new Float64Array(M * M);
    blas.dsyrk("U", false, M, K, 1, A, K, 0, C, M);
    return C;
  };
  expect(same(gemm(), gemm())).toBe(true);
  expect(same(syrk(), syrk())).toBe(true);
});
