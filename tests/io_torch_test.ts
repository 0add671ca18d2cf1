// torch.save files (zip and legacy) and loadStateDict over them, against values recorded by
// tests/fixtures/make_io_fixtures.py with torch 1.13.

import { expect, it } from "./lib/test.ts";
import { configToPlain } from "../core/io/py_config.ts";
import { PickleGlobal, PickleObject } from "../core/io/pickle.ts";
import { loadStateDict } from "../core/io/state_dict.ts";
import { loadTorch } from "../core/io/torch.ts";
import { encodeZip, ZipReader } from "../core/io/zip.ts";
import { openSource } from "../core/io/byte_source.ts";
import { isHostTensor, WideIntTensor } from "../core/io/host_tensor.ts";
import {
  assertRejects,
  assertTensor,
  EXPECTED,
  FIXTURES,
  PickleWriter,
  tempFile,
} from "./fixtures/io/helpers.ts";

const TORCH_FILES = [
  "torch_zip.pt",
  "torch_legacy.pt",
  "dinov2_like.pth",
  "vqgan_like.ckpt",
  "fairseq_like.pt",
];

for (const file of TORCH_FILES) {
  it(`loadStateDict ${file}: every tensor matches torch exactly`, async () => {
    const sd = await loadStateDict(FIXTURES + file);
    const exp = EXPECTED[file].tensors;
    expect([...sd.keys()], "keys in file order").toEqual(Object.keys(exp));
    for (const [key, e] of Object.entries(exp)) assertTensor(sd.get(key), e, `${file}:${key}`);
  });
}

it("torch zip: views and shared storages are rebuilt as independent C-order copies", async () => {
  const sd = await loadStateDict(FIXTURES + "torch_zip.pt");
  const a = sd.get("shared_a")!, b = sd.get("shared_b")!;
  // shared_a = s[2:6], shared_b = s.view(2, 5): same storage, different offsets
  expect([...a.data]).toEqual([...b.data].slice(2, 6));
  b.data[2] = 1234;
  expect(a.data[0], "tensors sharing a storage must not alias each other").not.toBe(1234);
});

it("loadTorch from bytes gives the same data and names the buffer in errors", async () => {
  const bytes = await Deno.readFile(FIXTURES + "torch_zip.pt");
  const sd = (await loadTorch(bytes, { name: "mem.pt" })) as Map<string, unknown>;
  expect(sd instanceof Map && isHostTensor(sd.get("w_f32"))).toBeTruthy();
  const before = bytes.slice();
  const w = sd.get("w_f32") as { data: Float32Array };
  w.data.fill(0);
  expect(bytes, "loaded tensors must not alias the caller's buffer").toEqual(before);
  await assertRejects(() => loadTorch(bytes.subarray(0, 300), { name: "mem.pt" }), "mem.pt");
});

it("fairseq-like checkpoint: cfg (omegaconf), history and extras load as inert data", async () => {
  const ck = (await loadTorch(FIXTURES + "fairseq_like.pt")) as Map<string, unknown>;
  const exp = EXPECTED["fairseq_like.pt"];
  expect([...ck.keys()]).toEqual([
    "args",
    "cfg",
    "model",
    "criterion",
    "optimizer_history",
    "task_state",
    "extra_state",
    "last_optimizer_state",
  ]);
  if (exp.cfg_kind === "omegaconf") {
    const cfg = ck.get("cfg") as PickleObject;
    expect(cfg).toBeInstanceOf(PickleObject);
    expect(cfg.className).toBe("omegaconf.dictconfig.DictConfig");
  }
  expect(configToPlain(ck.get("cfg"))).toEqual(exp.cfg);
  const history = configToPlain(ck.get("optimizer_history"));
  expect(history).toEqual([{
    criterion_name: "CrossEntropyCriterion",
    optimizer_name: "FairseqAdam",
    lr_scheduler_state: { best: 1.25 },
    num_updates: 10,
  }]);
  const extra = ck.get("extra_state") as Map<string, unknown>;
  expect(extra.get("epoch")).toBe(2);
  expect(extra.get("val_loss")).toBe(1.25); // numpy.float64 scalar
  expect(extra.get("best_step")).toBe(42); // numpy.int64 scalar
  expect(extra.get("big_int")).toBe(2n ** 70n);
  expect(extra.get("tags")).toEqual(new Set(["a", "b"]));
  expect(extra.get("blob")).toEqual(Uint8Array.from([0, 1, 2]));
  expect(extra.get("pair")).toEqual([1, "x"]);
  assertTensor(extra.get("hist") as never, exp.hist as never, "extra_state.hist (numpy array)");
  const meter = extra.get("meter") as PickleObject;
  expect(meter).toBeInstanceOf(PickleObject);
  expect(meter.className).toBe("__main__.AverageMeter");
  expect(meter.state).toEqual(new Map<string, number>([["val", 1.5], ["sum", 3], ["count", 2]]));
  const opt = ck.get("last_optimizer_state") as Map<string, Map<number, Map<string, unknown>>>;
  assertTensor(opt.get("state")!.get(0)!.get("exp_avg") as never, exp.exp_avg as never, "exp_avg");
});

