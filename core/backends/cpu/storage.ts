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

/**
 * Large float32 outputs are recycled. A fresh 32 MiB Float32Array costs its first writer
 * 8192 page faults (the kernel zeroes each page on first touch): measured about 150k
 * faults, 250 ms of system time, per VQGAN decode at 256x256, where PyTorch's allocator
 * hands back memory it already has. Kernels that allocate their output with `outputF32`
 * get, for lengths from 1 MiB, an array a released storage gave back, if one of that
 * length is waiting. Only arrays that came from here and were never handed out of the
 * backend (`readSync` returns the storage's own array, so it marks it) are taken back,
 * so no caller can still hold one. At most POOL_BYTES wait; the rest go to the GC.
 */
const POOL_MIN = 1 << 18;
const POOL_BYTES = 512 << 20;
const waiting = new Map<number, Float32Array[]>();
let waitingBytes = 0;
const recyclable = new WeakSet<Float32Array>();

/**
 * A Float32Array of `length` for a kernel's output: zero-filled, or with `zeroed` false
 * holding stale values (for kernels that write every element).
 */
export function outputF32(length: number, zeroed = true): Float32Array {
  if (length < POOL_MIN) return new Float32Array(length);
  let array = waiting.get(length)?.pop();
  if (array) {
    waitingBytes -= array.byteLength;
    if (zeroed) array.fill(0);
  } else {
    array = new Float32Array(length);
  }
  recyclable.add(array);
  return array;
}

/** Takes back the array of a released storage if `outputF32` made it and nobody else has it. */
export function recycle(data: HostArray): void {
  if (!(data instanceof Float32Array) || !recyclable.delete(data)) return;
  if (waitingBytes + data.byteLength > POOL_BYTES) return;
  const list = waiting.get(data.length);
  if (list) list.push(data);
  else waiting.set(data.length, [data]);
  waitingBytes += data.byteLength;
}

/** The array leaves the backend (a read): it is never recycled. */
export function handOut(data: HostArray): HostArray {
  if (data instanceof Float32Array) recyclable.delete(data);
  return data;
}

/** Drops every waiting array (for memory-tight callers and tests). */
export function clearOutputPool(): void {
  waiting.clear();
  waitingBytes = 0;
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
