/**
 * Row gathers and scatters with i32 indices. An index outside [0, rows) throws, naming
 * the op, the position, the index and the bound (no negative-index wrapping here: the
 * front end normalises those).
 */

import { type HostArray, ShapeError } from "../../backend.ts";

function checkIndex(op: string, idx: number, position: number, bound: number) {
  if (idx < 0 || idx >= bound) {
    throw new ShapeError(op, `index ${idx} at position ${position} is out of range [0, ${bound})`);
  }
}

/** out[i, :] = table[idx[i], :] for a (rows, cols) table; keeps the table's dtype. */
export function gather(table: HostArray, idx: Int32Array, rows: number, cols: number): HostArray {
  const n = idx.length;
  const out = table instanceof Int32Array ? new Int32Array(n * cols) : new Float32Array(n * cols);
  for (let i = 0; i < n; i++) {
    const r = idx[i];
    checkIndex("gather", r, i, rows);
    if (cols === 1) out[i] = table[r];
    else out.set(table.subarray(r * cols, r * cols + cols), i * cols);
  }
  return out;
}

/** out = zeros(rows, cols); out[idx[i], :] += src[i, :]. */
export function scatterAdd(src: HostArray, idx: Int32Array, rows: number, cols: number): HostArray {
  const n = idx.length;
  for (let i = 0; i < n; i++) checkIndex("scatterAdd", idx[i], i, rows);
  const out = src instanceof Int32Array
    ? new Int32Array(rows * cols)
    : new Float32Array(rows * cols);
  for (let i = 0; i < n; i++) {
    const o = idx[i] * cols;
    const s = i * cols;
    for (let c = 0; c < cols; c++) out[o + c] += src[s + c];
  }
  return out;
}

/** out[i] = x[i, idx[i]] for x (rows, cols). */
export function gatherCols(x: HostArray, idx: Int32Array, rows: number, cols: number): HostArray {
  const out = x instanceof Int32Array ? new Int32Array(rows) : new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    const c = idx[i];
    checkIndex("gatherCols", c, i, cols);
    out[i] = x[i * cols + c];
  }
  return out;
}