it("loadStateDict: auto-unwrap, select, stripPrefix, addPrefix", async () => {
  const fairseq = await loadStateDict(FIXTURES + "fairseq_like.pt");
  expect(fairseq.has("decoder.version"), "auto-unwrapped 'model'").toBeTruthy();
  const selected = await loadStateDict(FIXTURES + "fairseq_like.pt", { select: "model" });
  expect([...selected.keys()]).toEqual([...fairseq.keys()]);
  const enc = await loadStateDict(FIXTURES + "fairseq_like.pt", {
    stripPrefix: "pretrained_encoder.",
  });
  expect([...enc.keys()]).toEqual(["cls_token"]);
  assertTensor(
    enc.get("cls_token"),
    EXPECTED["fairseq_like.pt"].tensors["pretrained_encoder.cls_token"],
    "stripped",
  );
  const vq = await loadStateDict(FIXTURES + "vqgan_like.ckpt", { addPrefix: "vqgan." });
  expect([...vq.keys()]).toEqual([
    "vqgan.encoder.conv_in.weight",
    "vqgan.decoder.conv_out.bias",
    "vqgan.quantize.embedding.weight",
  ]);
  const file = FIXTURES + "fairseq_like.pt";
  await assertRejects(() => loadStateDict(file, { select: "weights" }), file, "'weights'", "model");
  await assertRejects(() => loadStateDict(file, { select: "extra_state" }), file, "not a tensor");
  await assertRejects(() => loadStateDict(file, { stripPrefix: "vqgan." }), file, "vqgan.");
});

it("int64 beyond int32 loads exactly, and is an error naming the key only as a state dict", async () => {
  const file = FIXTURES + "torch_i64_overflow.pt";
  const ck = (await loadTorch(file)) as Map<string, Map<string, unknown>>;
  const wide = ck.get("model")!.get("too_big") as WideIntTensor;
  expect(wide).toBeInstanceOf(WideIntTensor);
  expect([wide.at(0), wide.at(1)]).toEqual([1n, 1099511627776n]);
  await assertRejects(() => loadStateDict(file), file, "model.too_big", "1099511627776", "int32");
});

it("a REDUCE of os.system inside a torch file loads as an inert record and runs nothing", async () => {
  const marker = "/tmp/digit_io_pwned";
  await Deno.remove(marker).catch(() => {});
  const ck = (await loadTorch(FIXTURES + "torch_evil.pt")) as Map<string, unknown>;
  const payload = ck.get("payload") as PickleObject;
  expect(payload).toBeInstanceOf(PickleObject);
  expect(payload.cls).toBeInstanceOf(PickleGlobal);
  expect((payload.cls as PickleGlobal).name).toBe("system");
  expect(payload.args).toEqual(["echo pwned > /tmp/digit_io_pwned"]);
  await assertRejects(() => Deno.stat(marker), "No such file");
  await assertRejects(() => loadStateDict(FIXTURES + "torch_evil.pt"), "'payload'", "not a tensor");
});

// ---- corrupt and hand-made files ----------------------------------------------------------

it("truncated torch zip names the file", async () => {
  const bytes = await Deno.readFile(FIXTURES + "torch_zip.pt");
  const path = tempFile("cut.pt", bytes.subarray(0, bytes.length - 100));
  await assertRejects(() => loadTorch(path), path, "zip");
  await assertRejects(() => loadStateDict(path), path);
});

it("a flipped byte inside a storage is a CRC mismatch naming the entry", async () => {
  const bytes = (await Deno.readFile(FIXTURES + "torch_zip.pt")).slice();
  const zip = new ZipReader(openSource(bytes));
  const entry = zip.entries.get("torch_zip/data/0")!;
  const dv = new DataView(bytes.buffer);
  const dataAt = entry.localHeaderOffset + 30 + dv.getUint16(entry.localHeaderOffset + 26, true) +
    dv.getUint16(entry.localHeaderOffset + 28, true);
  bytes[dataAt + 3] ^= 0x40;
  const path = tempFile("flip.pt", bytes);
  await assertRejects(() => loadTorch(path), path, "CRC mismatch", "torch_zip/data/0");
});

it("bad magic and empty files are rejected with the file name", async () => {
  const junk = tempFile("junk.bin", new TextEncoder().encode("hello, this is not a tensor file"));
  await assertRejects(() => loadTorch(junk), junk, "bad magic");
  await assertRejects(() => loadStateDict(junk), junk, "bad magic");
  const empty = tempFile("empty.pt", new Uint8Array(0));
  await assertRejects(() => loadStateDict(empty), empty, "empty");
  await assertRejects(() => loadStateDict(FIXTURES + "nope.pt"), "nope.pt", "not found");
});

it("truncated legacy torch file names the file and the missing bytes", async () => {
  const bytes = await Deno.readFile(FIXTURES + "torch_legacy.pt");
  const path = tempFile("cut_legacy.pt", bytes.subarray(0, bytes.length - 10));
  await assertRejects(() => loadTorch(path), path, "truncated");
  const early = tempFile("cut_legacy2.pt", bytes.subarray(0, 200));
  await assertRejects(() => loadTorch(early), early, "truncated");
});

