/**
 * Reductions over the middle axis of an array viewed as (outer, axis, inner).
 *
 * Sums accumulate in float64. max/min propagate NaN like torch.max; argmax/argmin return
 * i32 and the first extreme wins on ties (a NaN counts as the extreme, first one wins).
 * When inner > 1 the loop walks the axis in the outer loop and the contiguous inner run
 * in the inner loop, so memory is read in order.
 */

import { type HostArray, type ReduceOp, ShapeError } from "../../backend.ts";

export function reduce(
  op: ReduceOp,
  x: HostArray,
  outer: number,
  axis: number,
  inner: number,
): HostArray {
  if (axis === 0 && op !== "sum") {
    throw new ShapeError("reduce", `${op} over an empty axis (outer ${outer}, inner ${inner})`);
  }
  const n = outer * inner;
  switch (op) {
    case "sum":
      return sum(x, outer, axis, inner);
    case "max":
      return extreme(x, outer, axis, inner, true, false);
    case "min":
      return extreme(x, outer, axis, inner, false, false);
    case "argmax":
      return extreme(x, outer, axis, inner, true, true);
    case "argmin":
      return extreme(x, outer, axis, inner, false, true);
    default:
      throw new ShapeError("reduce", `unknown op "${op}" (outer ${outer}, output ${n})`);
  }
}

function sum(x: HostArray, outer: number, axis: number, inner: number): HostArray {
  const out = x instanceof Int32Array
    ? new Int32Array(outer * inner)
    : new Float32Array(outer * inner);
  if (inner === 1) {
    for (let o = 0; o < outer; o++) {
      let s = 0;
      const base = o * axis;
      for (let a = 0; a < axis; a++) s += x[base + a];
      out[o] = s;
    }
    return out;
  }
  const acc = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    acc.fill(0);
    for (let a = 0; a < axis; a++) {
      const base = (o * axis + a) * inner;
      for (let j = 0; j < inner; j++) acc[j] += x[base + j];
    }
    out.set(acc, o * inner);
  }
  return out;
}

/** max/min (or their index). `v !== v` tests NaN; a NaN beats everything but an earlier NaN. */
function extreme(
  x: HostArray,
  outer: number,
  axis: number,
  inner: number,
  isMax: boolean,
  wantIndex: boolean,
): HostArray {
  const best = new Float64Array(inner);
  const index = new Int32Array(inner);
  const out = wantIndex
    ? new Int32Array(outer * inner)
    : x instanceof Int32Array
    ? new Int32Array(outer * inner)
    : new Float32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    const start = o * axis * inner;
    for (let j = 0; j < inner; j++) best[j] = x[start + j];
    index.fill(0);
    for (let a = 1; a < axis; a++) {
      const base = start + a * inner;
      if (isMax) {
        for (let j = 0; j < inner; j++) {
          const v = x[base + j];
          const b = best[j];
          if (v > b || (v !== v && b === b)) {
            best[j] = v;
            index[j] = a;
          }
        }
      } else {
        for (let j = 0; j < inner; j++) {
          const v = x[base + j];
          const b = best[j];
          if (v < b || (v !== v && b === b)) {
            best[j] = v;
            index[j] = a;
          }
        }
      }
    }
    out.set(wantIndex ? index : best, o * inner);
  }
  return out;
}
