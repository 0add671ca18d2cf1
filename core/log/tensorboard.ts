/**
 * A TensorBoard event-file writer with no dependencies, so `tensorboard --logdir DIR`
 * shows scalars, images and histograms of a run.
 *
 * File: DIR/events.out.tfevents.<unix seconds>.<host>, a sequence of TFRecords:
 *   u64 length (LE) | u32 masked_crc32c(length bytes) | data | u32 masked_crc32c(data)
 * Each record is a serialized tensorflow.Event, encoded here by hand:
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5 }
 *   Summary { repeated Value value = 1 }
 *   Value   { string tag = 1; float simple_value = 2; Image image = 4; HistogramProto histo = 5 }
 *   Image   { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4 }
 *   HistogramProto { double min = 1, max = 2, num = 3, sum = 4, sum_squares = 5;
 *                    repeated double bucket_limit = 6 [packed]; repeated double bucket = 7 [packed] }
 * The first record is { wall_time, file_version: "brain.Event:2" }.
 */

import { encodePng } from "../image/png.ts";
import type { RgbImage } from "../image/rgb.ts";
import { maskedCrc32c } from "./crc32c.ts";

// ---------------------------------------------------------------- protobuf encoding

/** Append-only byte buffer with the few protobuf wire encodings we need. */
export class ProtoWriter {
  private buf = new Uint8Array(64);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  bytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  raw(b: Uint8Array): this {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  /** Unsigned varint; values up to 2^53. Negative int64s use 10 bytes (two's complement). */
  varint(v: number): this {
    if (v < 0) {
      const big = BigInt.asUintN(64, BigInt(v));
      let x = big;
      while (x >= 0x80n) {
        this.raw(new Uint8Array([Number(x & 0x7fn) | 0x80]));
        x >>= 7n;
      }
      return this.raw(new Uint8Array([Number(x)]));
    }
    this.reserve(10);
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.len++] = v;
    return this;
  }

  private key(field: number, wire: number): this {
    return this.varint(field * 8 + wire);
  }

  int(field: number, v: number): this {
    return this.key(field, 0).varint(v);
  }

  double(field: number, v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    return this.key(field, 1).raw(b);
  }

  float(field: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    return this.key(field, 5).raw(b);
  }

  lengthDelimited(field: number, b: Uint8Array): this {
    return this.key(field, 2).varint(b.length).raw(b);
  }

  string(field: number, s: string): this {
    return this.lengthDelimited(field, new TextEncoder().encode(s));
  }

  packedDoubles(field: number, vs: ArrayLike<number>): this {
    const b = new Uint8Array(8 * vs.length);
    const view = new DataView(b.buffer);
    for (let i = 0; i < vs.length; i++) view.setFloat64(8 * i, vs[i], true);
    return this.lengthDelimited(field, b);
  }
}

// ---------------------------------------------------------------- events

export type SummaryValue =
  | { tag: string; scalar: number }
  | { tag: string; image: { height: number; width: number; channels: number; png: Uint8Array } }
  | { tag: string; histogram: Histogram };

export interface Histogram {
  min: number;
  max: number;
  num: number;
  sum: number;
  sumSquares: number;
  /** Right edges of the buckets; the last is usually +large. */
  bucketLimit: number[];
  bucket: number[];
}

function encodeValue(v: SummaryValue): Uint8Array {
  const w = new ProtoWriter().string(1, v.tag);
  if ("scalar" in v) {
    w.float(2, v.scalar);
  } else if ("image" in v) {
    const im = new ProtoWriter().int(1, v.image.height).int(2, v.image.width).int(
      3,
      v.image.channels,
    )
      .lengthDelimited(4, v.image.png);
    w.lengthDelimited(4, im.bytes());
  } else {
    const h = v.histogram;
    const hw = new ProtoWriter().double(1, h.min).double(2, h.max).double(3, h.num).double(4, h.sum)
      .double(5, h.sumSquares).packedDoubles(6, h.bucketLimit).packedDoubles(7, h.bucket);
    w.lengthDelimited(5, hw.bytes());
  }
  return w.bytes();
}

