/**
 * CPU linear-algebra kernels (core/native/openblas.ts, core/backends/cpu/{gemm,matmul,conv,
 * attention}.ts) against independent float64 references written here: naive loops,
 * a closed-form 3x3 eigendecomposition, and central finite differences for the
 * attention gradients. Each kernel runs through OpenBLAS (when the library loads) and
 * through the pure-TS `sgemmBlocked`.
 */

import { expect, it } from "./lib/test.ts";
import type { AttentionArgs, Conv2dArgs, MatmulArgs } from "../core/backend.ts";
import { openblas } from "../core/native/openblas.ts";
import {
  blockedKernelDescription,
  sgemm,
  sgemmBlocked,
  sgemmBlockedScalar,
  type SgemmFn,
  sgemmNaive,
} from "../core/backends/cpu/gemm.ts";
import { createSimdKernel } from "../core/backends/cpu/gemm_wasm.ts";
import { matmul } from "../core/backends/cpu/matmul.ts";
import { conv2d, conv2dBackwardInput, conv2dBackwardWeight } from "../core/backends/cpu/conv.ts";
import { attention, attentionBackward } from "../core/backends/cpu/attention.ts";
import { gelu as refGelu } from "../core/backends/cpu/erf.ts";
import { convArgs, refConv } from "./cpu_kernels_util.ts";

const blas = openblas(); // load once, outside any test, so the resource sanitizer is quiet
const GEMMS: [string, SgemmFn][] = [
  ["sgemm(dispatch)", sgemm],
  [`sgemmBlocked(${blockedKernelDescription()})`, sgemmBlocked],
  ["sgemmBlockedScalar", sgemmBlockedScalar],
];

// ---- helpers -------------------------------------------------------------------------

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomF32(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r() * 2 - 1;
  return a;
}

/** max |a-e| must stay within atol + rtol*|e| elementwise; reports the worst element. */
function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol: number,
  label: string,
) {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let worst = -1, worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    if (a === e) continue; // covers matching infinities
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    expect.unreachable(
      `${label}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} ` +
        `(atol ${atol}, rtol ${rtol})`,
    );
  }
}

// ---- GEMM ----------------------------------------------------------------------------

/** float64 reference C = alpha op(A) op(B) + beta C. */
function refGemm(
  tA: boolean,
  tB: boolean,
  M: number,
  N: number,
  K: number,
  alpha: number,
  A: ArrayLike<number>,
  aOff: number,
  lda: number,
  B: ArrayLike<number>,
  bOff: number,
  ldb: number,
  beta: number,
  C: ArrayLike<number>,
  cOff: number,
  ldc: number,
): Float64Array {
  const out = Float64Array.from(C);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        s += (tA ? A[aOff + k * lda + i] : A[aOff + i * lda + k]) *
          (tB ? B[bOff + j * ldb + k] : B[bOff + k * ldb + j]);
      }
      const c = cOff + i * ldc + j;
      out[c] = alpha * s + (beta === 0 ? 0 : beta * C[c]);
    }
  }
  return out;
}

const GEMM_CASES = [
  // M, N, K, transA, transB, alpha, beta, padding added to leading dims and offsets
  [1, 1, 1, false, false, 1, 0, 0],
  [7, 13, 5, false, false, 1, 0, 0],
  [7, 13, 5, true, false, 0.5, 1, 2],
  [7, 13, 5, false, true, 1, -0.5, 3],
  [7, 13, 5, true, true, 2, 0, 1],
  [75, 33, 300, false, false, 1, 0, 1], // crosses the MC=72 and KC=256 blocks
  [77, 35, 260, true, true, 1, 1, 0],
  [150, 19, 520, true, false, 1, 0, 0],
  [3, 2051, 5, false, true, 1, 0, 0], // crosses NC=2048
  [5, 4, 0, false, false, 1, 0.5, 0], // K=0 only scales C
] as const;

