/**
 * numpy `.npy` and `.npz` files.
 *
 * .npy: "\x93NUMPY", major, minor, a header length (u16 for v1, u32 for v2/v3), then a Python
 * dict literal such as `{'descr': '<f4', 'fortran_order': False, 'shape': (16, 8), }` padded
 * with spaces to a 64-byte boundary and ended by "\n"; the raw array follows. Fortran-order
 * arrays are transposed to C order on load. .npz is a zip of `<name>.npy` entries.
 */

import { basename } from "node:path";
import { type ByteSource, openSource } from "./byte_source.ts";
import { formatError } from "./errors.ts";
import {
  type HostTensor,
  hostTensorFromBytes,
  numelOf,
  SOURCE_DTYPES,
  type StateDict,
} from "./host_tensor.ts";
import { numpyDescrToSource, transposeAll } from "./pickle.ts";
import { encodeZip, ZipReader } from "./zip.ts";

/** numpy's NPY_MAXDIMS (64 since numpy 2.0). */
const NPY_MAXDIMS = 64;

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export function looksLikeNpy(head: Uint8Array): boolean {
  return head.length >= 6 && MAGIC.every((b, i) => head[i] === b);
}

/** Parses one .npy image. `file` and `key` name it in errors. */
export function parseNpy(bytes: Uint8Array, file: string, key = "array"): HostTensor {
  if (!looksLikeNpy(bytes)) {
    const got = [...bytes.subarray(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    throw formatError(file, `'${key}': bad magic ${got}, expected \\x93NUMPY`);
  }
  if (bytes.length < 10) throw formatError(file, `'${key}': truncated npy header`);
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number, headerStart: number;
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw formatError(file, `'${key}': truncated npy header`);
    headerLen = dv.getUint32(8, true);
    headerStart = 12;
  } else {
    throw formatError(file, `'${key}': unsupported npy format version ${major}.${bytes[7]}`);
  }
  if (headerStart + headerLen > bytes.length) {
    throw formatError(
      file,
      `'${key}': npy header length ${headerLen} beyond file size ${bytes.length}`,
    );
  }
  const text = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(
    bytes.subarray(headerStart, headerStart + headerLen),
  );
  let header: unknown;
  try {
    header = parsePyLiteral(text);
  } catch (e) {
    throw formatError(
      file,
      `'${key}': cannot parse npy header ${JSON.stringify(text.trim().slice(0, 200))}: ${
        (e as Error).message
      }`,
    );
  }
  if (!(header instanceof Map)) throw formatError(file, `'${key}': npy header is not a dict`);
  const descr = header.get("descr");
  const fortran = header.get("fortran_order");
  const shapeRaw = header.get("shape");
  if (typeof descr !== "string") {
    throw formatError(
      file,
      `'${key}': unsupported npy dtype ${
        JSON.stringify(descr)
      } (structured arrays are not supported)`,
    );
  }
  const parsed = numpyDescrToSource(descr);
  if (!parsed) throw formatError(file, `'${key}': unsupported npy dtype '${descr}'`);
  if (
    !Array.isArray(shapeRaw) || shapeRaw.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)
  ) {
    throw formatError(file, `'${key}': invalid npy shape ${JSON.stringify(shapeRaw)}`);
  }
  const shape = shapeRaw as number[];
  if (shape.length > NPY_MAXDIMS) {
    throw formatError(
      file,
      `'${key}': npy shape has ${shape.length} dimensions, numpy allows ${NPY_MAXDIMS}`,
    );
  }
  const data = bytes.subarray(headerStart + headerLen);
  const need = numelOf(shape) * SOURCE_DTYPES[parsed.src].bytes;
  if (data.length < need) {
    throw formatError(
      file,
      `truncated npy '${key}': '${descr}' [${shape}] needs ${need} data bytes, only ${data.length} present`,
    );
  }
  const where = { file, key, bigEndian: parsed.bigEndian };
  if (fortran === true && shape.length > 1) {
    return transposeAll(hostTensorFromBytes(data, parsed.src, [...shape].reverse(), where));
  }
  return hostTensorFromBytes(data, parsed.src, shape, where);
}

