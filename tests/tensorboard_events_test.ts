/**
 * TensorBoard output of a training run, read back by a reader written here from the
 * public formats alone (not core/log's decoder): TFRecord framing with its own bitwise
 * CRC-32C, protobuf fields parsed by hand, and the PNG inflated and unfiltered here.
 * Expected: both CRCs of every record hold; the config is a text-plugin DT_STRING tensor;
 * each validation's image grid decodes to the grid's exact pixels; the hparams plugin gets
 * experiment, session start (with the config's leaves) and session end (success) values.
 */
import { expect, it } from "./lib/test.ts";
import { TrainReporter } from "../core/train/reporter.ts";
import { memoryLogger } from "../core/registry.ts";

// ------------------------------------------------------------ an independent reader

/** CRC-32C bit by bit (polynomial 0x82F63B78 reflected), no table. */
function crc32c(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of b) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0x82f63b78 & -(c & 1));
  }
  return (c ^ 0xffffffff) >>> 0;
}

function masked(b: Uint8Array): number {
  const c = crc32c(b);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

function records(file: Uint8Array): Uint8Array[] {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const out: Uint8Array[] = [];
  let p = 0;
  while (p < file.length) {
    const n = Number(view.getBigUint64(p, true));
    expect(view.getUint32(p + 8, true), `length CRC at ${p}`).toBe(masked(file.subarray(p, p + 8)));
    const data = file.subarray(p + 12, p + 12 + n);
    expect(view.getUint32(p + 12 + n, true), `data CRC at ${p}`).toBe(masked(data));
    out.push(data);
    p += 16 + n;
  }
  expect(p).toBe(file.length);
  return out;
}

type Field = {
  no: number;
  wire: number;
  int?: bigint;
  bytes?: Uint8Array;
  f64?: number;
  f32?: number;
};

function parse(b: Uint8Array): Field[] {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: Field[] = [];
  let p = 0;
  const varint = (): bigint => {
    let v = 0n, shift = 0n;
    for (;;) {
      const byte = b[p++];
      v |= BigInt(byte & 0x7f) << shift;
      shift += 7n;
      if (byte < 0x80) return v;
    }
  };
  while (p < b.length) {
    const key = Number(varint());
    const no = key >>> 3, wire = key & 7;
    if (wire === 0) out.push({ no, wire, int: varint() });
    else if (wire === 1) (out.push({ no, wire, f64: view.getFloat64(p, true) }), p += 8);
    else if (wire === 5) (out.push({ no, wire, f32: view.getFloat32(p, true) }), p += 4);
    else if (wire === 2) {
      const n = Number(varint());
      out.push({ no, wire, bytes: b.subarray(p, p + n) });
      p += n;
    } else throw new Error(`wire type ${wire}`);
  }
  expect(p).toBe(b.length);
  return out;
}

const one = (fs: Field[], no: number) => fs.find((f) => f.no === no);
const all = (fs: Field[], no: number) => fs.filter((f) => f.no === no);
const str = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

interface ReadValue {
  step: number;
  tag: string;
  fields: Field[];
}

function values(file: Uint8Array): { version: string; values: ReadValue[] } {
  const recs = records(file).map(parse);
  const version = str(one(recs[0], 3)?.bytes);
  const out: ReadValue[] = [];
  for (const event of recs.slice(1)) {
    const step = Number(one(event, 2)?.int ?? 0n);
    for (const summary of all(event, 5)) {
      for (const v of all(parse(summary.bytes!), 1)) {
        const fields = parse(v.bytes!);
        out.push({ step, tag: str(one(fields, 1)!.bytes), fields });
      }
    }
  }
  return { version, values: out };
}

/** 8-bit RGB, non-interlaced PNG: chunks, zlib inflate, the five row filters. */
async function decodePng(
  png: Uint8Array,
): Promise<{ width: number; height: number; data: Uint8Array }> {
  expect([...png.subarray(0, 8)]).toEqual([137, 80, 78, 71, 13, 10, 26, 10]);
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let width = 0, height = 0;
  const idat: Uint8Array[] = [];
  for (let p = 8; p < png.length;) {
    const n = view.getUint32(p);
    const type = str(png.subarray(p + 4, p + 8));
    const body = png.subarray(p + 8, p + 8 + n);
    if (type === "IHDR") {
      width = view.getUint32(p + 8);
      height = view.getUint32(p + 12);
      expect([...body.subarray(8, 13)]).toEqual([8, 2, 0, 0, 0]); // depth 8, RGB, no interlace
    } else if (type === "IDAT") idat.push(body);
    p += 12 + n;
  }
  const stream = new Blob(idat.map((b) => b.slice())).stream().pipeThrough(
    new DecompressionStream("deflate"),
  );
  const raw = new Uint8Array(await new Response(stream).arrayBuffer());
  const stride = width * 3;
  const data = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const row = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= 3 ? data[y * stride + x - 3] : 0;
      const b = y > 0 ? data[(y - 1) * stride + x] : 0;
      const c = x >= 3 && y > 0 ? data[(y - 1) * stride + x - 3] : 0;
      const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
      const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][filter];
      data[y * stride + x] = (row[x] + pred) & 0xff;
    }
  }
  return { width, height, data };
}

// ------------------------------------------------------------ the test

function grid(width: number, height: number, seed: number) {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + seed * 101) % 256;
  return { width, height, data };
}

