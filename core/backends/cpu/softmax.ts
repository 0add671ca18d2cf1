/**
 * Row-wise softmax and log-softmax, forward and backward, over (rows, cols).
 *
 * The forward subtracts the row max and sums in float64. Backward, from the output y:
 *   softmax:      dx = y * (dy - sum(dy * y))
 *   log-softmax:  dx = dy - exp(y) * sum(dy)
 */

import { expNonPositive } from "./exp.ts";
import { softmaxWasm } from "./vector_wasm.ts";

export function softmax(x: Float32Array, rows: number, cols: number, log: boolean): Float32Array {
  const y = new Float32Array(rows * cols);
  if (softmaxWasm(x, y, rows, cols, log)) return y; // WASM SIMD, when available
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const end = base + cols;
    let max = -Infinity;
    for (let i = base; i < end; i++) if (x[i] > max) max = x[i];
    let sum = 0;
    if (log) {
      for (let i = base; i < end; i++) sum += expNonPositive(x[i] - max);
      const shift = max + Math.log(sum);
      for (let i = base; i < end; i++) y[i] = x[i] - shift;
    } else {
      for (let i = base; i < end; i++) {
        const e = expNonPositive(x[i] - max);
        y[i] = e;
        sum += e;
      }
      const inv = 1 / sum;
      for (let i = base; i < end; i++) y[i] *= inv;
    }
  }
  return y;
}

export function softmaxBackward(
  y: Float32Array,
  dy: Float32Array,
  rows: number,
  cols: number,
  log: boolean,
): Float32Array {
  const dx = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const end = base + cols;
    let s = 0;
    if (log) {
      for (let i = base; i < end; i++) s += dy[i];
      for (let i = base; i < end; i++) dx[i] = dy[i] - expNonPositive(y[i]) * s;
    } else {
      for (let i = base; i < end; i++) s += dy[i] * y[i];
      for (let i = base; i < end; i++) dx[i] = y[i] * (dy[i] - s);
    }
  }
  return dx;
}