for (const [name, gemm] of [...GEMMS, ["sgemmNaive", sgemmNaive] as [string, SgemmFn]]) {
  it(`${name} matches a float64 triple loop (odd shapes, transposes, offsets)`, () => {
    let seed = 1;
    for (const [M, N, K, tA, tB, alpha, beta, pad] of GEMM_CASES) {
      const [aRows, aCols] = tA ? [K, M] : [M, K];
      const [bRows, bCols] = tB ? [N, K] : [K, N];
      const lda = aCols + pad, ldb = bCols + pad, ldc = N + pad;
      const aOff = pad, bOff = 2 * pad, cOff = pad;
      const A = randomF32(aOff + Math.max(0, aRows * lda), seed++);
      const B = randomF32(bOff + Math.max(0, bRows * ldb), seed++);
      const C = randomF32(cOff + M * ldc, seed++);
      if (beta === 0) C[cOff] = NaN; // beta = 0 must overwrite, not multiply
      const expected = refGemm(
        tA,
        tB,
        M,
        N,
        K,
        alpha,
        A,
        aOff,
        lda,
        B,
        bOff,
        ldb,
        beta,
        C,
        cOff,
        ldc,
      );
      if (beta === 0) {
        expected[cOff] =
          refGemm(tA, tB, 1, 1, K, alpha, A, aOff, lda, B, bOff, ldb, 0, [0], 0, 1)[0];
      }
      gemm(tA, tB, M, N, K, alpha, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc);
      assertClose(
        C,
        expected,
        2e-5 * Math.sqrt(K + 1),
        1e-5,
        `${name} M=${M} N=${N} K=${K} ` +
          `tA=${tA} tB=${tB}`,
      );
    }
  });
}

it.skipIf(createSimdKernel(6, 2, 6, 1, 8) === null)(
  "wasm SIMD macro-kernel (plain and relaxed FMA) multiplies packed panels",
  () => {
    for (const relaxed of [false, true]) {
      const kernel = createSimdKernel(6, 2, 12, 5, 16, relaxed)!;
      expect(kernel).toBeTruthy();
      const mcTiles = 2, ncTiles = 2, kc = 5, MR = kernel.MR, NR = kernel.NR;
      const pa = randomF32(mcTiles * MR * kc, 31), pb = randomF32(ncTiles * NR * kc, 32);
      kernel.heap.set(pa, kernel.paOffset);
      kernel.heap.set(pb, kernel.pbOffset);
      kernel.run(mcTiles, ncTiles, kc, ncTiles * NR);
      const rows = mcTiles * MR, cols = ncTiles * NR;
      const expected = new Float64Array(rows * cols);
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < cols; j++) {
          const [it, r, jt, c] = [Math.floor(i / MR), i % MR, Math.floor(j / NR), j % NR];
          for (let k = 0; k < kc; k++) {
            expected[i * cols + j] += pa[(it * kc + k) * MR + r] * pb[(jt * kc + k) * NR + c];
          }
        }
      }
      const got = kernel.heap.subarray(kernel.cOffset, kernel.cOffset + rows * cols);
      assertClose(got, expected, 1e-6, 1e-6, `simd kernel relaxed=${relaxed}`);
    }
  },
);

it("sgemm rejects an operand that is too short instead of reading past it", () => {
  const A = new Float32Array(5), B = new Float32Array(6), C = new Float32Array(4);
  expect(() => sgemm(false, false, 2, 2, 3, 1, A, 0, 3, B, 0, 2, 0, C, 0, 2)).toThrow(
    /sgemm: A out of range/,
  );
});

// ---- OpenBLAS FFI --------------------------------------------------------------------