/** Serialize one Event. */
export function encodeEvent(
  e: { wallTime: number; step?: number; fileVersion?: string; values?: SummaryValue[] },
): Uint8Array {
  const w = new ProtoWriter().double(1, e.wallTime);
  if (e.step !== undefined && e.step !== 0) w.int(2, e.step);
  if (e.fileVersion !== undefined) w.string(3, e.fileVersion);
  if (e.values && e.values.length > 0) {
    const s = new ProtoWriter();
    for (const v of e.values) s.lengthDelimited(1, encodeValue(v));
    w.lengthDelimited(5, s.bytes());
  }
  return w.bytes();
}

/** Frame bytes as one TFRecord. */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 16);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/** Split a TFRecord file into its records, checking both CRCs (for tests and tools). */
export function readTfRecords(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let p = 0; p < bytes.length;) {
    if (p + 12 > bytes.length) throw new Error(`readTfRecords: truncated header at byte ${p}`);
    const n = Number(view.getBigUint64(p, true));
    if (view.getUint32(p + 8, true) !== maskedCrc32c(bytes.subarray(p, p + 8))) {
      throw new Error(`readTfRecords: bad length CRC at byte ${p}`);
    }
    if (p + 16 + n > bytes.length) throw new Error(`readTfRecords: truncated record at byte ${p}`);
    const data = bytes.subarray(p + 12, p + 12 + n);
    if (view.getUint32(p + 12 + n, true) !== maskedCrc32c(data)) {
      throw new Error(`readTfRecords: bad data CRC at byte ${p}`);
    }
    out.push(data);
    p += 16 + n;
  }
  return out;
}

/** Histogram of values with `bins` equal-width buckets over [min, max]. */
export function histogramOf(values: ArrayLike<number>, bins = 30): Histogram {
  let min = Infinity, max = -Infinity, sum = 0, sumSquares = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
    sumSquares += v * v;
  }
  if (values.length === 0) min = max = 0;
  const width = max > min ? (max - min) / bins : 1;
  const bucket = new Array(bins).fill(0);
  for (let i = 0; i < values.length; i++) {
    bucket[Math.min(bins - 1, Math.floor((values[i] - min) / width))]++;
  }
  const bucketLimit = Array.from(
    { length: bins },
    (_, k) => (k === bins - 1 ? max : min + (k + 1) * width),
  );
  return { min, max, num: values.length, sum, sumSquares, bucketLimit, bucket };
}

export class TensorBoardWriter {
  readonly path: string;
  private file: Deno.FsFile;
  private now: () => number;

  /** Create DIR (recursively) and a new event file in it. */
  constructor(readonly dir: string, opts: { now?: () => number; hostname?: string } = {}) {
    this.now = opts.now ?? (() => Date.now() / 1000);
    Deno.mkdirSync(dir, { recursive: true });
    const host = opts.hostname ?? safeHostname();
    const t = this.now();
    this.path = `${dir}/events.out.tfevents.${Math.floor(t)}.${host}`;
    this.file = Deno.openSync(this.path, { create: true, append: true });
    this.write(encodeEvent({ wallTime: t, fileVersion: "brain.Event:2" }));
  }

  private write(event: Uint8Array): void {
    const rec = tfRecord(event);
    let off = 0;
    while (off < rec.length) off += this.file.writeSync(rec.subarray(off));
  }

  addScalar(tag: string, value: number, step: number): void {
    this.write(encodeEvent({ wallTime: this.now(), step, values: [{ tag, scalar: value }] }));
  }

  addScalars(values: Record<string, number>, step: number): void {
    const vs = Object.entries(values).map(([tag, scalar]) => ({ tag, scalar }));
    this.write(encodeEvent({ wallTime: this.now(), step, values: vs }));
  }

  addImage(tag: string, img: RgbImage, step: number): void {
    const image = { height: img.height, width: img.width, channels: 3, png: encodePng(img) };
    this.write(encodeEvent({ wallTime: this.now(), step, values: [{ tag, image }] }));
  }

  addHistogram(tag: string, values: ArrayLike<number>, step: number, bins = 30): void {
    this.write(
      encodeEvent({
        wallTime: this.now(),
        step,
        values: [{ tag, histogram: histogramOf(values, bins) }],
      }),
    );
  }

  flush(): void {
    this.file.syncSync();
  }

  close(): void {
    this.file.close();
  }
}

function safeHostname(): string {
  try {
    return Deno.hostname().replace(/[^A-Za-z0-9._-]/g, "_");
  } catch {
    return "localhost";
  }
}
