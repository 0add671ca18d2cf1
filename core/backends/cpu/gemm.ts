/**
 * Single-precision GEMM for the CPU backend, row-major:
 *
 *   C[cOff + i*ldc + j] = alpha * sum_k op(A)[i,k] * op(B)[k,j] + beta * C[...]
 *
 * op(A) is (M, K): A is stored (M, K) with row stride lda, or (K, M) when transA.
 * op(B) is (K, N): B is stored (K, N) with row stride ldb, or (N, K) when transB.
 *
 * `sgemm` goes to OpenBLAS when it loaded, else to `sgemmBlocked`, a cache-blocked
 * pure-TS kernel (packed panels + a 4x4 register-blocked micro-kernel). `sgemmNaive`
 * is the short reference the tests hold the fast paths to.
 */

import { openblas } from "../../native/openblas.ts";
import { createSimdKernel, type SimdKernel } from "./gemm_wasm.ts";

export type SgemmFn = (
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  alpha: number,
  A: Float32Array,
  aOff: number,
  lda: number,
  B: Float32Array,
  bOff: number,
  ldb: number,
  beta: number,
  C: Float32Array,
  cOff: number,
  ldc: number,
) => void;

/** Throws unless every element the call would touch lies inside its array. */
export function checkGemmArgs(
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  A: Float32Array | Float64Array,
  aOff: number,
  lda: number,
  B: Float32Array | Float64Array,
  bOff: number,
  ldb: number,
  C: Float32Array | Float64Array,
  cOff: number,
  ldc: number,
): void {
  const bad = (what: string) => {
    throw new RangeError(
      `sgemm: ${what} (transA=${transA} transB=${transB} M=${M} N=${N} K=${K} ` +
        `A.length=${A.length} aOff=${aOff} lda=${lda} B.length=${B.length} bOff=${bOff} ` +
        `ldb=${ldb} C.length=${C.length} cOff=${cOff} ldc=${ldc})`,
    );
  };
  if (!(M >= 0 && N >= 0 && K >= 0)) bad("negative size");
  if (M === 0 || N === 0) return;
  if (ldc < N || cOff < 0 || cOff + (M - 1) * ldc + N > C.length) bad("C out of range");
  if (K === 0) return;
  const [aRows, aCols] = transA ? [K, M] : [M, K];
  const [bRows, bCols] = transB ? [N, K] : [K, N];
  if (lda < aCols || aOff < 0 || aOff + (aRows - 1) * lda + aCols > A.length) bad("A out of range");
  if (ldb < bCols || bOff < 0 || bOff + (bRows - 1) * ldb + bCols > B.length) bad("B out of range");
}

/** C = alpha op(A) op(B) + beta C, through OpenBLAS when present. */
export const sgemm: SgemmFn = (
  transA,
  transB,
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
) => {
  checkGemmArgs(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc);
  if (M === 0 || N === 0) return;
  const blas = openblas();
  if (blas && K > 0) {
    // Deno passes a subarray's own data pointer, so offsets become views.
    blas.sgemm(
      transA,
      transB,
      M,
      N,
      K,
      alpha,
      aOff ? A.subarray(aOff) : A,
      lda,
      bOff ? B.subarray(bOff) : B,
      ldb,
      beta,
      cOff ? C.subarray(cOff) : C,
      ldc,
    );
    return;
  }
  sgemmBlocked(transA, transB, M, N, K, alpha, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc);
};

/** Reference triple loop (float32 storage, float64 accumulation). */
export const sgemmNaive: SgemmFn = (
  transA,
  transB,
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
) => {
  checkGemmArgs(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0;
      for (let k = 0; k < K; k++) {
        const a = transA ? A[aOff + k * lda + i] : A[aOff + i * lda + k];
        const b = transB ? B[bOff + j * ldb + k] : B[bOff + k * ldb + j];
        acc += a * b;
      }
      const c = cOff + i * ldc + j;
      C[c] = alpha * acc + (beta === 0 ? 0 : beta * C[c]);
    }
  }
};

// ---- blocked pure-TS kernel -------------------------------------------------------
//
// GotoBLAS-style loops: a KC x NC panel of op(B) is packed once and shared by every
// MC x KC panel of op(A); each packed panel is a row of thin slivers (MR rows or NR
// columns, stored k-major) so the micro-kernel streams both operands contiguously.
// The micro-kernel is WASM SIMD (gemm_wasm.ts) when the runtime has it, else scalar TS.

const KC = 256;
const MC = 72; // a multiple of both micro-tile heights
const NC = 2048;

/**
 * 6 x 8 tiles: 12 f32x4 accumulators + 2 B vectors + 1 broadcast A = 15 of the 16 SIMD
 * registers (measured best among 4x8, 6x8, 8x8 and 4x12). Relaxed-SIMD fused multiply-add
 * when the runtime has it (V8 does); it may round differently from mul+add.
 */
const SIMD_MR = 6;
const SIMD_NRV = 2;
/** Scalar micro-tile: 16 accumulators in locals. */
const MR = 4;
const NR = 4;