it("TensorBoard: config text, validation image grids and hparams, read back independently", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = {
      optimization: { lr: 0.003, max_update: 4 },
      model: { name: "tiny", bias: true },
    };
    const made: Record<number, ReturnType<typeof grid>> = {};
    const report = new TrainReporter(dir, memoryLogger(), {
      config,
      progress: "logger",
      echo: false,
      images: (step) => ({ reconstructions: made[step] = grid(7, 5, step) }),
    });
    const h = report.hooks;
    for (let step = 1; step <= 4; step++) {
      h.onProgress(step, 4, 2 / step);
      if (step % 2 === 0) {
        await h.onValidate(step, 1 / step);
        h.onLog!({
          step,
          loss: 2 / step,
          lr: 0.003,
          gradNorm: 1,
          itemsPerSecond: 10,
          elapsed: step,
          validLoss: 1 / step,
        });
      }
    }
    report.finish({ step: 4, interrupted: false }, { psnr: 17.5 });

    const files = [...Deno.readDirSync(`${dir}/tb`)].map((e) => e.name);
    expect(files.length).toBe(1);
    expect(files[0]).toMatch(/^events\.out\.tfevents\.\d+\./);
    const { version, values: vs } = values(await Deno.readFile(`${dir}/tb/${files[0]}`));
    expect(version).toBe("brain.Event:2");

    // Text plugin: Value.metadata(9).plugin_data(1).plugin_name(1) == "text", and
    // Value.tensor(8) is a DT_STRING (7) scalar whose string_val(8) holds the config.
    const text = vs.find((v) => v.tag === "config")!;
    const meta = parse(one(parse(one(text.fields, 9)!.bytes!), 1)!.bytes!);
    expect(str(one(meta, 1)!.bytes)).toBe("text");
    const tensor = parse(one(text.fields, 8)!.bytes!);
    expect(one(tensor, 1)!.int).toBe(7n);
    expect(all(parse(one(tensor, 2)!.bytes!), 2).length).toBe(0); // no dims: a scalar
    expect(JSON.parse(str(one(tensor, 8)!.bytes))).toEqual(config);

    // Images at each validation: Value.image(4) { height 1, width 2, colorspace 3, png 4 }.
    const images = vs.filter((v) => v.tag === "images/reconstructions");
    expect(images.map((v) => v.step)).toEqual([2, 4]);
    for (const v of images) {
      const im = parse(one(v.fields, 4)!.bytes!);
      expect(one(im, 1)!.int).toBe(5n);
      expect(one(im, 2)!.int).toBe(7n);
      expect(one(im, 3)!.int).toBe(3n); // RGB
      const png = await decodePng(one(im, 4)!.bytes!);
      expect(png.width).toBe(7);
      expect(png.height).toBe(5);
      expect(png.data).toEqual(made[v.step].data);
    }

    // Hparams plugin: HParamsPluginData in plugin_data.content, one message per tag.
    const hp = (tag: string) => {
      const v = vs.find((x) => x.tag === tag)!;
      const pd = parse(one(parse(one(v.fields, 9)!.bytes!), 1)!.bytes!);
      expect(str(one(pd, 1)!.bytes)).toBe("hparams");
      return parse(one(pd, 2)!.bytes!);
    };
    const experiment = parse(one(hp("_hparams_/experiment"), 2)!.bytes!);
    const hparamNames = all(experiment, 4).map((f) => str(one(parse(f.bytes!), 1)!.bytes));
    expect(hparamNames).toEqual([
      "optimization.lr",
      "optimization.max_update",
      "model.name",
      "model.bias",
    ]);
    const metricTags = all(experiment, 5).map((f) =>
      str(one(parse(one(parse(f.bytes!), 1)!.bytes!), 2)!.bytes)
    );
    expect(metricTags).toEqual(["final/train_loss", "final/valid_loss", "final/psnr"]);
    const start = parse(one(hp("_hparams_/session_start_info"), 3)!.bytes!);
    const map = Object.fromEntries(
      all(start, 1).map((e) => {
        const entry = parse(e.bytes!);
        const value = parse(one(entry, 2)!.bytes!)[0];
        const v = value.no === 2 ? value.f64 : value.no === 3 ? str(value.bytes) : value.int === 1n;
        return [str(one(entry, 1)!.bytes), v];
      }),
    );
    expect(map).toEqual({
      "optimization.lr": 0.003,
      "optimization.max_update": 4,
      "model.name": "tiny",
      "model.bias": true,
    });
    const end = parse(one(hp("_hparams_/session_end_info"), 4)!.bytes!);
    expect(one(end, 1)!.int).toBe(1n); // STATUS_SUCCESS
    // The metrics the experiment names are scalars (simple_value, field 2) at the last step.
    const finals = vs.filter((v) => v.tag.startsWith("final/"));
    expect(finals.map((v) => [v.tag, v.step, one(v.fields, 2)!.f32])).toEqual([
      ["final/train_loss", 4, 0.5],
      ["final/valid_loss", 4, 0.25],
      ["final/psnr", 4, 17.5],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

it("TensorBoard reader: a flipped byte fails the data CRC", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const report = new TrainReporter(dir, memoryLogger(), {
      progress: "logger",
      echo: false,
      config: { a: 1 },
    });
    report.close();
    const name = [...Deno.readDirSync(`${dir}/tb`)][0].name;
    const bytes = await Deno.readFile(`${dir}/tb/${name}`);
    records(bytes); // intact
    bytes[bytes.length - 6] ^= 1;
    expect(() => records(bytes)).toThrow(/data CRC/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
