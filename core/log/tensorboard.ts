/**
 * A TensorBoard event-file writer with no dependencies, so `tensorboard --logdir DIR`
 * shows scalars, images and histograms of a run.
 *
 * File: DIR/events.out.tfevents.<unix seconds>.<host>, a sequence of TFRecords:
 *   u64 length (LE) | u32 masked_crc32c(length bytes) | data | u32 masked_crc32c(data)
 * Each record is a serialized tensorflow.Event, encoded here by hand:
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5 }
 *   Summary { repeated Value value = 1 }
 *   Value   { string tag = 1; float simple_value = 2; Image image = 4; HistogramProto histo = 5;
 *             TensorProto tensor = 8; SummaryMetadata metadata = 9 }
 *   Image   { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4 }
 *   HistogramProto { double min = 1, max = 2, num = 3, sum = 4, sum_squares = 5;
 *                    repeated double bucket_limit = 6 [packed]; repeated double bucket = 7 [packed] }
 *   SummaryMetadata { PluginData plugin_data = 1 }   PluginData { string plugin_name = 1; bytes content = 2 }
 *   TensorProto { DataType dtype = 1; TensorShapeProto tensor_shape = 2; repeated float float_val = 5;
 *                 repeated bytes string_val = 8 }   (DT_FLOAT = 1, DT_STRING = 7; an empty shape is a scalar)
 * The first record is { wall_time, file_version: "brain.Event:2" }.
 *
 * Text (the text plugin): a DT_STRING scalar tensor with plugin_name "text"; the string is
 * Markdown. Hyperparameters (the hparams plugin, tensorboard/plugins/hparams/plugin_data.proto):
 * Values tagged _hparams_/experiment, _hparams_/session_start_info and
 * _hparams_/session_end_info whose plugin content is an HParamsPluginData:
 *   HParamsPluginData { int32 version = 1; Experiment experiment = 2;
 *                       SessionStartInfo session_start_info = 3; SessionEndInfo session_end_info = 4 }
 *   Experiment { repeated HParamInfo hparam_infos = 4; repeated MetricInfo metric_infos = 5 }
 *   HParamInfo { string name = 1; DataType type = 4 }  (STRING 1, BOOL 2, FLOAT64 3)
 *   MetricInfo { MetricName name = 1 }   MetricName { string group = 1; string tag = 2 }
 *   SessionStartInfo { map<string, google.protobuf.Value> hparams = 1; double start_time_secs = 5 }
 *   SessionEndInfo { Status status = 1; double end_time_secs = 2 }  (SUCCESS 1, FAILURE 2)
 *   google.protobuf.Value { double number_value = 2; string string_value = 3; bool bool_value = 4 }
 * The metrics themselves are ordinary scalars under the MetricInfo tags.
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
  | { tag: string; histogram: Histogram }
  | { tag: string; text: string }
  | { tag: string; plugin: { name: string; content: Uint8Array } };

/** A hyperparameter value the hparams plugin can show. */
export type HParamValue = number | string | boolean;

const DT_FLOAT = 1;
const DT_STRING = 7;

/** SummaryMetadata naming the plugin that reads the value. */
function pluginMetadata(name: string, content: Uint8Array = new Uint8Array()): Uint8Array {
  const data = new ProtoWriter().string(1, name);
  if (content.length > 0) data.lengthDelimited(2, content);
  return new ProtoWriter().lengthDelimited(1, data.bytes()).bytes();
}

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
  } else if ("text" in v) {
    // A rank-0 DT_STRING tensor: an empty tensor_shape message is a scalar.
    const tensor = new ProtoWriter().int(1, DT_STRING).lengthDelimited(2, new Uint8Array())
      .string(8, v.text);
    w.lengthDelimited(8, tensor.bytes()).lengthDelimited(9, pluginMetadata("text"));
  } else if ("plugin" in v) {
    // The hparams plugin reads only the metadata; the tensor is a placeholder 0.0.
    const tensor = new ProtoWriter().int(1, DT_FLOAT).lengthDelimited(2, new Uint8Array())
      .float(5, 0);
    w.lengthDelimited(8, tensor.bytes())
      .lengthDelimited(9, pluginMetadata(v.plugin.name, v.plugin.content));
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

/** google.protobuf.Value for a hyperparameter. */
function protoValue(v: HParamValue): Uint8Array {
  const w = new ProtoWriter();
  if (typeof v === "number") w.double(2, v);
  else if (typeof v === "boolean") w.int(4, v ? 1 : 0);
  else w.string(3, v);
  return w.bytes();
}

function hparamsPlugin(field: number, message: Uint8Array): { name: string; content: Uint8Array } {
  return { name: "hparams", content: new ProtoWriter().lengthDelimited(field, message).bytes() };
}

/**
 * The three hparams-plugin values for one finished run: the experiment (which columns
 * exist), the session start (their values) and the session end (its status).
 */
export function hparamsValues(
  hparams: Record<string, HParamValue>,
  metricTags: readonly string[],
  opts: { startTime: number; endTime: number; success: boolean },
): SummaryValue[] {
  const experiment = new ProtoWriter().double(3, opts.startTime);
  const start = new ProtoWriter();
  for (const [name, v] of Object.entries(hparams)) {
    const type = typeof v === "number" ? 3 : typeof v === "boolean" ? 2 : 1;
    experiment.lengthDelimited(4, new ProtoWriter().string(1, name).int(4, type).bytes());
    const entry = new ProtoWriter().string(1, name).lengthDelimited(2, protoValue(v));
    start.lengthDelimited(1, entry.bytes());
  }
  for (const tag of metricTags) {
    const metricName = new ProtoWriter().string(2, tag).bytes();
    experiment.lengthDelimited(5, new ProtoWriter().lengthDelimited(1, metricName).bytes());
  }
  start.double(5, opts.startTime);
  const end = new ProtoWriter().int(1, opts.success ? 1 : 2).double(2, opts.endTime);
  return [
    { tag: "_hparams_/experiment", plugin: hparamsPlugin(2, experiment.bytes()) },
    { tag: "_hparams_/session_start_info", plugin: hparamsPlugin(3, start.bytes()) },
    { tag: "_hparams_/session_end_info", plugin: hparamsPlugin(4, end.bytes()) },
  ];
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

  /** Markdown text for the text plugin (e.g. the resolved config, in a code block). */
  addText(tag: string, markdown: string, step: number): void {
    this.write(encodeEvent({ wallTime: this.now(), step, values: [{ tag, text: markdown }] }));
  }

  /**
   * Hyperparameters and the run's final metrics for the hparams plugin. The metrics are
   * written as scalars under their own names at `step`, which the experiment points to.
   */
  addHparams(
    hparams: Record<string, HParamValue>,
    metrics: Record<string, number>,
    step: number,
    opts: { startTime: number; success?: boolean },
  ): void {
    const endTime = this.now();
    const values = hparamsValues(hparams, Object.keys(metrics), {
      startTime: opts.startTime,
      endTime,
      success: opts.success ?? true,
    });
    // Experiment and session start first, then the metrics, then the end: the order the
    // plugin's own summary API writes them in.
    this.write(encodeEvent({ wallTime: endTime, step: 0, values: values.slice(0, 2) }));
    this.addScalars(metrics, step);
    this.write(encodeEvent({ wallTime: endTime, step: 0, values: values.slice(2) }));
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
