/**
 * numpy values inside pickles: `numpy.dtype(descr)` (byte order arrives later via BUILD),
 * `numpy.core.multiarray.scalar(dtype, bytes)` and `_reconstruct(ndarray, (0,), b"b")` followed by
 * BUILD with (version, shape, dtype, fortran_order, raw bytes). Arrays become HostTensors.
 */

import { formatError } from "./errors.ts";
import {
  contiguousStrides,
  decodeValues,
  type HostTensor,
  hostTensorFromBytes,
  isSourceDtype,
  isWideDtype,
  numelOf,
  SOURCE_DTYPES,
  type SourceDtype,
  swapBytes,
  wideFromBytes,
  type WideIntTensor,
} from "./host_tensor.ts";
import { describe, narrow, toBytes } from "./pickle_values.ts";

/** A numpy dtype as pickled: descr like "f8" plus the byte order set later by BUILD. */
export class NumpyDtype {
  byteOrder = "=";
  constructor(readonly descr: string) {}
}

/** numpy arrays are rebuilt into HostTensors; BUILD fills this placeholder in place. */
const pendingNumpy = new WeakSet<object>();

/** The placeholder `_reconstruct` returns; BUILD fills it in place (memo entries point at it). */
export function startNumpyArray(): HostTensor {
  const t: HostTensor = { dtype: "f32", shape: [0], data: new Float32Array(0), sourceDtype: "?" };
  pendingNumpy.add(t);
  return t;
}

/**
 * Applies BUILD to a placeholder from startNumpyArray and returns the array: the placeholder
 * itself, filled, or a WideIntTensor that the caller must put in its place (integers beyond
 * int32). Null when `target` is not a placeholder.
 */
export function finishNumpyArray(
  target: object,
  state: unknown,
  file: string,
): HostTensor | WideIntTensor | null {
  if (!pendingNumpy.has(target)) return null;
  pendingNumpy.delete(target);
  return buildNumpyArray(target as HostTensor, state, file);
}

/** numpy descr ("f8", "<i4", "|b1") → our element type name. */
export function numpyDescrToSource(descr: string): { src: SourceDtype; bigEndian: boolean } | null {
  const m = /^([<>|=]?)([fiub])(\d+)$/.exec(descr);
  if (!m) return null;
  const [, order, kind, bytes] = m;
  const name = kind === "b" ? (bytes === "1" ? "bool" : "") : `${kind}${Number(bytes) * 8}`;
  if (!isSourceDtype(name)) return null;
  return { src: name, bigEndian: order === ">" };
}

function dtypeOf(
  d: unknown,
  file: string,
): { src: SourceDtype; bigEndian: boolean; descr: string } {
  if (!(d instanceof NumpyDtype)) throw formatError(file, `numpy value with dtype ${describe(d)}`);
  const parsed = numpyDescrToSource(d.descr);
  if (!parsed) throw formatError(file, `unsupported numpy dtype '${d.descr}'`);
  return { ...parsed, bigEndian: d.byteOrder === ">", descr: d.descr };
}

export function numpyScalar(args: unknown[], file: string): unknown {
  const { src, bigEndian } = dtypeOf(args[0], file);
  const raw = args[1];
  if (!(raw instanceof Uint8Array)) throw formatError(file, "numpy scalar without its bytes");
  if (raw.length < SOURCE_DTYPES[src].bytes) {
    throw formatError(file, `numpy ${src} scalar with only ${raw.length} bytes`);
  }
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const le = !bigEndian;
  switch (src) {
    case "f64":
      return dv.getFloat64(0, le);
    case "f32":
      return dv.getFloat32(0, le);
    case "bool":
      return raw[0] !== 0;
    case "i64":
      return narrow(dv.getBigInt64(0, le));
    case "u64":
      return narrow(dv.getBigUint64(0, le));
    case "i32":
      return dv.getInt32(0, le);
    case "u32":
      return dv.getUint32(0, le);
    case "i16":
      return dv.getInt16(0, le);
    case "u16":
      return dv.getUint16(0, le);
    case "i8":
      return dv.getInt8(0);
    case "u8":
      return dv.getUint8(0);
    default: {
      const t = hostTensorFromBytes(raw, src, [], { file, key: "numpy scalar", bigEndian });
      return t.data[0];
    }
  }
}

/** Fills a pending numpy array from its BUILD state (version, shape, dtype, fortran, data). */
function buildNumpyArray(t: HostTensor, state: unknown, file: string): HostTensor | WideIntTensor {
  if (!Array.isArray(state) || state.length < 5) {
    throw formatError(file, "malformed numpy array state");
  }
  const [, shape, dtype, fortran, raw] = state as [unknown, unknown, unknown, boolean, unknown];
  const { src, bigEndian, descr } = dtypeOf(dtype, file);
  let bytes: Uint8Array;
  if (raw instanceof Uint8Array) bytes = raw;
  else if (typeof raw === "string") bytes = toBytes([raw, "latin1"], file, "numpy array");
  else throw formatError(file, `numpy array of dtype '${descr}' without raw bytes (object array?)`);
  const dims = Array.isArray(shape) ? shape.map(Number) : [];
  if (!Array.isArray(shape) || dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw formatError(file, `numpy array with invalid shape ${describe(shape)}`);
  }
  // Integers beyond int32 (RandomState's uint32 state) are kept exactly, not refused here.
  if (isWideDtype(src)) {
    const n = numelOf(dims), size = SOURCE_DTYPES[src].bytes;
    if (bytes.length >= n * size) {
      const le = bigEndian ? swapBytes(bytes.subarray(0, n * size), size) : bytes;
      if (decodeValues(le, src, n).outOfRange) {
        // Fortran order is C order of the reversed shape: read it with reversed strides.
        const strides = fortran && dims.length > 1
          ? contiguousStrides([...dims].reverse()).reverse()
          : contiguousStrides(dims);
        return wideFromBytes(le, src, n, dims, strides, 0, file);
      }
    }
  }
  let built: HostTensor;
  if (fortran && dims.length > 1) {
    // Fortran order: read with the reversed shape, then transpose back to C order.
    const rev = hostTensorFromBytes(bytes, src, [...dims].reverse(), {
      file,
      key: "numpy array",
      bigEndian,
    });
    built = transposeAll(rev);
  } else {
    built = hostTensorFromBytes(bytes, src, dims, { file, key: "numpy array", bigEndian });
  }
  return Object.assign(t, built);
}

/** Reverses all axes of a C-order tensor (turns a Fortran-order read into C order). */
export function transposeAll(t: HostTensor): HostTensor {
  const shape = [...t.shape].reverse();
  const n = t.data.length;
  const out = t.data instanceof Float32Array ? new Float32Array(n) : new Int32Array(n);
  const rank = shape.length;
  // source strides (of the reversed shape), read in reversed axis order
  const srcStrides = new Array<number>(rank);
  let s = 1;
  for (let i = 0; i < rank; i++) {
    srcStrides[i] = s;
    s *= shape[i];
  }
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < n; o++) {
    let src = 0;
    for (let d = 0; d < rank; d++) src += idx[d] * srcStrides[d];
    out[o] = t.data[src];
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return { ...t, shape, data: out };
}
