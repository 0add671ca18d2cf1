/**
 * Plain host-side tensors, independent of any tensor runtime.
 *
 * Every reader in core/io produces `HostTensor`s: float data widened to f32, integer and bool
 * data widened (or narrowed, with a range check) to i32. `sourceDtype` keeps what the file held.
 * This file also holds the dtype conversions and the strided gather that rebuilds torch views.
 */

export type HostDtype = "f32" | "i32";

/** Element types the readers understand, named as in numpy/safetensors shorthand. */
export type SourceDtype =
  | "f64"
  | "f32"
  | "f16"
  | "bf16"
  | "i64"
  | "i32"
  | "i16"
  | "i8"
  | "u64"
  | "u32"
  | "u16"
  | "u8"
  | "bool";

export interface HostTensor {
  dtype: HostDtype;
  shape: number[];
  data: Float32Array | Int32Array;
  sourceDtype: string;
}

export type StateDict = Map<string, HostTensor>;

export const SOURCE_DTYPES: Readonly<Record<SourceDtype, { bytes: number; host: HostDtype }>> = {
  f64: { bytes: 8, host: "f32" },
  f32: { bytes: 4, host: "f32" },
  f16: { bytes: 2, host: "f32" },
  bf16: { bytes: 2, host: "f32" },
  i64: { bytes: 8, host: "i32" },
  i32: { bytes: 4, host: "i32" },
  i16: { bytes: 2, host: "i32" },
  i8: { bytes: 1, host: "i32" },
  u64: { bytes: 8, host: "i32" },
  u32: { bytes: 4, host: "i32" },
  u16: { bytes: 2, host: "i32" },
  u8: { bytes: 1, host: "i32" },
  bool: { bytes: 1, host: "i32" },
};

import { formatError } from "./errors.ts";

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("core/io assumes a little-endian host");
}

export function isSourceDtype(s: string): s is SourceDtype {
  return Object.hasOwn(SOURCE_DTYPES, s);
}

import { contiguousStrides, sizeOf as numelOf } from "../shape.ts";
export { contiguousStrides, numelOf };

export function isHostTensor(x: unknown): x is HostTensor {
  if (typeof x !== "object" || x === null) return false;
  const t = x as Partial<HostTensor>;
  return (t.dtype === "f32" && t.data instanceof Float32Array) ||
    (t.dtype === "i32" && t.data instanceof Int32Array);
}

/** Builds a HostTensor, checking that the data length matches the shape. */
export function makeHostTensor(
  shape: number[],
  data: Float32Array | Int32Array,
  sourceDtype?: string,
): HostTensor {
  const n = numelOf(shape);
  if (data.length !== n) {
    throw new Error(
      `makeHostTensor: shape [${shape}] needs ${n} elements, data has ${data.length}`,
    );
  }
  const dtype: HostDtype = data instanceof Float32Array ? "f32" : "i32";
  return { dtype, shape, data, sourceDtype: sourceDtype ?? dtype };
}

/** Flat host values decoded from raw bytes, with a record of integers that did not fit i32. */
export interface DecodedValues {
  data: Float32Array | Int32Array;
  /** 1 where the source integer was outside the int32 range (data holds garbage there). */
  outOfRange: Uint8Array | null;
  /** The first such source value, for the error message. */
  firstBadValue: bigint | null;
}

let f16Table: Float32Array | null = null;

/** All 65536 half-precision values, so decoding is one lookup per element. */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * frac * 2 ** -24;
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity;
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  f16Table = t;
  return t;
}

/** Reverses the byte order of each `size`-byte element (for big-endian files), in a copy. */
export function swapBytes(bytes: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += size) {
    for (let j = 0; j < size; j++) out[i + j] = bytes[i + size - 1 - j];
  }
  return out;
}

/**
 * Decodes `count` little-endian elements of `src` from `bytes` into host values.
 * `bytes` must hold at least count * elementSize bytes (callers check and name the file).
 * With `mayAlias`, an aligned f32/i32 input may be returned as a view instead of a copy.
 */