let simdKernel: SimdKernel | null | undefined;
function simd(): SimdKernel | null {
  if (simdKernel === undefined) {
    simdKernel = createSimdKernel(SIMD_MR, SIMD_NRV, MC, KC, NC, true);
  }
  return simdKernel;
}

/** Which micro-kernel `sgemmBlocked` uses, for logs and benchmarks. */
export function blockedKernelDescription(): string {
  const k = simd();
  if (!k) return `scalar-ts ${MR}x${NR}`;
  return `wasm-simd ${k.MR}x${k.NR}${k.relaxed ? " relaxed-fma" : ""}`;
}

/** Pure-TS GEMM (no native code): packed panels and a WASM SIMD or scalar micro-kernel. */
export const sgemmBlocked: SgemmFn = (
  transA,
  transB,
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
) => {
  const kernel = simd();
  if (!kernel) {
    sgemmBlockedScalar(
      transA,
      transB,
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
    return;
  }
  checkGemmArgs(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc);
  if (M === 0 || N === 0) return;
  scaleC(M, N, beta, C, cOff, ldc);
  if (K === 0 || alpha === 0) return;
  const { heap, paOffset, pbOffset, cOffset } = kernel;

  for (let jc = 0; jc < N; jc += NC) {
    const nc = Math.min(NC, N - jc);
    const ncTiles = Math.ceil(nc / kernel.NR);
    const ldt = ncTiles * kernel.NR;
    for (let pc = 0; pc < K; pc += KC) {
      const kc = Math.min(KC, K - pc);
      packB(transB, B, bOff, ldb, pc, kc, jc, nc, kernel.NR, heap, pbOffset);
      for (let ic = 0; ic < M; ic += MC) {
        const mc = Math.min(MC, M - ic);
        packA(transA, A, aOff, lda, ic, mc, pc, kc, kernel.MR, heap, paOffset);
        kernel.run(Math.ceil(mc / kernel.MR), ncTiles, kc, ldt);
        // The kernel stored the (mc, nc) product in wasm memory; accumulate it into C.
        for (let i = 0; i < mc; i++) {
          const src = cOffset + i * ldt;
          const dst = cOff + (ic + i) * ldc + jc;
          if (alpha === 1) { for (let j = 0; j < nc; j++) C[dst + j] += heap[src + j]; }
          else for (let j = 0; j < nc; j++) C[dst + j] += alpha * heap[src + j];
        }
      }
    }
  }
};

let scalarPackA = new Float32Array(MC * KC);
let scalarPackB = new Float32Array(KC * NC);

/** Pure-TS GEMM with a scalar 4x4 register-blocked micro-kernel (no WASM). */
export const sgemmBlockedScalar: SgemmFn = (
  transA,
  transB,
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
) => {
  checkGemmArgs(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc);
  if (M === 0 || N === 0) return;
  scaleC(M, N, beta, C, cOff, ldc);
  if (K === 0 || alpha === 0) return;

  const nc0 = Math.min(NC, roundUp(N, NR));
  const kc0 = Math.min(KC, K);
  if (scalarPackB.length < kc0 * nc0) scalarPackB = new Float32Array(kc0 * nc0);
  if (scalarPackA.length < MC * kc0) scalarPackA = new Float32Array(MC * kc0);
  const pa = scalarPackA, pb = scalarPackB;

  for (let jc = 0; jc < N; jc += NC) {
    const nc = Math.min(NC, N - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = Math.min(KC, K - pc);
      packB(transB, B, bOff, ldb, pc, kc, jc, nc, NR, pb, 0);
      for (let ic = 0; ic < M; ic += MC) {
        const mc = Math.min(MC, M - ic);
        packA(transA, A, aOff, lda, ic, mc, pc, kc, MR, pa, 0);
        scalarMacroKernel(mc, nc, kc, alpha, pa, pb, C, cOff + ic * ldc + jc, ldc);
      }
    }
  }
};

function roundUp(x: number, m: number): number {
  return Math.ceil(x / m) * m;
}

function scaleC(M: number, N: number, beta: number, C: Float32Array, cOff: number, ldc: number) {
  if (beta === 1) return;
  for (let i = 0; i < M; i++) {
    const row = cOff + i * ldc;
    if (beta === 0) C.fill(0, row, row + N); // also clears NaN/Inf, as BLAS does
    else for (let j = row; j < row + N; j++) C[j] *= beta;
  }
}

/**
 * op(A)[ic:ic+mc, pc:pc+kc] into slivers of `mr` rows, each k-major (mr values per k),
 * zero-padded to a whole sliver; written at out[o..].
 */
function packA(
  transA: boolean,
  A: Float32Array,
  aOff: number,
  lda: number,
  ic: number,
  mc: number,
  pc: number,
  kc: number,
  mr: number,
  out: Float32Array,
  o: number,
) {
  for (let ir = 0; ir < mc; ir += mr) {
    const rows = Math.min(mr, mc - ir);
    const i0 = ic + ir;
    // Element (i, k) sits at aOff + i*lda + k, or aOff + k*lda + i when transposed.
    const rowStep = transA ? 1 : lda;
    const kStep = transA ? lda : 1;
    let base = transA ? aOff + pc * lda + i0 : aOff + i0 * lda + pc;
    for (let k = 0; k < kc; k++, base += kStep) {
      let r = 0;
      for (; r < rows; r++) out[o++] = A[base + r * rowStep];
      for (; r < mr; r++) out[o++] = 0;
    }
  }
}

/** op(B)[pc:pc+kc, jc:jc+nc] into slivers of `nr` columns, each k-major, zero-padded. */
function packB(
  transB: boolean,
  B: Float32Array,
  bOff: number,
  ldb: number,
  pc: number,
  kc: number,
  jc: number,
  nc: number,
  nr: number,
  out: Float32Array,
  o: number,
) {
  for (let jr = 0; jr < nc; jr += nr) {
    const cols = Math.min(nr, nc - jr);
    const j0 = jc + jr;
    if (!transB && cols === nr) {
      // Common case: a contiguous run of nr values per k.
      let base = bOff + pc * ldb + j0;
      for (let k = 0; k < kc; k++, base += ldb, o += nr) {
        out.set(B.subarray(base, base + nr), o);
      }
      continue;
    }
    // Element (k, j) sits at bOff + k*ldb + j, or bOff + j*ldb + k when transposed.
    const colStep = transB ? ldb : 1;
    const kStep = transB ? 1 : ldb;
    let base = transB ? bOff + j0 * ldb + pc : bOff + pc * ldb + j0;
    for (let k = 0; k < kc; k++, base += kStep) {
      let c = 0;
      for (; c < cols; c++) out[o++] = B[base + c * colStep];
      for (; c < nr; c++) out[o++] = 0;
    }
  }
}

/** C[mc, nc] += alpha * packedA * packedB, one 4x4 tile at a time. */
function scalarMacroKernel(
  mc: number,
  nc: number,
  kc: number,
  alpha: number,
  pa: Float32Array,
  pb: Float32Array,
  C: Float32Array,
  cBase: number,
  ldc: number,
) {
  for (let jr = 0; jr < nc; jr += NR) {
    const bBase = (jr / NR) * kc * NR;
    const cols = Math.min(NR, nc - jr);
    for (let ir = 0; ir < mc; ir += MR) {
      const aBase = (ir / MR) * kc * MR;
      const rows = Math.min(MR, mc - ir);
      // 16 accumulators in locals, which V8 keeps in registers (or at worst the stack).
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
      let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
      let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      let a = aBase, b = bBase;
      const aEnd = aBase + kc * MR;
      while (a < aEnd) {
        const b0 = pb[b], b1 = pb[b + 1], b2 = pb[b + 2], b3 = pb[b + 3];
        const a0 = pa[a];
        c00 += a0 * b0;
        c01 += a0 * b1;
        c02 += a0 * b2;
        c03 += a0 * b3;
        const a1 = pa[a + 1];
        c10 += a1 * b0;
        c11 += a1 * b1;
        c12 += a1 * b2;
        c13 += a1 * b3;
        const a2 = pa[a + 2];
        c20 += a2 * b0;
        c21 += a2 * b1;
        c22 += a2 * b2;
        c23 += a2 * b3;
        const a3 = pa[a + 3];
        c30 += a3 * b0;
        c31 += a3 * b1;
        c32 += a3 * b2;
        c33 += a3 * b3;
        a += MR;
        b += NR;
      }
      const c0 = cBase + ir * ldc + jr;
      if (rows === MR && cols === NR) {
        const c1 = c0 + ldc, c2 = c1 + ldc, c3 = c2 + ldc;
        C[c0] += alpha * c00;
        C[c0 + 1] += alpha * c01;
        C[c0 + 2] += alpha * c02;
        C[c0 + 3] += alpha * c03;
        C[c1] += alpha * c10;
        C[c1 + 1] += alpha * c11;
        C[c1 + 2] += alpha * c12;
        C[c1 + 3] += alpha * c13;
        C[c2] += alpha * c20;
        C[c2 + 1] += alpha * c21;
        C[c2 + 2] += alpha * c22;
        C[c2 + 3] += alpha * c23;
        C[c3] += alpha * c30;
        C[c3 + 1] += alpha * c31;
        C[c3 + 2] += alpha * c32;
        C[c3 + 3] += alpha * c33;
      } else {
        const tile = [
          c00,
          c01,
          c02,
          c03,
          c10,
          c11,
          c12,
          c13,
          c20,
          c21,
          c22,
          c23,
          c30,
          c31,
          c32,
          c33,
        ];
        for (let r = 0; r < rows; r++) {
          for (let s = 0; s < cols; s++) C[c0 + r * ldc + s] += alpha * tile[r * NR + s];
        }
      }
    }
  }
}
