/**
 * Batched matrix product for the CPU backend: out[b] = op(A[b]) op(B[b]) (+ bias),
 * returned as a fresh (batch, M, N) array, with the optional epilogue
 * out = addend + scale * (product + bias). See `MatmulArgs` in core/backend.ts for the
 * layout: strides of 0 broadcast one matrix over the batch.
 *
 * Without a scale, the output starts as bias (+ addend) and the GEMM accumulates onto it
 * (beta = 1), so bias and residual cost no pass of their own; with a scale, the GEMM
 * writes the bare product and one pass applies the rest. A fresh array is already zero,
 * so the GEMM never needs beta = 0 (which would make OpenBLAS clear it again).
 */

import { type MatmulArgs, ShapeError } from "../../backend.ts";
import { sgemm as defaultSgemm, type SgemmFn } from "./gemm.ts";

export interface MatmulEpilogue {
  bias?: Float32Array;
  scale?: Float32Array;
  addend?: Float32Array;
}

export function matmul(
  a: Float32Array, b: Float32Array, args: MatmulArgs, epilogue: MatmulEpilogue = {},
  gemm: SgemmFn = defaultSgemm,
): Float32Array {
  const { batch, M, N, K, transA, transB, strideA, strideB } = args;
  const { bias, scale, addend } = epilogue;
  const describe = () =>
    `batch=${batch} M=${M} N=${N} K=${K} transA=${transA} transB=${transB} ` +
    `strideA=${strideA} strideB=${strideB} a.length=${a.length} b.length=${b.length}`;
  if (a.length < (batch - 1) * strideA + M * K || b.length < (batch - 1) * strideB + K * N) {
    throw new ShapeError("matmul", `operand too small: ${describe()}`);
  }
  for (const [name, arr, n] of [["bias", bias, N], ["scale", scale, N], ["addend", addend, batch * M * N]] as const) {
    if (arr && arr.length !== n) {
      throw new ShapeError("matmul", `${name} has ${arr.length} elements, expected ${n}: ${describe()}`);
    }
  }
  const out = new Float32Array(batch * M * N);
  if (out.length === 0) return out;
  const rows = batch * M;
  if (!scale) startRows(out, rows, N, bias, addend);
  const lda = transA ? M : K;
  const ldb = transB ? K : N;

  // A shared B with contiguous row-major A batches is one tall GEMM: (batch*M, K) x (K, N).
  if (batch > 1 && strideB === 0 && !transA && strideA === M * K) {
    gemm(false, transB, batch * M, N, K, 1, a, 0, lda, b, 0, ldb, 1, out, 0, N);
  } else {
    for (let i = 0; i < batch; i++) {
      gemm(
        transA, transB, M, N, K, 1, a, i * strideA, lda, b, i * strideB, ldb, 1, out, i * M * N,
        N,
      );
    }
  }
  if (scale) finishRows(out, rows, N, bias, scale, addend);
  return out;
}

/** out = bias (+ addend) row by row, before the GEMM accumulates onto it. */
function startRows(out: Float32Array, rows: number, N: number, bias?: Float32Array, addend?: Float32Array) {
  if (addend && bias) {
    for (let r = 0; r < rows; r++) {
      const o = r * N;
      for (let j = 0; j < N; j++) out[o + j] = addend[o + j] + bias[j];
    }
  } else if (addend) {
    out.set(addend);
  } else if (bias) {
    for (let r = 0; r < rows; r++) out.set(bias, r * N);
  }
}

/** out = addend + scale * (out + bias), row by row, after the GEMM. */
function finishRows(
  out: Float32Array, rows: number, N: number, bias: Float32Array | undefined, scale: Float32Array,
  addend?: Float32Array,
) {
  for (let r = 0; r < rows; r++) {
    const o = r * N;
    if (bias && addend) for (let j = 0; j < N; j++) out[o + j] = addend[o + j] + scale[j] * (out[o + j] + bias[j]);
    else if (bias) for (let j = 0; j < N; j++) out[o + j] = scale[j] * (out[o + j] + bias[j]);
    else if (addend) for (let j = 0; j < N; j++) out[o + j] = addend[o + j] + scale[j] * out[o + j];
    else for (let j = 0; j < N; j++) out[o + j] *= scale[j];
  }
}