it.skipIf(!blas)("openblas: subarray views pass their byteOffset through FFI", () => {
  const store = new Float32Array(64).fill(-7);
  const A = store.subarray(3, 9); // 2x3
  const B = store.subarray(17, 23); // 3x2
  const C = store.subarray(41, 45); // 2x2
  A.set([1, 2, 3, 4, 5, 6]);
  B.set([7, 8, 9, 10, 11, 12]);
  blas!.sgemm(false, false, 2, 2, 3, 1, A, 3, B, 2, 0, C, 2);
  expect(Array.from(C)).toEqual([58, 64, 139, 154]);
  // Everything outside the three windows is untouched.
  for (let i = 0; i < store.length; i++) {
    const inside = (i >= 3 && i < 9) || (i >= 17 && i < 23) || (i >= 41 && i < 45);
    if (!inside) expect(store[i], `guard element ${i}`).toBe(-7);
  }
  // And an offset through the sgemm dispatcher (aOff/bOff/cOff become subarrays).
  const C2 = new Float32Array(8);
  sgemm(false, false, 2, 2, 3, 1, store, 3, 3, store, 17, 2, 0, C2, 4, 2);
  expect(Array.from(C2)).toEqual([0, 0, 0, 0, 58, 64, 139, 154]);
});

it.skipIf(!blas)("openblas: dgemm and dsyrk match float64 loops", () => {
  const M = 6, N = 5, K = 9;
  const A = Float64Array.from(randomF32(M * K, 11)), B = Float64Array.from(randomF32(N * K, 12));
  const C = new Float64Array(M * N);
  blas!.dgemm(false, true, M, N, K, 1.5, A, K, B, K, 0, C, N);
  assertClose(
    C,
    refGemm(false, true, M, N, K, 1.5, A, 0, K, B, 0, K, 0, C, 0, N),
    1e-12,
    1e-12,
    "dgemm",
  );
  // dsyrk: upper triangle of A A^T (A is M x K), lower triangle untouched.
  const S = new Float64Array(M * M).fill(99);
  blas!.dsyrk("U", false, M, K, 1, A, K, 0, S, M);
  const full = refGemm(
    false,
    true,
    M,
    M,
    K,
    1,
    A,
    0,
    K,
    A,
    0,
    K,
    0,
    new Float64Array(M * M),
    0,
    M,
  );
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < M; j++) {
      const want = j >= i ? full[i * M + j] : 99;
      expect(Math.abs(S[i * M + j] - want), `dsyrk (${i},${j})`).toBeLessThan(1e-12);
    }
  }
});

it.skipIf(!blas?.hasLapack)(
  "openblas: dsyevd on the 3x3 second-difference matrix (closed form)",
  () => {
    // [[2,-1,0],[-1,2,-1],[0,-1,2]]: eigenvalues 2-sqrt2, 2, 2+sqrt2, with eigenvectors
    // (1, sqrt2, 1)/2, (1, 0, -1)/sqrt2, (1, -sqrt2, 1)/2.
    const r2 = Math.SQRT2;
    const A = new Float64Array([2, -1, 0, -1, 2, -1, 0, -1, 2]);
    const W = new Float64Array(3);
    expect(blas!.dsyevd("V", "U", 3, A, 3, W)).toBe(0);
    assertClose(W, [2 - r2, 2, 2 + r2], 1e-12, 0, "eigenvalues");
    const expected = [[0.5, r2 / 2, 0.5], [1 / r2, 0, -1 / r2], [0.5, -r2 / 2, 0.5]];
    for (let j = 0; j < 3; j++) {
      const vec = A.subarray(j * 3, j * 3 + 3);
      const sign = Math.sign(vec[0]); // eigenvectors are defined up to sign
      assertClose(vec.map((x) => x * sign), expected[j], 1e-12, 0, `eigenvector ${j}`);
    }
    // Values only, with a lda larger than n.
    const B = new Float64Array([2, -1, 0, 0, -1, 2, -1, 0, 0, -1, 2, 0]);
    expect(blas!.dsyevd("N", "L", 3, B, 4, W)).toBe(0);
    assertClose(W, [2 - r2, 2, 2 + r2], 1e-12, 0, "eigenvalues (jobz N)");
  },
);

// ---- batched matmul ------------------------------------------------------------------

