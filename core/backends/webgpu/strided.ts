/**
 * One-thread-per-element kernels over strided views: the engine behind copy, copyInto,
 * binary, where, and every contiguous map (unary, affine, cast, fill...).
 *
 * Shapes are first coalesced (size-1 axes dropped, adjacent axes merged where every
 * operand is contiguous across them), so most calls end up rank 1. An operand that is
 * then contiguous is read as `offset + i`; others get their strides through the uniform
 * struct, with the rank baked into the shader.
 */

import { type DType, ShapeError, type View } from "../../backend.ts";
import type { GpuStorage } from "./buffers.ts";
import type { GpuContext } from "./context.ts";
import type { KernelDef, ParamField, ParamValues } from "./kernel.ts";
import { layout, threadIndex, u32, u32s } from "./wgsl.ts";

export const MAX_RANK = 8;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/** Drop size-1 axes and merge axes that every operand walks contiguously. */
export function coalesce(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): { shape: number[]; strides: number[][] } {
  const keep = shape.map((d, i) => (d !== 1 ? i : -1)).filter((i) => i >= 0);
  let outShape = keep.map((i) => shape[i]);
  let outStrides = strides.map((s) => keep.map((i) => s[i]));
  for (let d = outShape.length - 2; d >= 0; d--) {
    const mergeable = outStrides.every((s) => s[d] === s[d + 1] * outShape[d + 1]);
    if (!mergeable) continue;
    outShape = [...outShape.slice(0, d), outShape[d] * outShape[d + 1], ...outShape.slice(d + 2)];
    outStrides = outStrides.map((s) => [...s.slice(0, d), s[d + 1], ...s.slice(d + 2)]);
  }
  return { shape: outShape, strides: outStrides };
}

/** An input of an elementwise kernel: a view and the type its values are computed in. */
export interface Operand {
  view: View;
  as: "f32" | "i32";
}

export interface ElementwiseSpec {
  /** Op name for errors and the shader label. */
  name: string;
  inputs: readonly Operand[];
  outShape: readonly number[];
  outDtype: DType;
  /** WGSL expression over `v0, v1, ...` (and `i`, the linear index), in the output's math type. */
  expr: string;
  /** The WGSL type `expr` evaluates to, converted to the output dtype on store. */
  exprType: "f32" | "i32";
  helpers?: string;
  extraParams?: readonly ParamField[];
  extraValues?: ParamValues;
}

/**
 * Strides of `v` read as an array of `shape`: axes right-aligned, missing and size-1 axes
 * broadcast with stride 0. Also checks that the view stays inside its storage.
 */
export function alignedStrides(
  v: View,
  shape: readonly number[],
  op: string,
  what: string,
): number[] {
  if (v.shape.length !== v.strides.length) {
    throw new ShapeError(op, `${what} has shape [${v.shape}] but strides [${v.strides}]`);
  }
  const lead = shape.length - v.shape.length;
  if (lead < 0) {
    throw new ShapeError(op, `${what} shape [${v.shape}] has more axes than the output [${shape}]`);
  }
  const out = new Array<number>(shape.length).fill(0);
  for (let d = 0; d < v.shape.length; d++) {
    if (v.strides[d] < 0) throw new ShapeError(op, `${what} has a negative stride [${v.strides}]`);
    if (v.shape[d] === shape[lead + d]) out[lead + d] = v.shape[d] === 1 ? 0 : v.strides[d];
    else if (v.shape[d] !== 1) {
      throw new ShapeError(op, `${what} shape [${v.shape}] does not broadcast to [${shape}]`);
    }
  }
  let last = v.offset;
  for (let d = 0; d < v.shape.length; d++) {
    if (v.shape[d] > 0) last += (v.shape[d] - 1) * v.strides[d];
  }
  if (numel(v.shape) > 0 && (v.offset < 0 || last >= v.storage.length)) {
    throw new ShapeError(
      op,
      `${what} (shape [${v.shape}], strides [${v.strides}], offset ${v.offset}) reaches element ${last} of a storage of ${v.storage.length}`,
    );
  }
  return out;
}

/**
 * Run one elementwise kernel. With `dst` the result is written into that strided window
 * of an existing storage (in place); otherwise into a fresh contiguous storage.
 */
