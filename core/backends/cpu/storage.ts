/**
 * CPU storages: a typed array plus a liveness flag.
 *
 * `release` drops the array so the garbage collector can take it, and any later use
 * throws (rather than silently reading stale numbers), which is what the leak and
 * use-after-free tests of the front end rely on.
 */

import {
  type Backend,
  type DType,
  type HostArray,
  ShapeError,
  type Storage,
} from "../../backend.ts";

export class CpuStorage implements Storage {
  readonly backend: Backend;
  readonly dtype: DType;
  readonly length: number;
  #data: HostArray | null;

  constructor(backend: Backend, data: HostArray) {
    this.backend = backend;
    this.dtype = data instanceof Int32Array ? "i32" : "f32";
    this.length = data.length;
    this.#data = data;
  }

  get alive(): boolean {
    return this.#data !== null;
  }

  /** The elements; throws once the storage has been released. */
  get data(): HostArray {
    const d = this.#data;
    if (d === null) {
      throw new Error(`cpu: storage (${this.dtype}, ${this.length} elements) used after release`);
    }
    return d;
  }

  /** Marks the storage dead; returns false when it already was. */
  kill(): boolean {
    if (this.#data === null) return false;
    this.#data = null;
    return true;
  }
}

/** Allocates a zeroed typed array of the given dtype. */
export function newArray(dtype: DType, length: number): HostArray {
  if (!Number.isInteger(length) || length < 0) {
    throw new ShapeError("alloc", `length must be a non-negative integer, got ${length}`);
  }
  return dtype === "f32" ? new Float32Array(length) : new Int32Array(length);
}

/**
 * Checks that `s` is a live CPU storage of this backend (and of `dtype`, holding at
 * least `minLength` elements when given) and returns its array.
 */
export function arrayOf(
  backend: Backend,
  s: Storage,
  op: string,
  name: string,
  dtype?: DType,
  minLength?: number,
): HostArray {
  if (!(s instanceof CpuStorage)) {
    throw new ShapeError(op, `${name} is not a cpu storage (it belongs to ${s?.backend?.name})`);
  }
  if (s.backend !== backend) throw new ShapeError(op, `${name} belongs to another cpu backend`);
  if (!s.alive) {
    throw new ShapeError(op, `${name} (${s.dtype}, ${s.length} elements) was used after release`);
  }
  if (dtype !== undefined && s.dtype !== dtype) {
    throw new ShapeError(op, `${name} must be ${dtype}, got ${s.dtype}`);
  }
  if (minLength !== undefined && s.length < minLength) {
    throw new ShapeError(op, `${name} has ${s.length} elements, needs ${minLength}`);
  }
  return s.data;
}