function refMatmul(a: Float32Array, b: Float32Array, args: MatmulArgs, bias?: Float32Array) {
  const { batch, M, N, K, transA, transB, strideA, strideB } = args;
  const out = new Float64Array(batch * M * N);
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = bias ? bias[j] : 0;
        for (let k = 0; k < K; k++) {
          s += a[t * strideA + (transA ? k * M + i : i * K + k)] *
            b[t * strideB + (transB ? j * K + k : k * N + j)];
        }
        out[(t * M + i) * N + j] = s;
      }
    }
  }
  return out;
}

for (const [name, gemm] of GEMMS) {
  it(`matmul via ${name}: batches, broadcast, transposes, bias`, () => {
    type Case = [number, number, number, number, boolean, boolean, "A" | "B" | "none", boolean];
    const cases: Case[] = [
      [1, 1, 1, 1, false, false, "none", false],
      [3, 7, 13, 5, false, false, "none", true],
      [4, 7, 13, 5, false, true, "B", true], // shared weight: folded into one tall GEMM
      [4, 7, 13, 5, true, false, "B", false], // shared B but transposed A: per batch
      [2, 6, 3, 9, true, true, "A", true],
      [5, 2, 11, 4, false, false, "A", false],
    ];
    let seed = 100;
    for (const [batch, M, N, K, transA, transB, broadcast, withBias] of cases) {
      const args: MatmulArgs = {
        batch,
        M,
        N,
        K,
        transA,
        transB,
        strideA: broadcast === "A" ? 0 : M * K,
        strideB: broadcast === "B" ? 0 : K * N,
      };
      const a = randomF32(broadcast === "A" ? M * K : batch * M * K, seed++);
      const b = randomF32(broadcast === "B" ? K * N : batch * K * N, seed++);
      const bias = withBias ? randomF32(N, seed++) : undefined;
      const got = matmul(a, b, args, { bias }, gemm);
      assertClose(got, refMatmul(a, b, args, bias), 1e-5, 1e-5, `matmul ${JSON.stringify(args)}`);
    }
  });

  it(`matmul via ${name}: epilogue addend + scale * gelu(product + bias), each part alone`, () => {
    let seed = 150;
    for (const [batch, transB, strideB] of [[1, true, 0], [3, true, 0], [2, false, 20]] as const) {
      const [M, N, K] = [4, 5, 4];
      const args: MatmulArgs = { batch, M, N, K, transA: false, transB, strideA: M * K, strideB };
      const a = randomF32(batch * M * K, seed++);
      const b = randomF32(strideB ? batch * K * N : K * N, seed++);
      const bias = randomF32(N, seed++), scale = randomF32(N, seed++);
      const addend = randomF32(batch * M * N, seed++);
      for (let mask = 0; mask < 16; mask++) {
        const parts = ["bias", "gelu", "scale", "addend"].filter((_, i) => mask & (1 << i));
        const has = (p: string) => parts.includes(p);
        const got = matmul(a, b, args, {
          bias: has("bias") ? bias : undefined,
          activation: has("gelu") ? "gelu" : undefined,
          scale: has("scale") ? scale : undefined,
          addend: has("addend") ? addend : undefined,
        }, gemm);
        // float64: addend + scale * gelu(A B + bias)
        const product = refMatmul(a, b, args, has("bias") ? bias : undefined);
        const act = (p: number) => (has("gelu") ? refGelu(p) : p);
        const want = product.map((p, i) =>
          (has("addend") ? addend[i] : 0) + (has("scale") ? scale[i % N] : 1) * act(p)
        );
        assertClose(
          got,
          want,
          1e-5,
          1e-5,
          `matmul epilogue ${parts.join("+")} ${JSON.stringify(args)}`,
        );
      }
    }
  });
}