/** A torch zip with one tensor 'w' over storage '0', built opcode by opcode. */
function handMadeTorchZip(opts: {
  storage: string;
  numel: number;
  shape: number[];
  stride: number[];
  offset: number;
  data: Uint8Array;
  byteorder?: string;
  /** Use torch 2.x `_rebuild_tensor_v3` with this tensor dtype (e.g. "uint16"). */
  v3Dtype?: string;
}): Uint8Array {
  const rebuild = opts.v3Dtype ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2";
  const p = new PickleWriter().op(0x7d).str("w").global("torch._utils", rebuild).mark()
    .mark().str("storage").global("torch", opts.storage).str("0").str("cpu").int(opts.numel).tuple()
    .op(0x51) // BINPERSID
    .int(opts.offset).mark();
  for (const d of opts.shape) p.int(d);
  p.tuple().mark();
  for (const s of opts.stride) p.int(s);
  p.tuple().op(0x89).global("collections", "OrderedDict").op(0x29).reduce();
  if (opts.v3Dtype) p.global("torch", opts.v3Dtype);
  p.tuple().reduce().op(0x73);
  const files = [
    { name: "archive/data.pkl", data: p.bytes() },
    { name: "archive/data/0", data: opts.data },
  ];
  if (opts.byteorder) {
    files.push({ name: "archive/byteorder", data: new TextEncoder().encode(opts.byteorder) });
  }
  return encodeZip(files);
}

it("hand-made torch zip: strided view, big-endian byteorder", async () => {
  const le = new Float32Array([0, 1, 2, 3, 4, 5]);
  const zipped = handMadeTorchZip({
    storage: "FloatStorage",
    numel: 6,
    shape: [3, 2],
    stride: [1, 3], // the transpose of a (2, 3) matrix
    offset: 0,
    data: new Uint8Array(le.buffer),
  });
  const w = ((await loadTorch(zipped)) as Map<string, { data: Float32Array; shape: number[] }>).get(
    "w",
  )!;
  expect(w.shape).toEqual([3, 2]);
  expect([...w.data]).toEqual([0, 3, 1, 4, 2, 5]);

  const be = new Uint8Array(4 * 2);
  new DataView(be.buffer).setInt32(0, -7, false);
  new DataView(be.buffer).setInt32(4, 70000, false);
  const big = handMadeTorchZip({
    storage: "IntStorage",
    numel: 2,
    shape: [2],
    stride: [1],
    offset: 0,
    data: be,
    byteorder: "big",
  });
  const t = ((await loadTorch(big)) as Map<string, { data: Int32Array }>).get("w")!;
  expect([...t.data]).toEqual([-7, 70000]);
});

it("hand-made torch zip: _rebuild_tensor_v3 reads an untyped storage as the tensor dtype", async () => {
  const raw = Uint16Array.from([1, 65535, 300, 0x3c00]);
  const common = {
    storage: "UntypedStorage",
    numel: 8,
    shape: [3],
    stride: [1],
    offset: 1,
    data: new Uint8Array(raw.buffer),
  };
  const u16 = ((await loadTorch(handMadeTorchZip({ ...common, v3Dtype: "uint16" }))) as Map<
    string,
    { data: Int32Array; sourceDtype: string }
  >).get("w")!;
  expect([...u16.data]).toEqual([65535, 300, 0x3c00]);
  expect(u16.sourceDtype).toBe("u16");
  const f16 = ((await loadTorch(handMadeTorchZip({ ...common, v3Dtype: "float16" }))) as Map<
    string,
    { data: Float32Array }
  >).get("w")!;
  expect([...f16.data]).toEqual([NaN, 300 * 2 ** -24, 1]); // 0xffff is a NaN, 300 a subnormal, 0x3c00 is 1.0
});

it("storage shorter than the tensor needs is an error naming the file and storage", async () => {
  const short = handMadeTorchZip({
    storage: "FloatStorage",
    numel: 6,
    shape: [6],
    stride: [1],
    offset: 0,
    data: new Uint8Array(12), // 3 floats, not 6
  });
  const path = tempFile("short.pt", short);
  await assertRejects(() => loadTorch(path), path, "storage '0'", "12 bytes", "24");
  const overrun = handMadeTorchZip({
    storage: "FloatStorage",
    numel: 4,
    shape: [2, 2],
    stride: [2, 1],
    offset: 1, // needs elements 1..4 of a 4-element storage
    data: new Uint8Array(16),
  });
  await assertRejects(
    () => loadTorch(overrun, { name: "overrun.pt" }),
    "overrun.pt",
    "storage '0' has 4",
  );
  const unknown = handMadeTorchZip({
    storage: "ComplexFloatStorage",
    numel: 1,
    shape: [1],
    stride: [1],
    offset: 0,
    data: new Uint8Array(8),
  });
  await assertRejects(
    () => loadTorch(unknown, { name: "c.pt" }),
    "c.pt",
    "unsupported storage type 'ComplexFloatStorage'",
  );
});
