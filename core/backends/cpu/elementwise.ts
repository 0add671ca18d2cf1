/**
 * Elementwise kernels: unary maps, broadcast binary ops and `where` over strided views,
 * the fused scalar maps (affine, powScalar, clamp), casts, strided copies, arange, fill.
 *
 * Each op is a `switch` outside one tight loop, so the hot loop never calls through a
 * closure. Outputs keep the input dtype (i32 results of float maths truncate toward zero,
 * as typed-array stores do); comparisons give 1 or 0.
 */

import type { BinaryOp, DType, HostArray, UnaryOp } from "../../backend.ts";
import { expNonPositive } from "./exp.ts";
import { geluGradInto, geluInto } from "./gelu.ts";
import { newArray, outputF32 } from "./storage.ts";
import { mapWasm } from "./vector_wasm.ts";
import { coalesce, contiguousStrides, forEachRow, longRowLast, numel } from "./strided.ts";

/** A typed array read through strides already aligned to the output shape. */
export interface Operand {
  data: HostArray;
  strides: readonly number[];
  offset: number;
}

/** Through exp(-|x|) <= 1, so neither side overflows; the table exp is 2.5x Math.exp. */
function sigmoid(x: number): number {
  const e = expNonPositive(-Math.abs(x));
  const r = 1 / (1 + e);
  return x >= 0 ? r : e * r;
}

export function unary(op: UnaryOp, x: HostArray): HostArray {
  const n = x.length;
  // Every case below writes all n elements, so a recycled array needs no zeroing.
  const y = x instanceof Int32Array ? new Int32Array(n) : outputF32(n, false);
  switch (op) {
    case "neg":
      for (let i = 0; i < n; i++) y[i] = -x[i];
      break;
    case "abs":
      for (let i = 0; i < n; i++) y[i] = Math.abs(x[i]);
      break;
    case "exp":
      for (let i = 0; i < n; i++) y[i] = Math.exp(x[i]);
      break;
    case "log":
      for (let i = 0; i < n; i++) y[i] = Math.log(x[i]);
      break;
    case "sqrt":
      for (let i = 0; i < n; i++) y[i] = Math.sqrt(x[i]);
      break;
    case "rsqrt":
      for (let i = 0; i < n; i++) y[i] = 1 / Math.sqrt(x[i]);
      break;
    case "tanh":
      for (let i = 0; i < n; i++) y[i] = Math.tanh(x[i]);
      break;
    case "sigmoid":
      if (x instanceof Float32Array && mapWasm("sigmoid", x, y as Float32Array)) break;
      for (let i = 0; i < n; i++) y[i] = sigmoid(x[i]);
      break;
    case "silu":
      if (x instanceof Float32Array && mapWasm("silu", x, y as Float32Array)) break;
      for (let i = 0; i < n; i++) y[i] = x[i] * sigmoid(x[i]);
      break;
    case "silu_grad":
      for (let i = 0; i < n; i++) {
        const s = sigmoid(x[i]);
        y[i] = s * (1 + x[i] * (1 - s));
      }
      break;
    case "gelu":
      geluInto(x, y);
      break;
    case "gelu_grad":
      geluGradInto(x, y);
      break;
    // `x < 0 ? 0 : x` keeps NaN as NaN, like torch.relu.
    case "relu":
      for (let i = 0; i < n; i++) y[i] = x[i] < 0 ? 0 : x[i];
      break;
    case "sin":
      for (let i = 0; i < n; i++) y[i] = Math.sin(x[i]);
      break;
    case "cos":
      for (let i = 0; i < n; i++) y[i] = Math.cos(x[i]);
      break;
    case "square":
      for (let i = 0; i < n; i++) y[i] = x[i] * x[i];
      break;
    case "reciprocal":
      for (let i = 0; i < n; i++) y[i] = 1 / x[i];
      break;
    case "floor":
      for (let i = 0; i < n; i++) y[i] = Math.floor(x[i]);
      break;
    case "sign":
      for (let i = 0; i < n; i++) y[i] = Math.sign(x[i]);
      break;
    default:
      throw new Error(`unary: unknown op "${op}"`);
  }
  return y;
}