it("matmul epilogue GELU: products past the table (< -8, >= 8) and NaN, in place", () => {
  // (1 x 2) @ (2 x 6): products -30, -9, -8.5, 0.5, 9, NaN; bias 0.25 on each.
  const a = Float32Array.of(1, 1);
  const b = Float32Array.of(-15, -4.5, -4.25, 0.25, 4.5, NaN, -15, -4.5, -4.25, 0.25, 4.5, 0);
  const args: MatmulArgs = {
    batch: 1,
    M: 1,
    N: 6,
    K: 2,
    transA: false,
    transB: false,
    strideA: 2,
    strideB: 12,
  };
  const got = matmul(a, b, args, { bias: new Float32Array(6).fill(0.25), activation: "gelu" });
  const want = [-29.75, -8.75, -8.25, 0.75, 9.25, NaN].map(refGelu);
  for (let j = 0; j < 6; j++) {
    expect(
      Object.is(got[j], Math.fround(want[j])) ||
        Math.abs(got[j] - want[j]) <= 3e-7 * Math.abs(want[j]),
      `gelu(${[-29.75, -8.75, -8.25, 0.75, 9.25, NaN][j]}) = ${got[j]}, expected ${want[j]}`,
    ).toBeTruthy();
  }
});

it("matmul names a misfit epilogue operand", () => {
  const args: MatmulArgs = {
    batch: 1,
    M: 2,
    N: 3,
    K: 2,
    transA: false,
    transB: false,
    strideA: 4,
    strideB: 6,
  };
  const [a, b] = [new Float32Array(4), new Float32Array(6)];
  expect(() => matmul(a, b, args, { scale: new Float32Array(2) })).toThrow(
    /matmul: scale has 2 elements, expected 3/,
  );
  expect(() => matmul(a, b, args, { addend: new Float32Array(3) })).toThrow(
    /matmul: addend has 3 elements, expected 6/,
  );
});

// ---- convolution ---------------------------------------------------------------------

const CONV_CASES: [string, Conv2dArgs][] = [
  ["1x1 pointwise", convArgs(2, 3, 5, 4, 4, 1, 1, 1, 1, 0, 0, 1)],
  ["1x1 stride 2 (general path)", convArgs(1, 3, 5, 5, 2, 1, 1, 2, 2, 0, 0, 1)],
  ["3x3 pad 1", convArgs(2, 3, 7, 6, 5, 3, 3, 1, 1, 1, 1, 1)],
  ["3x3 stride 2 pad 1", convArgs(2, 4, 9, 8, 6, 3, 3, 2, 2, 1, 1, 1)],
  ["4x4 stride 2 pad 1, odd input", convArgs(1, 2, 7, 7, 3, 4, 4, 2, 2, 1, 1, 1)],
  ["groups=2", convArgs(2, 4, 6, 5, 6, 3, 3, 1, 1, 1, 1, 2)],
  ["groups=2 pointwise", convArgs(1, 4, 3, 3, 2, 1, 1, 1, 1, 0, 0, 2)],
  ["depthwise x2 multiplier", convArgs(2, 3, 6, 7, 6, 3, 3, 1, 1, 1, 1, 3)],
  ["2x3 kernel, pad (1,0), stride (1,2)", convArgs(1, 2, 5, 9, 3, 2, 3, 1, 2, 1, 0, 1)],
  ["1x1 input, 3x3 pad 1", convArgs(1, 2, 1, 1, 2, 3, 3, 1, 1, 1, 1, 1)],
  ["banded im2col (cols over budget)", convArgs(1, 64, 96, 96, 4, 3, 3, 1, 1, 1, 1, 1)],
  // Fast paths of conv.ts / im2col.ts: images side by side in one GEMM (batch 3 of 5x5;
  // batch 4 of 28x25 splits 3 + 1), with groups and stride 2 in that layout too.
  ["batched 3x3 pad 1, batch 3", convArgs(3, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1)],
  ["batched chunks 3 + 1, 3x3 pad 1", convArgs(4, 2, 28, 25, 3, 3, 3, 1, 1, 1, 1, 1)],
  ["batched groups=2 stride 2", convArgs(3, 4, 9, 7, 6, 3, 3, 2, 2, 1, 1, 2)],
  ["batched 1x1 stride 2", convArgs(3, 3, 7, 6, 2, 1, 1, 2, 2, 0, 0, 1)],
  // Same-width block copies: 5x5 pad 2, 1x7 pad (0,3), 7x1 pad (3,0), and several bands.
  ["same width 5x5 pad 2, batch 2", convArgs(2, 3, 6, 7, 4, 5, 5, 1, 1, 2, 2, 1)],
  ["same width 1x7 pad (0,3)", convArgs(2, 3, 5, 6, 4, 1, 7, 1, 1, 0, 3, 1)],
  ["same width 7x1 pad (3,0)", convArgs(2, 3, 6, 5, 4, 7, 1, 1, 1, 3, 0, 1)],
  ["same width 3x3 pad 1, banded", convArgs(1, 4, 64, 200, 3, 3, 3, 1, 1, 1, 1, 1)],
  ["3x3 pad 1 on a 1-wide column", convArgs(2, 2, 5, 1, 3, 3, 3, 1, 1, 1, 1, 1)],
  ["5x5 pad 2 on a 1-wide column", convArgs(2, 2, 4, 1, 3, 5, 5, 1, 1, 2, 2, 1)],
  ["5x5 pad 2 on a 2-wide image", convArgs(1, 2, 3, 2, 2, 5, 5, 1, 1, 2, 2, 1)],
  // Stride-1 input gradient as a transposed convolution (>= 1024 output pixels).
  ["transposed dx, 3x3 pad 1", convArgs(2, 4, 32, 32, 6, 3, 3, 1, 1, 1, 1, 1)],
  ["transposed dx, 3x3 pad 0", convArgs(1, 3, 34, 34, 4, 3, 3, 1, 1, 0, 0, 1)],
  ["transposed dx, 3x3 pad 2, groups=2", convArgs(1, 4, 30, 30, 4, 3, 3, 1, 1, 2, 2, 2)],
  ["transposed dx, 2x4 pad (1,2)", convArgs(1, 3, 31, 33, 2, 2, 4, 1, 1, 1, 2, 1)],
];

