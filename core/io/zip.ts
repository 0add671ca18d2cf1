/**
 * A small zip reader and writer: what torch.save archives and numpy .npz files need.
 *
 * Reading goes through the central directory (so entries are found without scanning), supports
 * zip64 sizes/offsets, stored and deflated entries, and verifies each entry's CRC-32.
 * Writing produces stored (uncompressed) entries only, which is what np.savez does.
 */

import { crc32, inflateRawSync } from "node:zlib";
import type { ByteSource } from "./byte_source.ts";
import { formatError } from "./errors.ts";

export interface ZipEntry {
  name: string;
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;
const SIG_END64 = 0x06064b50;
const SIG_END64_LOCATOR = 0x07064b50;

export function looksLikeZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b &&
    ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6));
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function u64(dv: DataView, at: number, file: string, what: string): number {
  if (at + 8 > dv.byteLength) throw formatError(file, `corrupt zip: ${what} runs past its record`);
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw formatError(file, `corrupt zip: ${what} ${v}`);
  return Number(v);
}

/**
 * Deflate cannot expand data more than 1032:1 (a 258-byte match per 2 bits, plus block
 * headers), so a declared size beyond this for its compressed size is a lie, found before
 * anything is inflated.
 */
const MAX_DEFLATE_RATIO = 1032;

/** Physical memory, the most an entry could ever inflate to; Infinity when not permitted. */
function memoryCap(): number {
  try {
    return Deno.systemMemoryInfo().total;
  } catch {
    return Infinity;
  }
}

export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();

  constructor(readonly source: ByteSource) {
    const file = source.name;
    const tailLen = Math.min(source.size, 22 + 0xffff);
    if (source.size < 22) throw formatError(file, `not a zip archive (only ${source.size} bytes)`);
    const tail = source.read(source.size - tailLen, tailLen, "zip end record");
    const tv = view(tail);
    let endAt = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tv.getUint32(i, true) === SIG_END) {
        endAt = i;
        break;
      }
    }
    if (endAt < 0) {
      throw formatError(file, "truncated or not a zip archive: no end-of-central-directory record");
    }
    let count = tv.getUint16(endAt + 10, true);
    let cdSize = tv.getUint32(endAt + 12, true);
    let cdOffset = tv.getUint32(endAt + 16, true);
    const endAbs = source.size - tailLen + endAt;
    // zip64: a locator sits just before the classic end record
    if (endAbs >= 20) {
      const loc = view(source.read(endAbs - 20, 20, "zip64 locator"));
      if (loc.getUint32(0, true) === SIG_END64_LOCATOR) {
        const end64At = u64(loc, 8, file, "zip64 end record offset");
        const e64 = view(source.read(end64At, 56, "zip64 end record"));
        if (e64.getUint32(0, true) !== SIG_END64) {
          throw formatError(file, `corrupt zip: bad zip64 end record at ${end64At}`);
        }
        count = u64(e64, 32, file, "zip64 entry count");
        cdSize = u64(e64, 40, file, "zip64 central directory size");
        cdOffset = u64(e64, 48, file, "zip64 central directory offset");
      }
    }
    if (cdOffset + cdSize > source.size) {
      throw formatError(
        file,
        `truncated zip: central directory [${cdOffset}, ${cdOffset + cdSize}) beyond file size ` +
          `${source.size}`,
      );
    }
    const cd = source.read(cdOffset, cdSize, "zip central directory");
    const dv = view(cd);
    const decoder = new TextDecoder();
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || dv.getUint32(p, true) !== SIG_CENTRAL) {
        throw formatError(file, `corrupt zip: central directory entry ${i} is malformed`);
      }
      const method = dv.getUint16(p + 10, true);
      const crc = dv.getUint32(p + 16, true);
      let compressedSize = dv.getUint32(p + 20, true);
      let size = dv.getUint32(p + 24, true);
      const nameLen = dv.getUint16(p + 28, true);
      const extraLen = dv.getUint16(p + 30, true);
      const commentLen = dv.getUint16(p + 32, true);
      let localHeaderOffset = dv.getUint32(p + 42, true);
      if (p + 46 + nameLen + extraLen + commentLen > cd.length) {
        throw formatError(file, `corrupt zip: central directory entry ${i} runs past its end`);
      }
      const name = decoder.decode(cd.subarray(p + 46, p + 46 + nameLen));
      // zip64 extra field: the 0xFFFFFFFF fields follow in this order
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = dv.getUint16(e, true), len = dv.getUint16(e + 2, true);
        if (id === 0x0001) {
          const field = new DataView(
            cd.buffer,
            cd.byteOffset + e + 4,
            Math.min(len, extraEnd - e - 4),
          );
          const what = `zip64 field of '${name}'`;
          let q = 0;
          if (size === 0xffffffff) (size = u64(field, q, file, what), q += 8);
          if (compressedSize === 0xffffffff) (compressedSize = u64(field, q, file, what), q += 8);
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = u64(field, q, file, what);
        }
        e += 4 + len;
      }
      this.entries.set(name, { name, method, crc32: crc, compressedSize, size, localHeaderOffset });
      p = extraEnd + commentLen;
    }
  }

  get names(): string[] {
    return [...this.entries.keys()];
  }

  /** Refuses a declared size that its compressed data or this machine could never back. */
  private checkDeclaredSize(entry: ZipEntry): void {
    const file = this.source.name;
    const most = entry.compressedSize * MAX_DEFLATE_RATIO + 1024;
    if (entry.method === 8 && entry.size > most) {
      throw formatError(
        file,
        `corrupt zip: '${entry.name}' declares ${entry.size} bytes, more than its ` +
          `${entry.compressedSize} compressed bytes can inflate to (at most ${most})`,
      );
    }
    const cap = memoryCap();
    if (entry.size > cap) {
      throw formatError(
        file,
        `zip entry '${entry.name}' declares ${entry.size} bytes, more than this machine's ` +
          `${cap} bytes of memory`,
      );
    }
  }

  /** The uncompressed bytes of entry `name`, CRC-checked. */
  read(name: string): Uint8Array {
    const file = this.source.name;
    const entry = this.entries.get(name);
    if (!entry) throw formatError(file, `zip entry '${name}' not found`);
    const local = view(this.source.read(entry.localHeaderOffset, 30, `local header of '${name}'`));
    if (local.getUint32(0, true) !== SIG_LOCAL) {
      throw formatError(file, `corrupt zip: bad local header for '${name}'`);
    }
    const dataAt = entry.localHeaderOffset + 30 + local.getUint16(26, true) +
      local.getUint16(28, true);
    if (entry.method === 0 && entry.compressedSize !== entry.size) {
      throw formatError(
        file,
        `corrupt zip: stored entry '${name}' declares ${entry.size} bytes but holds ${entry.compressedSize}`,
      );
    }
    this.checkDeclaredSize(entry);
    const stored = this.source.read(dataAt, entry.compressedSize, `zip entry '${name}'`);
    let data: Uint8Array;
    if (entry.method === 0) {
      data = stored;
    } else if (entry.method === 8) {
      // The declared size bounds the output, so a bomb stops at it instead of filling memory.
      try {
        data = new Uint8Array(inflateRawSync(stored, { maxOutputLength: Math.max(1, entry.size) }));
      } catch (e) {
        if ((e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
          throw formatError(
            file,
            `corrupt zip: '${name}' inflates past its declared size of ${entry.size} bytes`,
          );
        }
        throw formatError(file, `corrupt zip: cannot inflate '${name}': ${(e as Error).message}`);
      }
    } else {
      throw formatError(
        file,
        `zip entry '${name}' uses unsupported compression method ${entry.method}`,
      );
    }
    if (data.length !== entry.size) {
      throw formatError(
        file,
        `corrupt zip: '${name}' is ${data.length} bytes, expected ${entry.size}`,
      );
    }
    const got = crc32(data) >>> 0;
    if (got !== entry.crc32) {
      throw formatError(
        file,
        `CRC mismatch in zip entry '${name}': stored ${hex(entry.crc32)}, computed ${hex(got)}`,
      );
    }
    return data;
  }
}

