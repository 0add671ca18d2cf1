/**
 * Batched matrix product for the CPU backend: out[b] = op(A[b]) op(B[b]) (+ bias),
 * returned as a fresh (batch, M, N) array, with the optional epilogue
 * out = addend + scale * act(product + bias). See `MatmulArgs` in core/backend.ts for the
 * layout: strides of 0 broadcast one matrix over the batch.
 *
 * The output starts as the bias (plus the addend when nothing comes between them) and the
 * GEMM accumulates onto it (beta = 1), so those cost no pass of their own; an activation
 * then runs in place (GELU: the float32 table kernel, within 3e-7 relative, as this is
 * for inference), and one more pass applies scale and addend. The output comes zeroed
 * (or is overwritten first), so the GEMM never needs beta = 0 (which would make OpenBLAS
 * clear it again).
 */

import { type MatmulArgs, ShapeError } from "../../backend.ts";
import { geluFastInto } from "./gelu.ts";
import { sgemm as defaultSgemm, type SgemmFn } from "./gemm.ts";
import { outputF32 } from "./storage.ts";

export interface MatmulEpilogue {
  bias?: Float32Array;
  activation?: "gelu";
  scale?: Float32Array;
  addend?: Float32Array;
}

export function matmul(
  a: Float32Array,
  b: Float32Array,
  args: MatmulArgs,
  epilogue: MatmulEpilogue = {},
  gemm: SgemmFn = defaultSgemm,
): Float32Array {
  const { batch, M, N, K, transA, transB, strideA, strideB } = args;
  const { bias, activation, scale, addend } = epilogue;
  const describe = () =>
    `batch=${batch} M=${M} N=${N} K=${K} transA=${transA} transB=${transB} ` +
    `strideA=${strideA} strideB=${strideB} a.length=${a.length} b.length=${b.length}`;
  if (a.length < (batch - 1) * strideA + M * K || b.length < (batch - 1) * strideB + K * N) {
    throw new ShapeError("matmul", `operand too small: ${describe()}`);
  }
  for (
    const [name, arr, n] of [["bias", bias, N], ["scale", scale, N], [
      "addend",
      addend,
      batch * M * N,
    ]] as const
  ) {
    if (arr && arr.length !== n) {
      throw new ShapeError(
        "matmul",
        `${name} has ${arr.length} elements, expected ${n}: ${describe()}`,
      );
    }
  }
  if (activation !== undefined && activation !== "gelu") {
    throw new ShapeError("matmul", `unknown activation ${activation}`);
  }
  const rows = batch * M;
  const addFirst = addend && !activation && !scale;
  // Bias or addend overwrite every element before the GEMM; otherwise it adds onto zeros.
  const out = outputF32(batch * M * N, !bias && !addFirst);
  if (out.length === 0) return out;
  startRows(out, rows, N, bias, addFirst ? addend : undefined);
  const lda = transA ? M : K;
  const ldb = transB ? K : N;

  // A shared B with contiguous row-major A batches is one tall GEMM: (batch*M, K) x (K, N).
  if (batch > 1 && strideB === 0 && !transA && strideA === M * K) {
    gemm(false, transB, batch * M, N, K, 1, a, 0, lda, b, 0, ldb, 1, out, 0, N);
  } else {
    for (let i = 0; i < batch; i++) {
      gemm(
        transA,
        transB,
        M,
        N,
        K,
        1,
        a,
        i * strideA,
        lda,
        b,
        i * strideB,
        ldb,
        1,
        out,
        i * M * N,
        N,
      );
    }
  }
  if (activation) geluFastInto(out, out);
  if (scale || (addend && !addFirst)) {
    finishRows(out, rows, N, scale, addFirst ? undefined : addend);
  }
  return out;
}

/** out = bias (+ addend) row by row, before the GEMM accumulates onto it. */
function startRows(
  out: Float32Array,
  rows: number,
  N: number,
  bias?: Float32Array,
  addend?: Float32Array,
) {
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

/** out = addend + scale * out (either part optional), row by row, after the GEMM. */
function finishRows(
  out: Float32Array,
  rows: number,
  N: number,
  scale?: Float32Array,
  addend?: Float32Array,
) {
  if (scale && addend) {
    scaleAddRows(out, rows, N, scale, addend);
    return;
  }
  for (let r = 0; r < rows; r++) {
    const o = r * N;
    if (scale) { for (let j = 0; j < N; j++) out[o + j] *= scale[j]; }
    else if (addend) { for (let j = 0; j < N; j++) out[o + j] += addend[o + j]; }
  }
}

/**
 * out = addend + scale * out, four columns per step (the LayerScale + residual pass of
 * every transformer block: 0.77 instead of 1.07 ns per element, measured).
 */
function scaleAddRows(
  out: Float32Array,
  rows: number,
  N: number,
  scale: Float32Array,
  addend: Float32Array,
) {
  const N4 = N & ~3;
  for (let r = 0; r < rows; r++) {
    const o = r * N;
    let j = 0;
    for (; j < N4; j += 4) {
      const i = o + j;
      const y0 = addend[i] + scale[j] * out[i], y1 = addend[i + 1] + scale[j + 1] * out[i + 1];
      const y2 = addend[i + 2] + scale[j + 2] * out[i + 2],
        y3 = addend[i + 3] + scale[j + 3] * out[i + 3];
      out[i] = y0, out[i + 1] = y1, out[i + 2] = y2, out[i + 3] = y3;
    }
    for (; j < N; j++) out[o + j] = addend[o + j] + scale[j] * out[o + j];
  }
}
