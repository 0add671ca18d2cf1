/**
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, then the raw
 * little-endian tensor bytes (offsets are relative to the end of the header).
 *
 * The reader validates every entry against the file size; the writer pads the header with spaces
 * to a multiple of 8 so tensor data stays aligned, as the reference implementation does.
 */

import { type ByteSource, openSource } from "./byte_source.ts";
import { formatError } from "./errors.ts";
import {
  type HostTensor,
  hostTensorFromBytes,
  numelOf,
  SOURCE_DTYPES,
  type SourceDtype,
  type StateDict,
} from "./host_tensor.ts";

const DTYPE_NAMES: Record<string, SourceDtype> = {
  F64: "f64",
  F32: "f32",
  F16: "f16",
  BF16: "bf16",
  I64: "i64",
  I32: "i32",
  I16: "i16",
  I8: "i8",
  U64: "u64",
  U32: "u32",
  U16: "u16",
  U8: "u8",
  BOOL: "bool",
};

/** Headers larger than this are refused as corrupt rather than parsed. */
const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsContents {
  tensors: StateDict;
  metadata: Record<string, string>;
}

export function looksLikeSafetensors(head: Uint8Array, fileSize: number): boolean {
  if (head.length < 9) return false;
  const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  return n > 1n && n <= BigInt(fileSize - 8) && head[8] === 0x7b; // '{'
}

