/**
 * Walking strided views: broadcast alignment, axis coalescing, and a row iterator.
 *
 * Kernels over several views (binary, where, copy) first merge every pair of adjacent
 * axes that is contiguous in all operands, so a fully contiguous or scalar-broadcast
 * operation becomes one long row and a bias-style broadcast becomes rows of the
 * trailing size. The kernel then runs one tight loop per row.
 */

import { ShapeError, type View } from "../../backend.ts";

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Strides of `view` read as an array of `shape`: axes are right-aligned, and missing or
 * size-1 axes broadcast with stride 0.
 */
export function broadcastStrides(
  op: string,
  name: string,
  view: View,
  shape: readonly number[],
): number[] {
  const vs = view.shape;
  if (vs.length !== view.strides.length) {
    throw new ShapeError(op, `${name} has shape [${vs}] but strides [${view.strides}]`);
  }
  if (vs.length > shape.length) {
    throw new ShapeError(op, `${name} shape [${vs}] has more axes than the output [${shape}]`);
  }
  const lead = shape.length - vs.length;
  const out = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < vs.length; i++) {
    const d = vs[i];
    if (d === shape[lead + i]) out[lead + i] = d === 1 ? 0 : view.strides[i];
    else if (d !== 1) {
      throw new ShapeError(op, `${name} shape [${vs}] does not broadcast to [${shape}]`);
    }
  }
  return out;
}

/** Checks that every element a view can address lies inside its storage. */
export function checkViewBounds(op: string, name: string, view: View, shape: readonly number[]) {
  if (numel(shape) === 0) return;
  let lo = view.offset;
  let hi = view.offset;
  for (let i = 0; i < view.shape.length; i++) {
    const span = (view.shape[i] - 1) * view.strides[i];
    if (span < 0) lo += span;
    else hi += span;
  }
  if (lo < 0 || hi >= view.storage.length) {
    throw new ShapeError(
      op,
      `${name} view (shape [${view.shape}], strides [${view.strides}], offset ${view.offset}) ` +
        `reaches elements ${lo}..${hi} of a storage with ${view.storage.length}`,
    );
  }
}

/** An iteration space after coalescing; the last axis is the row walked by the kernels. */
export interface Layout {
  shape: number[];
  /** strides[k] are operand k's strides, one per axis of `shape`. */
  strides: number[][];
}

/** Drops size-1 axes and merges adjacent axes that are contiguous in every operand. */
export function coalesce(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): Layout {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1) continue;
    const last = outShape.length - 1;
    // Axis i merges into the previous kept axis when, for every operand, stepping the
    // previous axis once equals stepping axis i through its whole extent.
    let merge = last >= 0;
    for (let k = 0; merge && k < strides.length; k++) {
      if (outStrides[k][last] !== strides[k][i] * shape[i]) merge = false;
    }
    if (merge) {
      outShape[last] *= shape[i];
      for (let k = 0; k < strides.length; k++) outStrides[k][last] = strides[k][i];
    } else {
      outShape.push(shape[i]);
      for (let k = 0; k < strides.length; k++) outStrides[k].push(strides[k][i]);
    }
  }
  if (outShape.length === 0) {
    outShape.push(1);
    for (const s of outStrides) s.push(0);
  }
  return { shape: outShape, strides: outStrides };
}

/**
 * When the innermost axis is short (a trailing broadcast of 2 or 3), walks the longest
 * axis innermost instead, so each kernel call still gets a long row.
 */
export function longRowLast(layout: Layout): Layout {
  const { shape, strides } = layout;
  const last = shape.length - 1;
  if (shape[last] >= 16) return layout;
  let longest = last;
  for (let i = 0; i < last; i++) if (shape[i] > shape[longest]) longest = i;
  if (shape[longest] < 4 * shape[last]) return layout;
  const order = shape.map((_, i) => i).filter((i) => i !== longest).concat(longest);
  return {
    shape: order.map((i) => shape[i]),
    strides: strides.map((st) => order.map((i) => st[i])),
  };
}

/**
 * Calls `visit(offsets)` once per innermost row of `layout`; `offsets[k]` is operand k's
 * element offset at the row start (the array is reused between calls).
 */
export function forEachRow(
  layout: Layout,
  bases: readonly number[],
  visit: (offsets: number[]) => void,
) {
  const { shape, strides } = layout;
  if (numel(shape) === 0) return;
  const outer = shape.length - 1;
  const ops = bases.length;
  const offsets = bases.slice();
  if (outer === 0) {
    visit(offsets);
    return;
  }
  const counter = new Array<number>(outer).fill(0);
  while (true) {
    visit(offsets);
    // Odometer step over the outer axes, innermost outer axis fastest.
    let axis = outer - 1;
    while (axis >= 0) {
      counter[axis]++;
      for (let k = 0; k < ops; k++) offsets[k] += strides[k][axis];
      if (counter[axis] < shape[axis]) break;
      for (let k = 0; k < ops; k++) offsets[k] -= strides[k][axis] * shape[axis];
      counter[axis] = 0;
      axis--;
    }
    if (axis < 0) return;
  }
}

export { contiguousStrides } from "../../shape.ts";