export function decodeValues(
  bytes: Uint8Array,
  src: SourceDtype,
  count: number,
  mayAlias = false,
): DecodedValues {
  const size = SOURCE_DTYPES[src].bytes;
  let raw = bytes.subarray(0, count * size);
  if (raw.byteOffset % size !== 0) raw = raw.slice(); // typed views need alignment
  const buf = raw.buffer;
  const off = raw.byteOffset;
  let data: Float32Array | Int32Array;
  let outOfRange: Uint8Array | null = null;
  let firstBadValue: bigint | null = null;
  const markBad = (i: number, v: bigint) => {
    outOfRange ??= new Uint8Array(count);
    outOfRange[i] = 1;
    firstBadValue ??= v;
  };
  switch (src) {
    case "f32": {
      const view = new Float32Array(buf, off, count);
      data = mayAlias ? view : view.slice();
      break;
    }
    case "i32": {
      const view = new Int32Array(buf, off, count);
      data = mayAlias ? view : view.slice();
      break;
    }
    case "f64":
      data = Float32Array.from(new Float64Array(buf, off, count));
      break;
    case "f16": {
      const table = halfTable();
      const h = new Uint16Array(buf, off, count);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[h[i]];
      data = out;
      break;
    }
    case "bf16": {
      const h = new Uint16Array(buf, off, count);
      const bits = new Uint32Array(count);
      for (let i = 0; i < count; i++) bits[i] = h[i] << 16;
      data = new Float32Array(bits.buffer);
      break;
    }
    case "i64":
    case "u64": {
      const words = new Int32Array(buf, off, count * 2);
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const lo = words[2 * i], hi = words[2 * i + 1];
        out[i] = lo;
        const fits = src === "i64" ? hi === (lo >> 31) : hi === 0 && lo >= 0;
        if (!fits) {
          const v = (BigInt(src === "i64" ? hi : hi >>> 0) << 32n) | BigInt(lo >>> 0);
          markBad(i, v);
        }
      }
      data = out;
      break;
    }
    case "u32": {
      const u = new Uint32Array(buf, off, count);
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        out[i] = u[i] | 0;
        if (u[i] > 0x7fffffff) markBad(i, BigInt(u[i]));
      }
      data = out;
      break;
    }
    case "i16":
      data = Int32Array.from(new Int16Array(buf, off, count));
      break;
    case "u16":
      data = Int32Array.from(new Uint16Array(buf, off, count));
      break;
    case "i8":
      data = Int32Array.from(new Int8Array(buf, off, count));
      break;
    case "u8":
      data = Int32Array.from(new Uint8Array(buf, off, count));
      break;
    case "bool": {
      const b = new Uint8Array(buf, off, count);
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = b[i] ? 1 : 0;
      data = out;
      break;
    }
  }
  return { data, outOfRange, firstBadValue };
}

/** Any typed array, read and written by index (f32/i32 host data, or bigint wide data). */
type Elements = { readonly length: number; [i: number]: number | bigint };

/**
 * Copies the strided view (shape, strides, offset) of `flat` into `out` (C order, numel
 * elements). Iterative (an odometer over the outer dimensions), so rank costs no stack.
 * `onElement` sees each source index, for the out-of-range scan.
 */
function gatherInto(
  out: Elements,
  flat: Elements,
  shape: readonly number[],
  strides: readonly number[],
  offset: number,
  onElement?: (source: number) => void,
): void {
  const n = out.length;
  if (n === 0) return;
  const rank = shape.length;
  if (rank === 0) {
    out[0] = flat[offset];
    onElement?.(offset);
    return;
  }
  const inner = shape[rank - 1], innerStride = strides[rank - 1];
  const counter = new Array<number>(rank - 1).fill(0);
  let base = offset;
  for (let o = 0; o < n; o += inner) {
    for (let j = 0, s = base; j < inner; j++, s += innerStride) {
      out[o + j] = flat[s];
      onElement?.(s);
    }
    // advance the odometer over the outer dimensions
    for (let d = rank - 2; d >= 0; d--) {
      counter[d]++;
      base += strides[d];
      if (counter[d] < shape[d]) break;
      base -= strides[d] * shape[d];
      counter[d] = 0;
    }
  }
}

/**
 * Copies the strided view (shape, strides, offset) of `flat` into a new C-order array.
 * Returns the first out-of-range source index touched by the view, or -1. Callers bound the
 * view's element count first (torch.ts): a stride-0 view of one element can name billions.
 */
export function gatherStrided(
  values: DecodedValues,
  shape: readonly number[],
  strides: readonly number[],
  offset: number,
): { data: Float32Array | Int32Array; badIndex: number } {
  const n = numelOf(shape);
  const flat = values.data;
  const out = flat instanceof Float32Array ? new Float32Array(n) : new Int32Array(n);
  const mask = values.outOfRange;
  let badIndex = -1;
  gatherInto(
    out,
    flat,
    shape,
    strides,
    offset,
    mask ? (s) => (mask[s] && badIndex < 0 && (badIndex = s)) : undefined,
  );
  return { data: out, badIndex };
}

/** The wide integer types a file can hold beyond what an i32 host tensor represents. */
export type WideDtype = "i64" | "u64" | "u32";

/**
 * An integer tensor whose values do not all fit int32 (numpy's RandomState state, uint32[624];
 * an int64 seed or step counter), kept exactly: bigint elements for i64/u64, uint32 for u32.
 * Loading never refuses it; `toHostTensor` does, when a caller needs an i32 tensor.
 */