/** Reads and validates the header; entries keep file order. */
export function readSafetensorsHeader(
  src: ByteSource,
): { entries: Map<string, SafetensorsEntry>; metadata: Record<string, string>; dataStart: number } {
  const file = src.name;
  if (src.size < 8) {
    throw formatError(file, `truncated safetensors: ${src.size} bytes, no header length`);
  }
  const lenBytes = src.read(0, 8, "safetensors header length");
  const n = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(src.size - 8)) {
    throw formatError(file, `safetensors header length ${n} beyond file size ${src.size}`);
  }
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw formatError(file, `safetensors header length ${n} is implausibly large`);
  }
  const headerLen = Number(n);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(src.read(8, headerLen, "safetensors header")));
  } catch (e) {
    throw formatError(file, `safetensors header is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw formatError(file, "safetensors header is not a JSON object");
  }
  const dataStart = 8 + headerLen;
  const dataSize = src.size - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [key, raw] of Object.entries(header as Record<string, unknown>)) {
    if (key === "__metadata__") {
      if (
        typeof raw !== "object" || raw === null || Array.isArray(raw) ||
        Object.values(raw).some((v) => typeof v !== "string")
      ) {
        throw formatError(file, "safetensors __metadata__ is not a map of strings");
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw formatError(
        file,
        `safetensors entry '${key}' is ${raw === null ? "null" : typeof raw}, not an object`,
      );
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e.dtype !== "string" || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) {
      throw formatError(file, `safetensors entry '${key}' lacks dtype, shape or data_offsets`);
    }
    const dtype = DTYPE_NAMES[e.dtype];
    if (!dtype) {
      throw formatError(file, `safetensors entry '${key}' has unknown dtype '${e.dtype}'`);
    }
    const shape = e.shape.map(Number);
    if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw formatError(
        file,
        `safetensors entry '${key}' has invalid shape ${JSON.stringify(e.shape)}`,
      );
    }
    const [begin, end] = e.data_offsets.length === 2 ? e.data_offsets.map(Number) : [NaN, NaN];
    const need = numelOf(shape) * SOURCE_DTYPES[dtype].bytes;
    if (!(Number.isSafeInteger(begin) && Number.isSafeInteger(end) && begin >= 0 && end >= begin)) {
      throw formatError(
        file,
        `safetensors entry '${key}' has invalid data_offsets ${JSON.stringify(e.data_offsets)}`,
      );
    }
    if (end - begin !== need) {
      throw formatError(
        file,
        `safetensors entry '${key}': ${e.dtype} [${shape}] needs ${need} bytes, data_offsets span ${
          end - begin
        }`,
      );
    }
    if (end > dataSize) {
      throw formatError(
        file,
        `truncated safetensors: entry '${key}' ends at data byte ${end} but only ${dataSize} data bytes exist`,
      );
    }
    entries.set(key, { dtype, shape, begin, end });
  }
  // Two tensors sharing bytes would alias each other's data; the reference reader refuses
  // overlaps too. Sorted by begin, each entry must start at or after the previous one's end.
  const spans = [...entries].filter(([, e]) => e.end > e.begin).sort((a, b) =>
    a[1].begin - b[1].begin
  );
  for (let i = 1; i < spans.length; i++) {
    const [prevKey, prev] = spans[i - 1], [key, e] = spans[i];
    if (e.begin < prev.end) {
      throw formatError(
        file,
        `safetensors entries '${prevKey}' [${prev.begin}, ${prev.end}) and '${key}' ` +
          `[${e.begin}, ${e.end}) overlap`,
      );
    }
  }
  return { entries, metadata, dataStart };
}

/** Reads every tensor of a .safetensors file (path or bytes). */
export function readSafetensors(
  input: string | Uint8Array,
  opts: { name?: string } = {},
): Promise<SafetensorsContents> {
  const src = openSource(input, opts.name);
  try {
    const { entries, metadata, dataStart } = readSafetensorsHeader(src);
    const tensors: StateDict = new Map();
    for (const [key, e] of entries) {
      const bytes = src.read(dataStart + e.begin, e.end - e.begin, `tensor '${key}'`);
      tensors.set(
        key,
        hostTensorFromBytes(bytes, e.dtype as SourceDtype, e.shape, {
          file: src.name,
          key,
          mayAlias: src.fresh,
        }),
      );
    }
    return Promise.resolve({ tensors, metadata });
  } catch (e) {
    return Promise.reject(e);
  } finally {
    src.close();
  }
}

function tensorBytes(t: HostTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** The header bytes (length prefix + padded JSON) for these tensors, written as F32/I32. */
function encodeHeader(tensors: StateDict, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new TypeError(`safetensors metadata '${k}' must be a string`);
      }
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [key, t] of tensors) {
    if (key === "__metadata__") {
      throw new TypeError("safetensors: '__metadata__' cannot be a tensor name");
    }
    const n = numelOf(t.shape);
    if (t.data.length !== n) {
      throw new RangeError(
        `safetensors: '${key}' has shape [${t.shape}] but ${t.data.length} elements`,
      );
    }
    const size = t.data.byteLength;
    header[key] = {
      dtype: t.dtype === "f32" ? "F32" : "I32",
      shape: t.shape,
      data_offsets: [offset, offset + size],
    };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((new TextEncoder().encode(json).length) % 8)) % 8);
  const jsonBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + jsonBytes.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  out.set(jsonBytes, 8);
  return out;
}

/** The whole file in memory. */
export function encodeSafetensors(
  tensors: StateDict,
  metadata?: Record<string, string>,
): Uint8Array {
  const header = encodeHeader(tensors, metadata);
  let total = header.length;
  for (const t of tensors.values()) total += t.data.byteLength;
  const out = new Uint8Array(total);
  out.set(header, 0);
  let p = header.length;
  for (const t of tensors.values()) {
    out.set(tensorBytes(t), p);
    p += t.data.byteLength;
  }
  return out;
}

/** Streams the file to `path` without building it in memory; `sync` flushes it to disk. */
export async function writeSafetensors(
  path: string,
  tensors: StateDict,
  metadata?: Record<string, string>,
  opts: { sync?: boolean } = {},
): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    await writeAll(f, encodeHeader(tensors, metadata));
    for (const t of tensors.values()) await writeAll(f, tensorBytes(t));
    if (opts.sync) await f.sync();
  } finally {
    f.close();
  }
}

async function writeAll(f: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let p = 0;
  while (p < bytes.length) p += await f.write(bytes.subarray(p));
}
