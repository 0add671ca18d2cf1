/** Small helpers shared by the op files: making outputs, contiguity, broadcasting. */

import type { Backend, DType, Storage } from "../backend.ts";
import { ShapeError } from "../backend.ts";
import { contiguousStrides, shapeStr, sizeOf, Tensor } from "../tensor.ts";

export { ShapeError, shapeStr, sizeOf };

/** Wrap a kernel's fresh storage as a tensor. */
export function wrap(storage: Storage, shape: readonly number[]): Tensor {
  return Tensor.fromStorage(storage, shape);
}

export function isDense(t: Tensor): boolean {
  return t.isContiguous() && t.offset === 0 && t.shared.storage.length === t.size;
}

/** A contiguous version of t: t itself when already dense, else a copy. */
export function dense(t: Tensor): Tensor {
  if (isDense(t)) return t;
  return wrap(t.backend.copy(t.view()), t.shape);
}

/** Run fn on dense versions of the inputs, disposing any temporary copies afterwards. */
export function withDense<T>(ts: Tensor[], fn: (...d: Tensor[]) => T): T {
  const ds = ts.map(dense);
  try {
    return fn(...ds);
  } finally {
    ds.forEach((d, i) => {
      if (d !== ts[i]) d.dispose();
    });
  }
}

export function normAxis(axis: number, ndim: number, op: string): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim || !Number.isInteger(a)) {
    throw new ShapeError(op, `axis ${axis} is out of range for a tensor with ${ndim} dims`);
  }
  return a;
}

export function sameBackend(op: string, ...ts: Tensor[]): Backend {
  const b = ts[0].backend;
  for (const t of ts) {
    if (t.backend !== b) {
      throw new Error(
        `${op}: tensors live on different backends (${b.name} and ${t.backend.name}); move one with .to()`,
      );
    }
  }
  return b;
}

export function expectDtype(op: string, t: Tensor, dtype: DType, what = "input"): void {
  if (t.dtype !== dtype) {
    throw new ShapeError(op, `${what} must be ${dtype}, got ${t.dtype} ${shapeStr(t.shape)}`);
  }
}

export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(
        op,
        `shapes ${shapeStr(a)} and ${shapeStr(b)} cannot be broadcast together`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** A view of t broadcast to `shape` (stride 0 along broadcast axes). */
export function broadcastView(t: Tensor, shape: readonly number[]) {
  const n = shape.length;
  const strides = new Array<number>(n).fill(0);
  const lead = n - t.ndim;
  for (let i = 0; i < t.ndim; i++) {
    strides[lead + i] = t.shape[i] === 1 && shape[lead + i] !== 1 ? 0 : t.strides[i];
  }
  return { storage: t.shared.storage, shape, strides, offset: t.offset };
}

export { contiguousStrides };