for (const [name, gemm] of GEMMS) {
  it(`conv2d forward and backward via ${name} match direct float64 loops`, () => {
    let seed = 200;
    for (const [label, args] of CONV_CASES) {
      const Cg = args.inC / args.groups;
      const x = randomF32(args.batch * args.inC * args.inH * args.inW, seed++);
      const w = randomF32(args.outC * Cg * args.kH * args.kW, seed++);
      const bias = seed % 2 ? randomF32(args.outC, seed++) : null;
      const dy = randomF32(args.batch * args.outC * args.outH * args.outW, seed++);
      const ref = refConv(x, w, bias, dy, args);
      const tol = 2e-5 * Math.sqrt(Cg * args.kH * args.kW);
      assertClose(conv2d(x, w, bias, args, gemm), ref.y, tol, 1e-5, `${label}: y`);
      assertClose(conv2dBackwardInput(dy, w, args, gemm), ref.dx, tol, 1e-5, `${label}: dx`);
      const tolW = 2e-5 * Math.sqrt(args.batch * args.outH * args.outW);
      assertClose(conv2dBackwardWeight(dy, x, args, gemm), ref.dw, tolW, 1e-5, `${label}: dw`);
    }
  });
}

it("conv2d names the op and shapes on a bad output size", () => {
  const args = { ...convArgs(1, 2, 5, 5, 2, 3, 3, 1, 1, 0, 0, 1), outH: 5 };
  expect(() => conv2d(new Float32Array(50), new Float32Array(36), null, args)).toThrow(
    /conv2d: output 5x3, expected 3x3/,
  );
});

// ---- attention -----------------------------------------------------------------------