/** One row of a binary op: out[o + i*os] = a[ai + i*as] (op) b[bi + i*bs]. */
function binaryRow(
  op: BinaryOp,
  out: HostArray,
  o: number,
  os: number,
  a: HostArray,
  ai: number,
  as: number,
  b: HostArray,
  bi: number,
  bs: number,
  n: number,
) {
  switch (op) {
    case "add":
      for (let i = 0; i < n; i++, o += os, ai += as, bi += bs) out[o] = a[ai] + b[bi];
      break;
    case "sub":
      for (let i = 0; i < n; i++, o += os, ai += as, bi += bs) out[o] = a[ai] - b[bi];
      break;
    case "mul":
      for (let i = 0; i < n; i++, o += os, ai += as, bi += bs) out[o] = a[ai] * b[bi];
      break;
    case "div":
      for (let i = 0; i < n; i++, o += os, ai += as, bi += bs) out[o] = a[ai] / b[bi];
      break;
    case "pow":
      for (let i = 0; i < n; i++, o += os, ai += as, bi += bs) out[o] = Math.pow(a[ai], b[bi]);
      break;
    case "max":
      for (let i = 0; i < n; i++, o += os, ai += as, bi += bs) out[o] = Math.max(a[ai], b[bi]);
      break;
    case "min":
      for (let i = 0; i < n; i++, o += os, ai += as, bi += bs) out[o] = Math.min(a[ai], b[bi]);
      break;
    case "eq":
      for (let i = 0; i < n; i++, o += os, ai += as, bi += bs) out[o] = a[ai] === b[bi] ? 1 : 0;
      break;
    case "ne":
      for (let i = 0; i < n; i++, o += os, ai += as, bi += bs) out[o] = a[ai] !== b[bi] ? 1 : 0;
      break;
    case "lt":
      for (let i = 0; i < n; i++, o += os, ai += as, bi += bs) out[o] = a[ai] < b[bi] ? 1 : 0;
      break;
    case "le":
      for (let i = 0; i < n; i++, o += os, ai += as, bi += bs) out[o] = a[ai] <= b[bi] ? 1 : 0;
      break;
    case "gt":
      for (let i = 0; i < n; i++, o += os, ai += as, bi += bs) out[o] = a[ai] > b[bi] ? 1 : 0;
      break;
    case "ge":
      for (let i = 0; i < n; i++, o += os, ai += as, bi += bs) out[o] = a[ai] >= b[bi] ? 1 : 0;
      break;
    default:
      throw new Error(`binary: unknown op "${op}"`);
  }
}

export function binary(
  op: BinaryOp,
  a: Operand,
  b: Operand,
  shape: readonly number[],
  outDtype: DType,
): HostArray {
  // The rows below cover every output element once: no zeroing needed.
  const out = outDtype === "f32"
    ? outputF32(numel(shape), false)
    : newArray(outDtype, numel(shape));
  const layout = longRowLast(coalesce(shape, [contiguousStrides(shape), a.strides, b.strides]));
  const last = layout.shape.length - 1;
  const n = layout.shape[last];
  const os = layout.strides[0][last];
  const as = layout.strides[1][last];
  const bs = layout.strides[2][last];
  forEachRow(layout, [0, a.offset, b.offset], (off) => {
    binaryRow(op, out, off[0], os, a.data, off[1], as, b.data, off[2], bs, n);
  });
  return out;
}