function hex(v: number): string {
  return "0x" + v.toString(16).padStart(8, "0");
}

/** A zip archive of stored entries (no compression, no zip64: each entry and the total < 4 GiB). */
export function encodeZip(files: { name: string; data: Uint8Array }[]): Uint8Array {
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const { name, data } of files) {
    const nameBytes = encoder.encode(name);
    const crc = crc32(data) >>> 0;
    const local = new Uint8Array(30 + nameBytes.length);
    const lv = view(local);
    lv.setUint32(0, SIG_LOCAL, true);
    lv.setUint16(4, 20, true); // version needed
    lv.setUint16(8, 0, true); // stored
    lv.setUint32(14, crc, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, nameBytes.length, true);
    local.set(nameBytes, 30);
    const cen = new Uint8Array(46 + nameBytes.length);
    const cv = view(cen);
    cv.setUint32(0, SIG_CENTRAL, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, offset, true);
    cen.set(nameBytes, 46);
    parts.push(local, data);
    central.push(cen);
    offset += local.length + data.length;
  }
  if (offset > 0xffffffff) throw new RangeError("encodeZip: archive over 4 GiB needs zip64");
  const cdSize = central.reduce((s, c) => s + c.length, 0);
  const end = new Uint8Array(22);
  const ev = view(end);
  ev.setUint32(0, SIG_END, true);
  ev.setUint16(8, files.length, true);
  ev.setUint16(10, files.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const out = new Uint8Array(offset + cdSize + 22);
  let p = 0;
  for (const part of [...parts, ...central, end]) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}