export function runElementwise(ctx: GpuContext, spec: ElementwiseSpec, dst?: View): GpuStorage {
  const { name, inputs, outShape } = spec;
  if (outShape.length > MAX_RANK) {
    throw new ShapeError(name, `rank ${outShape.length} > ${MAX_RANK}`);
  }
  const allStrides = inputs.map((o, k) => alignedStrides(o.view, outShape, name, `input ${k}`));
  allStrides.push(
    dst ? alignedStrides(dst, outShape, name, "destination") : contiguousStrides(outShape),
  );
  const n = numel(outShape);
  const out = dst ? (dst.storage as GpuStorage) : ctx.alloc(spec.outDtype, n, false, name);
  if (n === 0) return out;

  const co = coalesce(outShape, allStrides);
  const rank = co.shape.length;
  const dense = contiguousStrides(co.shape);
  const flat = co.strides.map((s) => s.every((v, d) => v === dense[d]));
  const outDtype = dst ? dst.storage.dtype : spec.outDtype;

  const wg = ctx.wg1d;
  const fields: ParamField[] = [u32("n"), u32s("shape", Math.max(rank, 1))];
  const values: ParamValues = { n, shape: co.shape };
  const names = [...inputs.map((_, k) => `in${k}`), "out"];
  const offsets = [...inputs.map((o) => o.view.offset), dst ? dst.offset : 0];
  names.forEach((nm, k) => {
    fields.push(u32(`off_${nm}`));
    values[`off_${nm}`] = offsets[k];
    if (!flat[k]) {
      fields.push(u32s(`st_${nm}`, rank));
      values[`st_${nm}`] = co.strides[k];
    }
  });
  if (spec.extraParams) fields.push(...spec.extraParams);
  Object.assign(values, spec.extraValues ?? {});

  // Multi-index of i in the coalesced shape, innermost axis first.
  const lines: string[] = [];
  lines.push(`  let i = ${threadIndex(wg)};`);
  lines.push(`  if (i >= P.n) { return; }`);
  if (flat.some((f) => !f)) {
    lines.push(`  var rem = i;`);
    for (let d = rank - 1; d >= 0; d--) {
      const ext = `P.shape[${d >> 2}][${d & 3}]`;
      lines.push(d > 0 ? `  let c${d} = rem % ${ext}; rem = rem / ${ext};` : `  let c${d} = rem;`);
    }
  }
  names.forEach((nm, k) => {
    if (flat[k]) lines.push(`  let idx_${nm} = P.off_${nm} + i;`);
    else {
      const terms = Array.from(
        { length: rank },
        (_, d) => `c${d} * P.st_${nm}[${d >> 2}][${d & 3}]`,
      );
      lines.push(`  let idx_${nm} = P.off_${nm} + ${terms.join(" + ")};`);
    }
  });
  inputs.forEach((o, k) => lines.push(`  let v${k} = ${o.as}(in${k}[idx_in${k}]);`));
  // f32 -> i32 stores wrap like a typed-array store (ToInt32), not saturate.
  const store = outDtype === "i32" && spec.exprType === "f32"
    ? `to_i32(${spec.expr})`
    : `${outDtype}(${spec.expr})`;
  lines.push(`  out[idx_out] = ${store};`);

  const def: KernelDef = {
    name,
    params: layout(...fields),
    bindings: [
      ...inputs.map((o, k) => ({
        name: `in${k}`,
        element: o.view.storage.dtype,
        access: "read" as const,
      })),
      { name: "out", element: outDtype, access: "read_write" as const },
    ],
    workgroupSize: [wg],
    helpers: `${store.startsWith("to_i32") ? TO_I32_WGSL : ""}\n${spec.helpers ?? ""}`,
    body: lines.join("\n"),
  };
  const storages = [...inputs.map((o) => o.view.storage as GpuStorage), out];
  ctx.dispatch(def, values, storages, ctx.grid1d(n, name));
  return out;
}

/**
 * ECMAScript ToInt32 of an f32: truncate, wrap modulo 2^32, NaN and infinities to 0.
 * Every f32 of magnitude >= 2^31 is an integer, so the wrap below is exact in f32.
 */
const TO_I32_WGSL = `
fn to_i32(x: f32) -> i32 {
  if (!(abs(x) < 3.0e38)) { return 0; }
  let t = trunc(x);
  if (abs(t) < 2147483648.0) { return i32(t); }
  var r = t - floor(t / 4294967296.0) * 4294967296.0;
  if (r >= 2147483648.0) { r = r - 4294967296.0; }
  return i32(r);
}`;

/** A whole storage seen as a contiguous 1-D view. */
export function flatView(s: GpuStorage): View {
  return { storage: s, shape: [s.length], strides: [1], offset: 0 };
}