export class WideIntTensor {
  constructor(
    readonly shape: number[],
    readonly sourceDtype: WideDtype,
    readonly data: BigInt64Array | BigUint64Array | Uint32Array,
    /** The file it came from, for the error when it is converted. */
    readonly file: string,
  ) {}

  /** Element `i` (C order) as a bigint. */
  at(i: number): bigint {
    return BigInt(this.data[i]);
  }

  /** The values as numbers; throws (naming the file) if one is beyond 2^53 and so inexact. */
  toNumbers(key = "tensor"): Float64Array {
    const out = new Float64Array(this.data.length);
    for (let i = 0; i < out.length; i++) {
      const v = this.data[i];
      if (typeof v === "bigint" && (v > MAX_SAFE || v < -MAX_SAFE)) {
        throw formatError(
          this.file,
          `'${key}': ${this.sourceDtype} value ${v} is not exact as a number`,
        );
      }
      out[i] = Number(v);
    }
    return out;
  }

  /** The i32 host tensor, or a named error when a value does not fit int32. */
  toHostTensor(key = "tensor"): HostTensor {
    const out = new Int32Array(this.data.length);
    for (let i = 0; i < out.length; i++) {
      const v = this.data[i];
      if (v > 0x7fffffff || v < -0x80000000) {
        throw formatError(
          this.file,
          `'${key}': ${this.sourceDtype} tensor [${this.shape}] holds ${v}, outside the int32 ` +
            `range that host tensors use`,
        );
      }
      out[i] = Number(v);
    }
    return { dtype: "i32", shape: this.shape, data: out, sourceDtype: this.sourceDtype };
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export function isWideIntTensor(x: unknown): x is WideIntTensor {
  return x instanceof WideIntTensor;
}

/**
 * The strided view (shape, strides, offset) of `count` raw little-endian `src` elements as a
 * WideIntTensor (C order). Used once decoding found values outside int32.
 */
export function wideFromBytes(
  bytes: Uint8Array,
  src: WideDtype,
  count: number,
  shape: number[],
  strides: readonly number[],
  offset: number,
  file: string,
): WideIntTensor {
  const size = SOURCE_DTYPES[src].bytes;
  const raw = bytes.slice(0, count * size); // a copy: aligned, and never a caller's buffer
  const flat = src === "i64"
    ? new BigInt64Array(raw.buffer, 0, count)
    : src === "u64"
    ? new BigUint64Array(raw.buffer, 0, count)
    : new Uint32Array(raw.buffer, 0, count);
  const n = numelOf(shape);
  const out = src === "i64"
    ? new BigInt64Array(n)
    : src === "u64"
    ? new BigUint64Array(n)
    : new Uint32Array(n);
  gatherInto(out, flat, shape, strides, offset);
  return new WideIntTensor(shape, src, out, file);
}

export function isWideDtype(src: string): src is WideDtype {
  return src === "i64" || src === "u64" || src === "u32";
}

/** Largest flat index a view touches (offset when empty or 0-d). */
export function viewExtent(shape: readonly number[], strides: readonly number[], offset: number) {
  if (numelOf(shape) === 0) return offset - 1;
  let last = offset;
  for (let i = 0; i < shape.length; i++) last += (shape[i] - 1) * strides[i];
  return last;
}

/** True when (shape, strides) is the plain C-order layout (size-1 dims may have any stride). */
export function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== expect) return false;
    expect *= shape[i];
  }
  return true;
}

/**
 * Decodes a C-order tensor stored as raw bytes. `file` and `key` name it in errors: a buffer
 * shorter than the shape needs, or an integer outside the int32 range.
 */
export function hostTensorFromBytes(
  bytes: Uint8Array,
  src: SourceDtype,
  shape: number[],
  where: { file: string; key: string; bigEndian?: boolean; mayAlias?: boolean },
): HostTensor {
  const n = numelOf(shape);
  const size = SOURCE_DTYPES[src].bytes;
  if (bytes.length < n * size) {
    throw formatError(
      where.file,
      `'${where.key}': ${src} [${shape}] needs ${n * size} bytes, only ${bytes.length} present`,
    );
  }
  const raw = where.bigEndian && size > 1 ? swapBytes(bytes.subarray(0, n * size), size) : bytes;
  const values = decodeValues(raw, src, n, where.mayAlias ?? false);
  if (values.outOfRange) throw int32RangeError(where.file, where.key, src, shape, values);
  return { dtype: SOURCE_DTYPES[src].host, shape, data: values.data, sourceDtype: src };
}

export function int32RangeError(
  file: string,
  key: string,
  src: string,
  shape: readonly number[],
  values: DecodedValues,
): Error {
  return formatError(
    file,
    `'${key}': ${src} tensor [${shape}] holds ${values.firstBadValue}, outside the int32 range ` +
      `that host tensors use`,
  );
}
