/** Making tensors from host data, constants and random streams. */

import type { Backend, DType, HostArray } from "../backend.ts";
import { defaultBackend } from "../device.ts";
import type { Rng } from "../random.ts";
import type { Tensor } from "../tensor.ts";
import { ShapeError, shapeStr, sizeOf, wrap } from "./util.ts";

/** Where and how a new tensor is made. */
export interface CreateOptions {
  /** Element type (default f32, except where an op says otherwise). */
  dtype?: DType;
  /** Device (default: the default backend). */
  backend?: Backend;
}

/** A tensor from host numbers; shape defaults to 1-D. */
export function tensor(
  data: ArrayLike<number>,
  shape?: readonly number[],
  opts: CreateOptions = {},
): Tensor {
  const s = shape ?? [data.length];
  if (sizeOf(s) !== data.length) {
    throw new ShapeError("tensor", `${data.length} values cannot fill shape ${shapeStr(s)}`);
  }
  const dtype = opts.dtype ?? (data instanceof Int32Array ? "i32" : "f32");
  const host: HostArray = dtype === "f32"
    ? (data instanceof Float32Array ? data : Float32Array.from(data))
    : (data instanceof Int32Array ? data : Int32Array.from(data));
  const b = opts.backend ?? defaultBackend();
  return wrap(b.fromHost(host), s);
}

/** A tensor of `shape` with every element `value`. */
export function fill(
  shape: readonly number[],
  value: number,
  backend?: Backend,
  dtype: DType = "f32",
): Tensor {
  return wrap((backend ?? defaultBackend()).fill(dtype, sizeOf(shape), value), shape);
}

/** A tensor of zeros. */
export const zeros = (shape: readonly number[], opts: CreateOptions = {}): Tensor =>
  fill(shape, 0, opts.backend, opts.dtype);
/** A tensor of ones. */
export const ones = (shape: readonly number[], opts: CreateOptions = {}): Tensor =>
  fill(shape, 1, opts.backend, opts.dtype);
/** A tensor with every element `value`. */
export const full = (shape: readonly number[], value: number, opts: CreateOptions = {}): Tensor =>
  fill(shape, value, opts.backend, opts.dtype);

/** `start, start + step, ...` (n values; i32 unless `dtype` says otherwise). */
export function arange(
  n: number,
  opts: CreateOptions & { start?: number; step?: number } = {},
): Tensor {
  const b = opts.backend ?? defaultBackend();
  return wrap(b.arange(opts.dtype ?? "i32", n, opts.start ?? 0, opts.step ?? 1), [n]);
}

/** Standard normal * std + mean, drawn from the generator's stream on the device. */
export function randn(
  shape: readonly number[],
  gen: Rng,
  std = 1,
  mean = 0,
  backend?: Backend,
): Tensor {
  const b = backend ?? defaultBackend();
  const n = sizeOf(shape);
  const s = b.normal(n, gen.seed, gen.take(n));
  if (std === 1 && mean === 0) return wrap(s, shape);
  const out = b.affine(s, std, mean);
  b.release(s);
  return wrap(out, shape);
}

/** Uniform in [lo, hi). */
export function rand(
  shape: readonly number[],
  gen: Rng,
  lo = 0,
  hi = 1,
  backend?: Backend,
): Tensor {
  const b = backend ?? defaultBackend();
  const n = sizeOf(shape);
  const s = b.uniform(n, gen.seed, gen.take(n));
  if (lo === 0 && hi === 1) return wrap(s, shape);
  const out = b.affine(s, hi - lo, lo);
  b.release(s);
  return wrap(out, shape);
}
