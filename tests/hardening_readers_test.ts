/**
 * Issue 16, the readers: hostile files built here in a few bytes must fail with a named error
 * (file, what, limit) within a time and memory budget, and the two kinds of real checkpoints
 * that used to be refused (numpy RandomState in extra_state, legacy whole-module saves) load.
 * Fixtures: tests/fixtures/hardening/make_hardening_fixtures.py.
 */

import { expect, it } from "./lib/test.ts";
import { thrown } from "./lib/errors.ts";
import { crc32, deflateRawSync, deflateSync } from "node:zlib";
import { decodeImage, readImage } from "../core/image/codec.ts";
import { ImageDecodeError, ImageTooLargeError, MAX_IMAGE_PIXELS } from "../core/image/errors.ts";
import { decodeJpeg } from "../core/image/jpeg.ts";
import { decodePng } from "../core/image/png.ts";
import { turbojpeg } from "../core/native/turbojpeg.ts";
import { loadCheckpoint } from "../core/io/checkpoint.ts";
import { IoFormatError } from "../core/io/errors.ts";
import { WideIntTensor } from "../core/io/host_tensor.ts";
import { readNpy, readNpz } from "../core/io/npy.ts";
import { PickleGlobal, PickleObject, unpickle } from "../core/io/pickle.ts";
import { configToPlain } from "../core/io/py_config.ts";
import { readSafetensors } from "../core/io/safetensors.ts";
import { detectFormat, loadStateDict } from "../core/io/state_dict.ts";
import { DEFAULT_MAX_EXPANDED_ELEMENTS, keyPathOf, loadTorch } from "../core/io/torch.ts";
import { encodeZip } from "../core/io/zip.ts";
import { digitStage1FromCheckpoint } from "../plugins/stage1/digit_checkpoint.ts";
import * as ops from "../core/ops/mod.ts";
import { tidy } from "../core/tensor.ts";

const HERE = new URL("./fixtures/hardening/", import.meta.url).pathname;
const DIGIT = new URL("./fixtures/digit/", import.meta.url).pathname;
const MiB = 1 << 20;

/** Runs `body`, then asserts it took under `ms` and grew the RSS by under `mb` MiB. */
async function withinBudget<T>(
  what: string,
  limits: { ms: number; mb: number },
  body: () => T | Promise<T>,
): Promise<T> {
  const rss0 = Deno.memoryUsage().rss;
  const t0 = performance.now();
  const out = await body();
  const ms = performance.now() - t0;
  const mb = (Deno.memoryUsage().rss - rss0) / MiB;
  console.log(`${what}: ${ms.toFixed(0)} ms, RSS +${mb.toFixed(1)} MiB`);
  expect(ms, `${what}: took ${ms.toFixed(0)} ms, budget ${limits.ms}`).toBeLessThan(limits.ms);
  expect(mb, `${what}: RSS grew ${mb.toFixed(1)} MiB, budget ${limits.mb}`).toBeLessThan(limits.mb);
  return out;
}