/** out = cond != 0 ? a : b; the output takes a's dtype. */
export function where(cond: Operand, a: Operand, b: Operand, shape: readonly number[]): HostArray {
  const out = a.data instanceof Int32Array
    ? new Int32Array(numel(shape))
    : new Float32Array(numel(shape));
  const layout = longRowLast(
    coalesce(shape, [contiguousStrides(shape), cond.strides, a.strides, b.strides]),
  );
  const last = layout.shape.length - 1;
  const n = layout.shape[last];
  const os = layout.strides[0][last];
  const cs = layout.strides[1][last];
  const as = layout.strides[2][last];
  const bs = layout.strides[3][last];
  const c = cond.data;
  const ad = a.data;
  const bd = b.data;
  forEachRow(layout, [0, cond.offset, a.offset, b.offset], (off) => {
    let ci = off[1];
    let ai = off[2];
    let bi = off[3];
    let o = off[0];
    for (let i = 0; i < n; i++, o += os, ci += cs, ai += as, bi += bs) {
      out[o] = c[ci] !== 0 ? ad[ai] : bd[bi];
    }
  });
  return out;
}

/** Strided copy of `src` into the strided window `dst` (both aligned to `shape`). */
export function copyStrided(dst: Operand, src: Operand, shape: readonly number[]) {
  const layout = longRowLast(coalesce(shape, [dst.strides, src.strides]));
  const last = layout.shape.length - 1;
  const n = layout.shape[last];
  const ds = layout.strides[0][last];
  const ss = layout.strides[1][last];
  const d = dst.data;
  const s = src.data;
  forEachRow(layout, [dst.offset, src.offset], (off) => {
    let di = off[0];
    let si = off[1];
    if (ds === 1 && ss === 1 && d.constructor === s.constructor) {
      (d as Float32Array).set((s as Float32Array).subarray(si, si + n), di);
      return;
    }
    for (let i = 0; i < n; i++, di += ds, si += ss) d[di] = s[si];
  });
}

/** Contiguous copy of a strided view, in the source dtype. */
export function copy(src: Operand, shape: readonly number[]): HostArray {
  const n = numel(shape);
  const out = src.data instanceof Int32Array ? new Int32Array(n) : new Float32Array(n);
  copyStrided({ data: out, strides: contiguousStrides(shape), offset: 0 }, src, shape);
  return out;
}

export function affine(x: HostArray, scale: number, shift: number): HostArray {
  const n = x.length;
  const y = x instanceof Int32Array ? new Int32Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) y[i] = x[i] * scale + shift;
  return y;
}

export function powScalar(x: HostArray, p: number): HostArray {
  const n = x.length;
  const y = x instanceof Int32Array ? new Int32Array(n) : new Float32Array(n);
  if (p === 2) { for (let i = 0; i < n; i++) y[i] = x[i] * x[i]; }
  else if (p === 1) y.set(x);
  else if (p === 0.5) { for (let i = 0; i < n; i++) y[i] = Math.sqrt(x[i]); }
  else if (p === -1) { for (let i = 0; i < n; i++) y[i] = 1 / x[i]; }
  else for (let i = 0; i < n; i++) y[i] = Math.pow(x[i], p);
  return y;
}

/** min(max(x, lo), hi), keeping NaN. */
export function clamp(x: HostArray, lo: number, hi: number): HostArray {
  const n = x.length;
  const y = x instanceof Int32Array ? new Int32Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = x[i];
    y[i] = v < lo ? lo : v > hi ? hi : v;
  }
  return y;
}

/** f32 -> i32 truncates toward zero (NaN becomes 0); i32 -> f32 rounds to nearest. */
export function cast(x: HostArray, to: DType): HostArray {
  const y = newArray(to, x.length);
  y.set(x);
  return y;
}

export function arange(dtype: DType, length: number, start: number, step: number): HostArray {
  const y = newArray(dtype, length);
  for (let i = 0; i < length; i++) y[i] = start + i * step;
  return y;
}

export function fill(dtype: DType, length: number, value: number): HostArray {
  const y = newArray(dtype, length);
  if (value !== 0) y.fill(value);
  return y;
}