/** float64 attention: out and lse for every (b, h, i). Rows seeing no key get 0 / -inf. */
function refAttention(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  a: AttentionArgs,
) {
  const { Tq, Tk, headDim: D } = a;
  const BH = a.batch * a.heads;
  const out = new Float64Array(BH * Tq * D);
  const lse = new Float64Array(BH * Tq);
  for (let bh = 0; bh < BH; bh++) {
    for (let i = 0; i < Tq; i++) {
      const s: number[] = [];
      for (let j = 0; j < Tk; j++) {
        if (a.causal && j > i + a.queryOffset) continue;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[(bh * Tq + i) * D + d] * k[(bh * Tk + j) * D + d];
        s.push(dot * a.scale);
      }
      const m = s.length ? Math.max(...s) : -Infinity;
      const z = s.reduce((acc, x) => acc + Math.exp(x - m), 0);
      lse[bh * Tq + i] = s.length ? m + Math.log(z) : -Infinity;
      s.forEach((x, j) => {
        const p = Math.exp(x - m) / z;
        for (let d = 0; d < D; d++) out[(bh * Tq + i) * D + d] += p * v[(bh * Tk + j) * D + d];
      });
    }
  }
  return { out, lse };
}

function attnArgs(
  batch: number,
  heads: number,
  Tq: number,
  Tk: number,
  headDim: number,
  causal: boolean,
  queryOffset: number,
): AttentionArgs {
  return { batch, heads, Tq, Tk, headDim, scale: 1 / Math.sqrt(headDim), causal, queryOffset };
}

const ATTN_CASES: [string, AttentionArgs][] = [
  ["non-causal", attnArgs(2, 3, 5, 7, 4, false, 0)],
  ["causal square", attnArgs(1, 2, 6, 6, 3, true, 0)],
  ["causal KV cache (queryOffset = Tk - Tq)", attnArgs(2, 1, 3, 8, 5, true, 5)],
  ["causal, first rows see no key", attnArgs(1, 1, 5, 5, 2, true, -2)],
  ["single query, single key", attnArgs(1, 1, 1, 1, 1, true, 0)],
];

