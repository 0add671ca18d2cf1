/**
 * Cross-entropy with label smoothing, per row (PyTorch's reduction="none").
 *
 * loss = (1 - eps) * (-logp[target]) + eps * mean_c(-logp[c]); rows whose target is
 * `ignoreIndex` give loss 0 and gradient 0. The gradient with respect to the logits is
 * dloss * (softmax - q), where q = (1 - eps) * onehot(target) + eps / cols.
 */

import { ShapeError } from "../../backend.ts";
import { expNonPositive } from "./exp.ts";
import { softmax } from "./softmax.ts";

function checkTarget(op: string, t: number, row: number, cols: number) {
  if (t < 0 || t >= cols) {
    throw new ShapeError(op, `target ${t} in row ${row} is out of range [0, ${cols})`);
  }
}

export function crossEntropy(
  logits: Float32Array,
  targets: Int32Array,
  rows: number,
  cols: number,
  smoothing: number,
  ignoreIndex: number,
): { loss: Float32Array; logp: Float32Array } {
  const logp = softmax(logits, rows, cols, true);
  const loss = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t === ignoreIndex) continue;
    checkTarget("crossEntropy", t, r, cols);
    const base = r * cols;
    let sum = 0;
    if (smoothing !== 0) { for (let c = 0; c < cols; c++) sum += logp[base + c]; }
    loss[r] = -(1 - smoothing) * logp[base + t] - (smoothing * sum) / cols;
  }
  return { loss, logp };
}

export function crossEntropyBackward(
  logp: Float32Array,
  targets: Int32Array,
  dloss: Float32Array,
  rows: number,
  cols: number,
  smoothing: number,
  ignoreIndex: number,
): Float32Array {
  const dx = new Float32Array(rows * cols);
  const uniform = smoothing / cols;
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t === ignoreIndex) continue;
    checkTarget("crossEntropyBackward", t, r, cols);
    const base = r * cols;
    const d = dloss[r];
    for (let c = 0; c < cols; c++) dx[base + c] = d * (expNonPositive(logp[base + c]) - uniform);
    dx[base + t] = d * (expNonPositive(logp[base + t]) - uniform - (1 - smoothing));
  }
  return dx;
}
