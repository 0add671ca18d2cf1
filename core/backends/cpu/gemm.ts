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

export type SgemmFn = (
  transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
  A: Float32Array, aOff: number, lda: number, B: Float32Array, bOff: number, ldb: number,
  beta: number, C: Float32Array, cOff: number, ldc: number,
) => void;

/** Throws unless every element the call would touch lies inside its array. */
export function checkGemmArgs(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  A: Float32Array | Float64Array, aOff: number, lda: number,
  B: Float32Array | Float64Array, bOff: number, ldb: number,
  C: Float32Array | Float64Array, cOff: number, ldc: number,
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
  transA, transB, M, N, K, alpha, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc,
) => {
  checkGemmArgs(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc);
  if (M === 0 || N === 0) return;
  const blas = openblas();
  if (blas && K > 0) {
    // Deno passes a subarray's own data pointer, so offsets become views.
    blas.sgemm(
      transA, transB, M, N, K, alpha, aOff ? A.subarray(aOff) : A, lda,
      bOff ? B.subarray(bOff) : B, ldb, beta, cOff ? C.subarray(cOff) : C, ldc,
    );
    return;
  }
  sgemmBlocked(transA, transB, M, N, K, alpha, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc);
};

/** Reference triple loop (float32 storage, float64 accumulation). */
export const sgemmNaive: SgemmFn = (
  transA, transB, M, N, K, alpha, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc,
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

/** Micro-tile: MR rows x NR columns held in 16 local accumulators. */
const MR = 4;
const NR = 4;
/** Cache blocks: a KC x NC panel of B (~L2) is shared by MC x KC panels of A (~L1/L2). */
const KC = 256;
const MC = 64;
const NC = 2048;

let packA = new Float32Array(MC * KC);
let packB = new Float32Array(KC * NC);

/** Pure-TS GEMM: packed panels, 4x4 register-blocked micro-kernel, no inner allocation. */
export const sgemmBlocked: SgemmFn = (
  transA, transB, M, N, K, alpha, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc,
) => {
  checkGemmArgs(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, C, cOff, ldc);
  if (M === 0 || N === 0) return;
  scaleC(M, N, beta, C, cOff, ldc);
  if (K === 0 || alpha === 0) return;

  const nc0 = Math.min(NC, roundUp(N, NR));
  const kc0 = Math.min(KC, K);
  if (packB.length < kc0 * nc0) packB = new Float32Array(kc0 * nc0);
  if (packA.length < MC * kc0) packA = new Float32Array(MC * kc0);
  const pa = packA, pb = packB;

  for (let jc = 0; jc < N; jc += NC) {
    const nc = Math.min(NC, N - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = Math.min(KC, K - pc);
      packPanelB(transB, B, bOff, ldb, pc, kc, jc, nc, pb);
      for (let ic = 0; ic < M; ic += MC) {
        const mc = Math.min(MC, M - ic);
        packPanelA(transA, A, aOff, lda, ic, mc, pc, kc, pa);
        macroKernel(mc, nc, kc, alpha, pa, pb, C, cOff + ic * ldc + jc, ldc);
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

/** op(A)[ic:ic+mc, pc:pc+kc] into MR-row slivers, each stored k-major (MR values per k). */
function packPanelA(
  transA: boolean, A: Float32Array, aOff: number, lda: number,
  ic: number, mc: number, pc: number, kc: number, out: Float32Array,
) {
  let o = 0;
  for (let ir = 0; ir < mc; ir += MR) {
    const rows = Math.min(MR, mc - ir);
    const i0 = ic + ir;
    if (!transA) {
      // element (i, k) at aOff + i*lda + k
      for (let k = 0; k < kc; k++) {
        const base = aOff + i0 * lda + pc + k;
        for (let r = 0; r < MR; r++) out[o++] = r < rows ? A[base + r * lda] : 0;
      }
    } else {
      // element (i, k) at aOff + k*lda + i
      for (let k = 0; k < kc; k++) {
        const base = aOff + (pc + k) * lda + i0;
        for (let r = 0; r < MR; r++) out[o++] = r < rows ? A[base + r] : 0;
      }
    }
  }
}

/** op(B)[pc:pc+kc, jc:jc+nc] into NR-column slivers, each stored k-major (NR values per k). */
function packPanelB(
  transB: boolean, B: Float32Array, bOff: number, ldb: number,
  pc: number, kc: number, jc: number, nc: number, out: Float32Array,
) {
  let o = 0;
  for (let jr = 0; jr < nc; jr += NR) {
    const cols = Math.min(NR, nc - jr);
    const j0 = jc + jr;
    if (!transB) {
      // element (k, j) at bOff + k*ldb + j
      for (let k = 0; k < kc; k++) {
        const base = bOff + (pc + k) * ldb + j0;
        if (cols === NR) {
          out[o] = B[base];
          out[o + 1] = B[base + 1];
          out[o + 2] = B[base + 2];
          out[o + 3] = B[base + 3];
          o += NR;
        } else {
          for (let c = 0; c < NR; c++) out[o++] = c < cols ? B[base + c] : 0;
        }
      }
    } else {
      // element (k, j) at bOff + j*ldb + k
      for (let k = 0; k < kc; k++) {
        const base = bOff + j0 * ldb + pc + k;
        for (let c = 0; c < NR; c++) out[o++] = c < cols ? B[base + c * ldb] : 0;
      }
    }
  }
}

/** C[mc, nc] += alpha * packedA * packedB, one 4x4 tile at a time. */
function macroKernel(
  mc: number, nc: number, kc: number, alpha: number,
  pa: Float32Array, pb: Float32Array, C: Float32Array, cBase: number, ldc: number,
) {
  for (let jr = 0; jr < nc; jr += NR) {
    const bBase = (jr / NR) * kc * NR;
    const cols = Math.min(NR, nc - jr);
    for (let ir = 0; ir < mc; ir += MR) {
      const aBase = (ir / MR) * kc * MR;
      const rows = Math.min(MR, mc - ir);
      // 16 accumulators live in registers (or at worst the stack), never in memory arrays.
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
      let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
      let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      let a = aBase, b = bBase;
      const aEnd = aBase + kc * MR;
      while (a < aEnd) {
        const b0 = pb[b], b1 = pb[b + 1], b2 = pb[b + 2], b3 = pb[b + 3];
        const a0 = pa[a];
        c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
        const a1 = pa[a + 1];
        c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
        const a2 = pa[a + 2];
        c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
        const a3 = pa[a + 3];
        c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
        a += MR;
        b += NR;
      }
      const c0 = cBase + ir * ldc + jr;
      if (rows === MR && cols === NR) {
        let c = c0;
        C[c] += alpha * c00; C[c + 1] += alpha * c01; C[c + 2] += alpha * c02; C[c + 3] += alpha * c03;
        c += ldc;
        C[c] += alpha * c10; C[c + 1] += alpha * c11; C[c + 2] += alpha * c12; C[c + 3] += alpha * c13;
        c += ldc;
        C[c] += alpha * c20; C[c + 1] += alpha * c21; C[c + 2] += alpha * c22; C[c + 3] += alpha * c23;
        c += ldc;
        C[c] += alpha * c30; C[c + 1] += alpha * c31; C[c + 2] += alpha * c32; C[c + 3] += alpha * c33;
      } else {
        const tile = [
          c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33,
        ];
        for (let r = 0; r < rows; r++) {
          for (let s = 0; s < cols; s++) C[c0 + r * ldc + s] += alpha * tile[r * NR + s];
        }
      }
    }
  }
}
