/**
 * Batched matrix product for the CPU backend: out[b] = op(A[b]) op(B[b]) (+ bias),
 * returned as a fresh (batch, M, N) array. See `MatmulArgs` in core/backend.ts for the
 * layout: strides of 0 broadcast one matrix over the batch.
 */

import { type MatmulArgs, ShapeError } from "../../backend.ts";
import { sgemm as defaultSgemm, type SgemmFn } from "./gemm.ts";

export function matmul(
  a: Float32Array, b: Float32Array, args: MatmulArgs, bias?: Float32Array,
  gemm: SgemmFn = defaultSgemm,
): Float32Array {
  const { batch, M, N, K, transA, transB, strideA, strideB } = args;
  const describe = () =>
    `batch=${batch} M=${M} N=${N} K=${K} transA=${transA} transB=${transB} ` +
    `strideA=${strideA} strideB=${strideB} a.length=${a.length} b.length=${b.length}`;
  if (a.length < (batch - 1) * strideA + M * K || b.length < (batch - 1) * strideB + K * N) {
    throw new ShapeError("matmul", `operand too small: ${describe()}`);
  }
  if (bias && bias.length !== N) {
    throw new ShapeError("matmul", `bias has ${bias.length} elements, expected N=${N}`);
  }
  const out = new Float32Array(batch * M * N);
  if (out.length === 0) return out;
  if (bias) {
    for (let row = 0; row < batch * M; row++) out.set(bias, row * N);
  }
  const beta = bias ? 1 : 0;
  const lda = transA ? M : K;
  const ldb = transB ? K : N;

  // A shared B with contiguous row-major A batches is one tall GEMM: (batch*M, K) x (K, N).
  if (batch > 1 && strideB === 0 && !transA && strideA === M * K) {
    gemm(false, transB, batch * M, N, K, 1, a, 0, lda, b, 0, ldb, beta, out, 0, N);
    return out;
  }
  for (let i = 0; i < batch; i++) {
    gemm(
      transA, transB, M, N, K, 1, a, i * strideA, lda, b, i * strideB, ldb, beta, out, i * M * N,
      N,
    );
  }
  return out;
}