for (const [name, gemm] of GEMMS) {
  it(`attention forward via ${name} matches float64 attention`, () => {
    let seed = 300;
    // Tq = 300 spans two causal query blocks (150 rows each).
    const twoBlocks = attnArgs(1, 1, 300, 300, 4, true, 0);
    const cases = [...ATTN_CASES, ["two query blocks", twoBlocks]] as const;
    for (const [label, args] of cases) {
      const BH = args.batch * args.heads;
      const q = randomF32(BH * args.Tq * args.headDim, seed++);
      const k = randomF32(BH * args.Tk * args.headDim, seed++);
      const v = randomF32(BH * args.Tk * args.headDim, seed++);
      const got = attention(q, k, v, args, gemm);
      const ref = refAttention(q, k, v, args);
      assertClose(got.out, ref.out, 1e-5, 1e-5, `${label}: out`);
      assertClose(got.lse, ref.lse, 1e-5, 1e-5, `${label}: lse`);
    }
  });

  it(`attention via ${name} reads strided q/k/v in place and writes token-major rows`, () => {
    // q, k, v as windows onto one padded (B, T, 3, H, D + 1) "fused projection" buffer
    // (self-attention) or q from one buffer and k, v from another (KV cache); the output
    // laid out (B, Tq, H, D). Must match float64 attention on dense copies (same 1e-5 as
    // the dense kernel).
    let seed = 700;
    for (
      const [label, args] of [...ATTN_CASES, [
        "two query blocks",
        attnArgs(1, 2, 300, 300, 3, true, 0),
      ]] as const
    ) {
      const { batch: B, heads: H, Tq, Tk, headDim: D } = args;
      const pad = D + 1, rowQ = 3 * H * pad;
      const packedQ = randomF32(B * Tq * rowQ + 2, seed++);
      const packedKV = Tq === Tk ? packedQ : randomF32(B * Tk * rowQ + 2, seed++);
      const rows = (which: number, T: number) => ({
        offset: 1 + which * H * pad,
        batch: T * rowQ,
        head: pad,
        row: rowQ,
      });
      const gatherDense = (buf: Float32Array, which: number, T: number) => {
        const r = rows(which, T), out = new Float32Array(B * H * T * D);
        for (let b = 0; b < B; b++) {
          for (let h = 0; h < H; h++) {
            for (let t = 0; t < T; t++) {
              for (let d = 0; d < D; d++) {
                out[((b * H + h) * T + t) * D + d] =
                  buf[r.offset + b * r.batch + h * r.head + t * r.row + d];
              }
            }
          }
        }
        return out;
      };
      const strided = {
        ...args,
        inputs: { q: rows(0, Tq), k: rows(1, Tk), v: rows(2, Tk) },
        tokenMajorOut: true,
      };
      const got = attention(packedQ, packedKV, packedKV, strided, gemm);
      const ref = refAttention(
        gatherDense(packedQ, 0, Tq),
        gatherDense(packedKV, 1, Tk),
        gatherDense(packedKV, 2, Tk),
        args,
      );
      const refTokenMajor = new Float64Array(ref.out.length);
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < H; h++) {
          for (let t = 0; t < Tq; t++) {
            for (let d = 0; d < D; d++) {
              refTokenMajor[((b * Tq + t) * H + h) * D + d] =
                ref.out[((b * H + h) * Tq + t) * D + d];
            }
          }
        }
      }
      assertClose(got.out, refTokenMajor, 1e-5, 1e-5, `${label}: out`);
      assertClose(got.lse, ref.lse, 1e-5, 1e-5, `${label}: lse`);
    }
  });

  it(`attention backward via ${name} matches finite differences (float64)`, () => {
    let seed = 400;
    for (const [label, args] of ATTN_CASES) {
      const BH = args.batch * args.heads;
      const q = randomF32(BH * args.Tq * args.headDim, seed++);
      const k = randomF32(BH * args.Tk * args.headDim, seed++);
      const v = randomF32(BH * args.Tk * args.headDim, seed++);
      const dout = randomF32(BH * args.Tq * args.headDim, seed++);
      const fwd = attention(q, k, v, args, gemm);
      const grads = attentionBackward(q, k, v, fwd.out, fwd.lse, dout, args, gemm);
      // L = sum(out * dout); dL/dtheta by central differences in float64.
      const inputs = { q: Float64Array.from(q), k: Float64Array.from(k), v: Float64Array.from(v) };
      const loss = () => {
        const { out } = refAttention(inputs.q, inputs.k, inputs.v, args);
        return out.reduce((acc, o, i) => acc + o * dout[i], 0);
      };
      const h = 1e-6;
      for (const key of ["q", "k", "v"] as const) {
        const theta = inputs[key];
        const numeric = new Float64Array(theta.length);
        for (let i = 0; i < theta.length; i++) {
          const keep = theta[i];
          theta[i] = keep + h;
          const up = loss();
          theta[i] = keep - h;
          const down = loss();
          theta[i] = keep;
          numeric[i] = (up - down) / (2 * h);
        }
        const analytic = { q: grads.dq, k: grads.dk, v: grads.dv }[key];
        assertClose(analytic, numeric, 2e-5, 1e-4, `${label}: d${key}`);
      }
    }
  });
}

it("attention names the operand whose strided layout runs past its array", () => {
  const args = { ...attnArgs(2, 2, 3, 3, 4, false, 0), tokenMajorOut: true };
  const dense = (T: number) => ({ offset: 0, batch: 2 * T * 4, head: T * 4, row: 4 });
  const a = new Float32Array(48);
  expect(() =>
    attention(a, a, a, {
      ...args,
      inputs: { q: dense(3), k: { ...dense(3), offset: 1 }, v: dense(3) },
    })
  ).toThrow(/attention: k layout .* reaches element 48, past its 48 elements/);
  expect(() =>
    attention(a, a, a, {
      ...args,
      inputs: { q: { ...dense(3), row: 3 }, k: dense(3), v: dense(3) },
    })
  ).toThrow(/attention: q layout .* is not a strided \(B, H, T, D\) array with rows of 4/);
  expect(() => attentionBackward(a, a, a, a, a, a, args)).toThrow(/attentionBackward: takes dense/);
});