/** A v1 .npy image ('<f4' or '<i4', C order); v2 when the header would not fit in 64 KiB. */
export function encodeNpy(t: HostTensor): Uint8Array {
  const descr = t.dtype === "f32" ? "<f4" : "<i4";
  const shape = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(", ")})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const major = dict.length + 12 > 0xffff ? 2 : 1;
  const prefix = major === 1 ? 10 : 12;
  dict += " ".repeat((64 - ((prefix + dict.length + 1) % 64)) % 64) + "\n";
  const header = new TextEncoder().encode(dict);
  const out = new Uint8Array(prefix + header.length + t.data.byteLength);
  out.set(MAGIC, 0);
  out[6] = major;
  const dv = new DataView(out.buffer);
  if (major === 1) dv.setUint16(8, header.length, true);
  else dv.setUint32(8, header.length, true);
  out.set(header, prefix);
  out.set(
    new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
    prefix + header.length,
  );
  return out;
}

function readAll(src: ByteSource): Uint8Array {
  return src.read(0, src.size, "whole file");
}

/** Reads a .npy file (path or bytes). */
export function readNpy(
  input: string | Uint8Array,
  opts: { name?: string } = {},
): Promise<HostTensor> {
  const src = openSource(input, opts.name);
  try {
    return Promise.resolve(parseNpy(readAll(src), src.name, npyKey(src.name)));
  } catch (e) {
    return Promise.reject(e);
  } finally {
    src.close();
  }
}

/** The key a lone .npy gets in a state dict: its file name without directory and extension. */
export function npyKey(path: string): string {
  return basename(path).replace(/\.npy$/, "");
}

export async function writeNpy(path: string, t: HostTensor): Promise<void> {
  await Deno.writeFile(path, encodeNpy(t));
}

/** Reads every array of a .npz (stored or deflated); keys drop the ".npy" suffix. */
export function readNpz(
  input: string | Uint8Array,
  opts: { name?: string } = {},
): Promise<StateDict> {
  const src = openSource(input, opts.name);
  try {
    return Promise.resolve(readNpzFrom(new ZipReader(src)));
  } catch (e) {
    return Promise.reject(e);
  } finally {
    src.close();
  }
}

export function readNpzFrom(zip: ZipReader): StateDict {
  const out: StateDict = new Map();
  for (const name of zip.names) {
    if (!name.endsWith(".npy")) continue;
    const key = name.slice(0, -4);
    out.set(key, parseNpy(zip.read(name), zip.source.name, key));
  }
  return out;
}

export function encodeNpz(arrays: StateDict): Uint8Array {
  return encodeZip([...arrays].map(([key, t]) => ({ name: `${key}.npy`, data: encodeNpy(t) })));
}

export async function writeNpz(path: string, arrays: StateDict): Promise<void> {
  await Deno.writeFile(path, encodeNpz(arrays));
}

/**
 * Parses the Python literal subset npy headers use: dicts, tuples, lists, quoted strings,
 * integers, True/False/None. Dicts become Maps, tuples and lists arrays.
 */
export function parsePyLiteral(text: string): unknown {
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const fail = (what: string): never => {
    throw new Error(`${what} at character ${i}`);
  };
  let depth = 0;
  const value = (): unknown => {
    ws();
    const c = text[i];
    // npy headers nest two levels; a hostile one could nest past the call stack
    if ((c === "{" || c === "(" || c === "[") && depth >= 32) fail("nested deeper than 32");
    if (c === "{" || c === "(" || c === "[") depth++;
    try {
      return container(c);
    } finally {
      if (c === "{" || c === "(" || c === "[") depth--;
    }
  };
  const container = (c: string): unknown => {
    if (c === "{") {
      i++;
      const m = new Map<unknown, unknown>();
      for (;;) {
        ws();
        if (text[i] === "}") return (i++, m);
        const k = value();
        ws();
        if (text[i++] !== ":") fail("expected ':'");
        m.set(k, value());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] !== "}") fail("expected ',' or '}'");
      }
    }
    if (c === "(" || c === "[") {
      const close = c === "(" ? ")" : "]";
      i++;
      const items: unknown[] = [];
      for (;;) {
        ws();
        if (text[i] === close) return (i++, items);
        items.push(value());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] !== close) fail(`expected ',' or '${close}'`);
      }
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) fail("unterminated string");
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    // sticky, so a long header is scanned once rather than re-sliced at every token
    const token = /True|False|None|-?\d+L?/y;
    token.lastIndex = i;
    const m = token.exec(text);
    if (!m) return fail("unexpected token");
    i += m[0].length;
    if (m[0] === "True") return true;
    if (m[0] === "False") return false;
    if (m[0] === "None") return null;
    return Number(m[0].replace("L", ""));
  };
  const v = value();
  ws();
  if (i !== text.length) fail("trailing characters");
  return v;
}