/** Asserts that `body` throws (or rejects) an instance of `cls` whose message has each part. */
async function assertNamed(
  body: () => unknown,
  cls: new (...args: never[]) => Error,
  ...parts: string[]
): Promise<Error> {
  let err: unknown = null;
  try {
    await body();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${cls.name}, got ${err}`).toBeInstanceOf(cls);
  const error = err as Error;
  for (const p of parts) {
    expect(error.message.includes(p), `"${error.message}" lacks "${p}"`).toBeTruthy();
  }
  return error;
}

// ---------------------------------------------------------------- byte builders

const enc = new TextEncoder();
const cat = (...parts: (Uint8Array | number[])[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), at += p.length);
  return out;
};
const be16 = (v: number) => [v >> 8, v & 255];
const be32 = (v: number) => [v >>> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255];
const le32 = (v: number) => [v & 255, (v >> 8) & 255, (v >> 16) & 255, v >>> 24];

/**
 * A baseline JPEG whose blocks are all zero coefficients: one-code Huffman tables make each
 * block two 0 bits (DC difference 0, then end of block). `comps` are [id, h, v].
 */
function tinyJpeg(width: number, height: number, comps: [number, number, number][]): Uint8Array {
  const seg = (marker: number, body: number[]) => [0xff, marker, ...be16(body.length + 2), ...body];
  const oneCode = [1, ...new Array(15).fill(0), 0];
  const maxH = Math.max(...comps.map((c) => c[1])), maxV = Math.max(...comps.map((c) => c[2]));
  const mcus = Math.ceil(width / (8 * maxH)) * Math.ceil(height / (8 * maxV));
  const blocks = mcus * comps.reduce((n, c) => n + c[1] * c[2], 0);
  // 2 zero bits per block, padded with 1 bits; capped, as the bomb is refused from its header
  const dataBytes = Math.min(Math.ceil((2 * blocks) / 8) + 1, 64);
  const data = new Array(dataBytes).fill(0);
  if ((2 * blocks) % 8) data[Math.floor((2 * blocks) / 8)] = (1 << (8 - ((2 * blocks) % 8))) - 1;
  return new Uint8Array([
    0xff,
    0xd8,
    ...seg(0xdb, [0, ...new Array(64).fill(1)]),
    ...seg(0xc0, [
      8,
      ...be16(height),
      ...be16(width),
      comps.length,
      ...comps.flatMap(([id, h, v]) => [id, (h << 4) | v, 0]),
    ]),
    ...seg(0xc4, [0x00, ...oneCode]),
    ...seg(0xc4, [0x10, ...oneCode]),
    ...seg(0xda, [comps.length, ...comps.flatMap(([id]) => [id, 0x00]), 0, 63, 0]),
    ...data,
    0xff,
    0xd9,
  ]);
}

function pngChunk(type: string, body: Uint8Array): Uint8Array {
  const tb = cat(enc.encode(type), body);
  return cat(be32(body.length), tb, be32(crc32(tb) >>> 0));
}

function tinyPng(width: number, height: number): Uint8Array {
  const ihdr = new Uint8Array([...be32(width), ...be32(height), 8, 2, 0, 0, 0]);
  const raw = new Uint8Array(Math.min(height, 4) * (1 + 3 * Math.min(width, 4)));
  const idat = new Uint8Array(deflateRawSync(raw)); // zlib framing is not needed for the bomb
  return cat(
    [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", idat),
    pngChunk("IEND", new Uint8Array(0)),
  );
}

/** A minimal protocol-2 pickle writer for the opcodes these tests need. */
class Pkl {
  parts: number[] = [0x80, 2];
  op(...b: number[]) {
    this.parts.push(...b);
    return this;
  }
  str(s: string) {
    const b = enc.encode(s);
    return this.op(0x58, ...le32(b.length), ...b);
  }
  int(v: number) {
    return this.op(0x4a, ...le32(v >>> 0));
  }
  global(module: string, name: string) {
    return this.op(0x63, ...enc.encode(`${module}\n${name}\n`));
  }
  mark() {
    return this.op(0x28);
  }
  tuple() {
    return this.op(0x74);
  }
  ints(vs: number[]) {
    this.mark();
    for (const v of vs) this.int(v);
    return this.tuple();
  }
  bytes() {
    return new Uint8Array([...this.parts, 0x2e]);
  }
}

/** {"w": _rebuild_tensor_v2(storage(type, "0", numel), offset, size, stride)} as a torch zip. */
function torchZip(
  opts: { type?: string; numel: number; size: number[]; stride: number[]; offset?: number },
  storage: Uint8Array,
): Uint8Array {
  const p = new Pkl().op(0x7d).str("w").global("torch._utils", "_rebuild_tensor_v2").mark();
  p.mark().str("storage").global("torch", opts.type ?? "FloatStorage").str("0").str("cpu")
    .int(opts.numel).tuple().op(0x51); // BINPERSID
  p.int(opts.offset ?? 0).ints(opts.size).ints(opts.stride).op(0x89, 0x7d).tuple().op(0x52, 0x73);
  return encodeZip([
    { name: "archive/data.pkl", data: p.bytes() },
    { name: "archive/data/0", data: storage },
  ]);
}

/** A zip of one deflated entry whose headers declare `declared` bytes (zip64 above 4 GiB). */
function deflatedZip(name: string, data: Uint8Array, declared: number): Uint8Array {
  const comp = new Uint8Array(deflateRawSync(data));
  const nameB = enc.encode(name);
  const zip64 = declared >= 0xffffffff;
  const extra = zip64
    ? (() => {
      const e = new Uint8Array(12);
      const dv = new DataView(e.buffer);
      dv.setUint16(0, 1, true);
      dv.setUint16(2, 8, true);
      dv.setBigUint64(4, BigInt(declared), true);
      return e;
    })()
    : new Uint8Array(0);
  const crc = crc32(data) >>> 0;
  const local = new Uint8Array(30 + nameB.length);
  const lv = new DataView(local.buffer);
  lv.setUint32(0, 0x04034b50, true);
  lv.setUint16(8, 8, true);
  lv.setUint32(14, crc, true);
  lv.setUint32(18, comp.length, true);
  lv.setUint32(22, zip64 ? 0xffffffff : declared, true);
  lv.setUint16(26, nameB.length, true);
  local.set(nameB, 30);
  const cen = new Uint8Array(46 + nameB.length + extra.length);
  const cv = new DataView(cen.buffer);
  cv.setUint32(0, 0x02014b50, true);
  cv.setUint16(10, 8, true);
  cv.setUint32(16, crc, true);
  cv.setUint32(20, comp.length, true);
  cv.setUint32(24, zip64 ? 0xffffffff : declared, true);
  cv.setUint16(28, nameB.length, true);
  cv.setUint16(30, extra.length, true);
  cen.set(nameB, 46);
  cen.set(extra, 46 + nameB.length);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, 1, true);
  ev.setUint16(10, 1, true);
  ev.setUint32(12, cen.length, true);
  ev.setUint32(16, local.length + comp.length, true);
  return cat(local, comp, cen, end);
}

const tmp = Deno.makeTempDirSync({ prefix: "digit_hardening_" });
globalThis.addEventListener("unload", () => Deno.removeSync(tmp, { recursive: true }));

// ---------------------------------------------------------------- 1. one pixel limit

it("JPEG bomb (60000x60000 in a few hundred bytes) is refused from the header by every decoder", async () => {
  const bomb = tinyJpeg(60000, 60000, [[1, 2, 2], [2, 1, 1], [3, 1, 1]]);
  expect(bomb.length, `${bomb.length} bytes`).toBeLessThan(700);
  const limit = String(2 * MAX_IMAGE_PIXELS);
  const tj = turbojpeg();
  await withinBudget("jpeg bomb", { ms: 2000, mb: 64 }, async () => {
    await assertNamed(
      () => decodeImage(bomb, "bomb.jpg"),
      ImageTooLargeError,
      "bomb.jpg",
      "60000x60000",
      limit,
    );
    await assertNamed(
      () => decodeJpeg(bomb, "bomb.jpg"),
      ImageTooLargeError,
      "bomb.jpg",
      "60000x60000",
      limit,
    );
    if (tj) {
      await assertNamed(
        () => tj.decodeRgb(bomb, "bomb.jpg"),
        ImageTooLargeError,
        "bomb.jpg",
        "60000x60000",
        limit,
      );
    }
  });
  // the limit is an option: a 16x16 image against a 100-pixel limit, and against the default
  const small = tinyJpeg(16, 16, [[1, 1, 1]]);
  const e = await assertNamed(
    () => decodeImage(small, "s.jpg", { maxPixels: 100 }),
    ImageTooLargeError,
    "16x16",
    "100",
  );
  expect((e as ImageTooLargeError).limit).toBe(100);
  if (tj) {
    await assertNamed(
      () => tj.decodeRgb(small, "s.jpg", { maxPixels: 100 }),
      ImageTooLargeError,
      "100",
    );
  }
  expect(decodeImage(small, "s.jpg").width).toBe(16);
});

it("PNG bomb (40000x40000 IHDR) is refused before fast-png allocates", async () => {
  const bomb = tinyPng(40000, 40000);
  await withinBudget("png bomb", { ms: 2000, mb: 64 }, async () => {
    const e = await assertNamed(
      () => decodeImage(bomb, "bomb.png"),
      ImageTooLargeError,
      "bomb.png",
      "40000x40000",
      String(2 * MAX_IMAGE_PIXELS),
    );
    expect((e as ImageTooLargeError).width).toBe(40000);
    await assertNamed(
      () => decodePng(bomb, "bomb.png", { maxPixels: 1e9 }),
      ImageDecodeError,
      "bomb.png",
    );
  });
  await assertNamed(
    () => decodePng(tinyPng(11, 10), "p.png", { maxPixels: 100 }),
    ImageTooLargeError,
    "11x10",
    "100",
  );
  await assertNamed(
    () => decodePng(tinyPng(2, 2).subarray(0, 20), "cut.png"),
    ImageDecodeError,
    "cut.png",
    "IHDR",
  );
});

it("PNG whose IDAT inflates far past its 1x1 size stops at the size it needs", async () => {
  const zeros = new Uint8Array(256 * MiB);
  const ihdr = new Uint8Array([...be32(1), ...be32(1), 8, 2, 0, 0, 0]);
  const bomb = cat(
    [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", new Uint8Array(deflateSync(zeros))),
    pngChunk("IEND", new Uint8Array(0)),
  );
  expect(bomb.length, `${bomb.length} bytes`).toBeLessThan(300_000);
  await withinBudget(
    "png idat bomb",
    { ms: 2000, mb: 64 },
    () =>
      assertNamed(
        () => decodeImage(bomb, "idat.png"),
        ImageDecodeError,
        "idat.png",
        "1x1",
        "inflates past",
      ),
  );
});

// ---------------------------------------------------------------- 6. CMYK fallback

it("CMYK JPEG with C at 2x2 and M/Y/K at 1x1: TurboJPEG's refusal falls back to the TS decoder", () => {
  const cmyk = tinyJpeg(16, 16, [[1, 2, 2], [2, 1, 1], [3, 1, 1], [4, 1, 1]]);
  const ts = decodeJpeg(cmyk, "cmyk.jpg");
  expect(ts.width).toBe(16);
  const tj = turbojpeg();
  // the header step is what fails in libjpeg-turbo; the binding now hands the file over
  if (tj) expect(tj.decodeRgb(cmyk, "cmyk.jpg")).toBe(null);
  const img = decodeImage(cmyk, "cmyk.jpg");
  expect(img.data).toEqual(ts.data);
  // truncation is still an error, not a fallback
  const truncated = cmyk.subarray(0, cmyk.length - 6);
  const e = thrown(() => decodeImage(truncated, "cut.jpg"));
  expect(e).toBeInstanceOf(ImageDecodeError);
  expect(e.message).toContain("cut.jpg");
});

// ---------------------------------------------------------------- 2. zip

it("zip bomb: an .npz entry claiming 100 bytes stops inflating at 100, with a named error", async () => {
  const zeros = new Uint8Array(256 * MiB);
  const bomb = deflatedZip("a.npy", zeros, 100);
  expect(bomb.length, `${bomb.length} bytes`).toBeLessThan(300_000);
  await withinBudget(
    "zip bomb",
    { ms: 3000, mb: 64 },
    () =>
      assertNamed(
        () => readNpz(bomb, { name: "bomb.npz" }),
        IoFormatError,
        "bomb.npz",
        "'a.npy'",
        "declared size of 100",
      ),
  );
});

it("zip64 entry claiming 10 GiB is refused before allocating", async () => {
  const small = deflatedZip("a.npy", new Uint8Array(1000), 10 * 1024 * MiB);
  await withinBudget(
    "zip64 claim",
    { ms: 1000, mb: 32 },
    () =>
      assertNamed(
        () => readNpz(small, { name: "big.npz" }),
        IoFormatError,
        "big.npz",
        "'a.npy'",
        "10737418240",
        "can inflate to",
      ),
  );
});

// ---------------------------------------------------------------- 3. torch views

it("torch: a (16384,16384) stride-(0,0) view of one float is refused, not materialised", async () => {
  const file = torchZip({ numel: 1, size: [16384, 16384], stride: [0, 0] }, new Uint8Array(4));
  expect(file.length, `${file.length} bytes`).toBeLessThan(700);
  await withinBudget(
    "stride-0 view",
    { ms: 1000, mb: 64 },
    () =>
      assertNamed(
        () => loadTorch(file, { name: "expand.pt" }),
        IoFormatError,
        "expand.pt",
        "storage '0'",
        "268435456",
        String(DEFAULT_MAX_EXPANDED_ELEMENTS),
      ),
  );
  // small expanded views still load, and the limit is an option
  const ok = (await loadTorch(
    torchZip(
      { numel: 1, size: [3, 4], stride: [0, 0] },
      new Uint8Array(new Float32Array([7]).buffer),
    ),
    { name: "e.pt" },
  )) as Map<string, { data: Float32Array }>;
  expect(ok.get("w")!.data.length).toBe(12);
  await assertNamed(
    () =>
      loadTorch(torchZip({ numel: 1, size: [3, 4], stride: [0, 0] }, new Uint8Array(4)), {
        name: "e.pt",
        maxExpandedElements: 8,
      }),
    IoFormatError,
    "e.pt",
    "limit of 8",
  );
});

it("torch: negative storage numel and negative sizes are named errors", async () => {
  await assertNamed(
    () =>
      loadTorch(torchZip({ numel: -5, size: [1], stride: [1] }, new Uint8Array(4)), {
        name: "neg.pt",
      }),
    IoFormatError,
    "neg.pt",
    "invalid element count -5",
  );
  await assertNamed(
    () =>
      loadTorch(torchZip({ numel: 1, size: [-5], stride: [1] }, new Uint8Array(4)), {
        name: "neg.pt",
      }),
    IoFormatError,
    "neg.pt",
    "tensor size",
    "-5",
  );
  await assertNamed(
    () =>
      loadTorch(torchZip({ numel: 1, size: [1], stride: [1], offset: -1 }, new Uint8Array(4)), {
        name: "neg.pt",
      }),
    IoFormatError,
    "neg.pt",
    "offset -1",
  );
});

// ---------------------------------------------------------------- 4. pickle recursion

it("pickle: 300k items in one APPENDS load; deep nesting costs no stack in the readers", async () => {
  const n = 300_000;
  const flat = new Uint8Array(n + 6);
  flat.set([0x80, 2, 0x5d, 0x28]);
  flat.fill(0x4e, 4, 4 + n); // NONE
  flat.set([0x65, 0x2e], 4 + n); // APPENDS, STOP
  const list = await withinBudget(
    "300k APPENDS",
    { ms: 2000, mb: 128 },
    () => unpickle(flat, { file: "wide.pkl" }),
  );
  expect((list as unknown[]).length).toBe(n);
  // a list nested 200k deep: EMPTY_LIST x (d+1), then APPEND x d
  const d = 200_000;
  const deep = new Uint8Array(2 + 2 * d + 2);
  deep.set([0x80, 2]);
  deep.fill(0x5d, 2, 3 + d);
  deep.fill(0x61, 3 + d, 3 + 2 * d);
  deep[deep.length - 1] = 0x2e;
  const nested = await withinBudget(
    "200k-deep pickle",
    { ms: 3000, mb: 256 },
    () => unpickle(deep, { file: "deep.pkl" }),
  );
  let inner: unknown = nested;
  for (let i = 0; i < d; i++) inner = (inner as unknown[])[0];
  expect(keyPathOf(nested, inner)?.length).toBe(3 * d);
  await assertNamed(
    () => configToPlain(nested, "deep.pt"),
    IoFormatError,
    "deep.pt",
    "nested deeper",
  );
  // an unknown persistent id with a long value: a short message that names the file
  const pid = new Pkl().str("weird").str("x".repeat(10_000)).op(0x86, 0x51).bytes();
  const e = await assertNamed(
    () => loadTorch(encodeZip([{ name: "a/data.pkl", data: pid }]), { name: "pid.pt" }),
    IoFormatError,
    "pid.pt",
    "persistent id",
  );
  expect(e.message.length, `${e.message.length} chars`).toBeLessThan(400);
});

it("npy: a header nested 100k deep, or 4 MB long, is a short named error in bounded time", async () => {
  const npy = (header: string) => {
    const h = enc.encode(header + "\n");
    return cat([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0], le32(h.length), h);
  };
  await withinBudget("npy headers", { ms: 3000, mb: 128 }, async () => {
    const deep = npy(`{'descr': '<f4', 'fortran_order': False, 'shape': ${"(".repeat(100_000)}}`);
    const e = await assertNamed(
      () => readNpy(deep, { name: "deep.npy" }),
      IoFormatError,
      "deep.npy",
      "nested deeper",
    );
    expect(e.message.length, `${e.message.length} chars`).toBeLessThan(400);
    const long = npy(
      `{'descr': '<f4', 'fortran_order': False, 'shape': (${"1, ".repeat(1_400_000)}0), }`,
    );
    await assertNamed(
      () => readNpy(long, { name: "long.npy" }),
      IoFormatError,
      "long.npy",
      "1400001 dimensions",
      "64",
    );
  });
});

// ---------------------------------------------------------------- 5. checkpoints that must load

it("numpy RandomState (uint32[624]) and int64 beyond int32 in extra_state load exactly", async () => {
  const want = JSON.parse(Deno.readTextFileSync(`${HERE}expected.json`));
  const file = `${HERE}rng_state.pt`;
  const ck = (await loadTorch(file)) as Map<string, Map<string, unknown>>;
  const [kind, key, pos] = ck.get("extra_state")!.get("rng") as [string, WideIntTensor, number];
  expect(kind).toBe(want.rng_kind);
  expect(key).toBeInstanceOf(WideIntTensor);
  expect(key.shape).toEqual([624]);
  expect([0, 1, 2, 3].map((i) => Number(key.at(i)))).toEqual(want.rng_key_first);
  expect(Number(key.at(623))).toBe(want.rng_key_last);
  expect(pos).toBe(want.rng_pos);
  const step = ck.get("extra_state")!.get("step") as WideIntTensor;
  expect([0, 1, 2].map((i) => String(step.at(i)))).toEqual(want.step);
  // refused only where a host tensor is asked for, naming the key
  await assertNamed(
    () => step.toHostTensor("extra_state.step"),
    IoFormatError,
    file,
    "extra_state.step",
    "-1099511627776",
    "int32",
  );
  expect([...(await loadStateDict(file, { select: "model" })).get("w")!.data]).toEqual([
    0,
    1,
    2,
    3,
    4,
    5,
  ]);

  // the same from a few bytes: an i64 storage holding 2^40, read through a transposing view
  const longs = new BigInt64Array([1n, 2n ** 40n, -3n, 4n]);
  const zip = torchZip(
    { type: "LongStorage", numel: 4, size: [2, 2], stride: [1, 2] },
    new Uint8Array(longs.buffer),
  );
  const w = ((await loadTorch(zip, { name: "i64.pt" })) as Map<string, WideIntTensor>).get("w")!;
  expect(w).toBeInstanceOf(WideIntTensor);
  expect([0, 1, 2, 3].map((i) => w.at(i))).toEqual([1n, -3n, 2n ** 40n, 4n]);
  const path = `${tmp}/i64.pt`;
  Deno.writeFileSync(path, zip);
  await assertNamed(
    () => loadStateDict(path),
    IoFormatError,
    path,
    "'w'",
    "1099511627776",
    "int32",
  );
});

it("legacy whole-module torch.save (persistent ids tagged 'module') loads like torch.load", async () => {
  const want = JSON.parse(Deno.readTextFileSync(`${HERE}expected.json`));
  const lin = (await loadTorch(`${HERE}module_legacy.pt`)) as PickleObject;
  expect(lin).toBeInstanceOf(PickleObject);
  expect(lin.className).toBe("torch.nn.modules.linear.Linear");
  const params = (lin.state as Map<string, unknown>).get("_parameters") as Map<
    string,
    { data: Float32Array }
  >;
  expect([...params.get("weight")!.data]).toEqual(want.linear_weight.map(Math.fround));
  expect([...params.get("bias")!.data]).toEqual(want.linear_bias.map(Math.fround));
  // a module pid with 10 kB of "source" is accepted: torch.load returns the class
  const pkl = new Pkl().mark().str("module").global("m", "Net").str("net.py").str(
    "s".repeat(10_000),
  )
    .tuple().op(0x51).bytes();
  const cls = await loadTorch(encodeZip([{ name: "a/data.pkl", data: pkl }]), { name: "mod.pt" });
  expect(cls instanceof PickleGlobal && cls.qualifiedName === "m.Net").toBeTruthy();
});

// ---------------------------------------------------------------- 8. safetensors

function safetensors(header: unknown, dataBytes: number): Uint8Array {
  const json = enc.encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

it("safetensors: a null entry and overlapping data offsets are named errors", async () => {
  await assertNamed(
    () => readSafetensors(safetensors({ a: null }, 0), { name: "null.st" }),
    IoFormatError,
    "null.st",
    "'a'",
    "null",
  );
  const overlap = safetensors({
    a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
  }, 12);
  await assertNamed(
    () => readSafetensors(overlap, { name: "ov.st" }),
    IoFormatError,
    "ov.st",
    "'a' [0, 8)",
    "'b' [4, 12)",
    "overlap",
  );
  await assertNamed(
    () => readSafetensors(safetensors({ __metadata__: { k: 1 } }, 0), { name: "m.st" }),
    IoFormatError,
    "m.st",
    "__metadata__",
  );
  const fine = safetensors({
    a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
    b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
  }, 8);
  expect((await readSafetensors(fine, { name: "ok.st" })).tensors.size).toBe(2);
});

// ---------------------------------------------------------------- 9. FIFOs and devices

it("a FIFO or a device given as a checkpoint or image path is refused, not waited on", async () => {
  const fifo = `${tmp}/pipe`;
  const made = new Deno.Command("mkfifo", { args: [fifo] }).outputSync();
  expect(made.success, "mkfifo").toBeTruthy();
  await withinBudget("fifo", { ms: 2000, mb: 32 }, async () => {
    for (
      const read of [
        () => loadTorch(fifo),
        () => readSafetensors(fifo),
        () => readNpy(fifo),
        () => detectFormat(fifo),
      ]
    ) {
      await assertNamed(read, IoFormatError, fifo, "not a regular file");
    }
    await assertNamed(() => readImage(fifo), ImageDecodeError, fifo, "not a regular file");
    await assertNamed(
      () => readImage("/dev/zero"),
      ImageDecodeError,
      "/dev/zero",
      "not a regular file",
    );
    await assertNamed(
      () => loadTorch("/dev/zero"),
      IoFormatError,
      "/dev/zero",
      "not a regular file",
    );
    // the checkpoint marker: `<path>.json`
    const marker = `${tmp}/ck`;
    new Deno.Command("mkfifo", { args: [`${marker}.json`] }).outputSync();
    await assertNamed(
      () => loadCheckpoint(marker),
      IoFormatError,
      `${marker}.json`,
      "not a regular file",
    );
  });
});

// ---------------------------------------------------------------- 7. loadDigitStage1

it("loadDigitStage1 reads sizes from cfg, weights and fairseq defaults; any position table that covers the sequence", async () => {
  const file = `${DIGIT}stage1_classcond.pt`; // plain-dict cfg
  const fresh = async () => (await loadTorch(file)) as Map<string, unknown>;
  const cfgModel = (ck: Map<string, unknown>) =>
    (ck.get("cfg") as Map<string, Map<string, unknown>>).get("model")!;
  const reference = digitStage1FromCheckpoint(await fresh(), file);
  const tokens = ops.tensor(new Int32Array([13, 5, 6, 7, 8, 9]), [1, 6], { dtype: "i32" });
  const logits = (m: typeof reference.model) => tidy(() => m.forward(tokens).dataSync().slice());
  const want = logits(reference.model);

  // no decoder_ffn_embed_dim / decoder_layers / decoder_embed_dim: read from the weights
  const bare = await fresh();
  for (
    const k of [
      "decoder_ffn_embed_dim",
      "decoder_layers",
      "decoder_embed_dim",
      "decoder_input_dim",
      "decoder_output_dim",
    ]
  ) {
    cfgModel(bare).delete(k);
  }
  // a 259-row table (max_target_positions 257) instead of 1026
  const sd = bare.get("model") as Map<string, { shape: number[]; data: Float32Array }>;
  const pos = sd.get("decoder.embed_positions.weight")!;
  pos.data = pos.data.slice(0, 259 * pos.shape[1]);
  pos.shape = [259, pos.shape[1]];
  cfgModel(bare).set("max_target_positions", 257);
  const loaded = digitStage1FromCheckpoint(bare, file);
  expect({ ...loaded.model.cfg }).toEqual({ ...reference.model.cfg });
  expect(logits(loaded.model)).toEqual(want);
  loaded.model.dispose();

  // max_target_positions omitted everywhere: the table's rows say it
  cfgModel(bare).delete("max_target_positions");
  (bare.get("cfg") as Map<string, Map<string, unknown>>).get("task")!.delete(
    "max_target_positions",
  );
  digitStage1FromCheckpoint(bare, file).model.dispose();

  // real inconsistencies name the key
  cfgModel(bare).set("max_target_positions", 300);
  await assertNamed(
    () => digitStage1FromCheckpoint(bare, file),
    IoFormatError,
    file,
    "cfg.model.max_target_positions is 300",
    "259 rows",
  );
  cfgModel(bare).set("max_target_positions", 100);
  pos.data = pos.data.slice(0, 102 * pos.shape[1]);
  pos.shape = [102, pos.shape[1]];
  await assertNamed(
    () => digitStage1FromCheckpoint(bare, file),
    IoFormatError,
    file,
    "257 positions",
    "cfg.model.max_target_positions",
  );
  cfgModel(bare).set("decoder_attention_heads", 3);
  await assertNamed(
    () => digitStage1FromCheckpoint(bare, file),
    IoFormatError,
    file,
    "decoder_attention_heads 3",
  );
  reference.model.dispose();
});
