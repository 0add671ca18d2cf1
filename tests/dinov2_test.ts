/**
 * DINOv2 against PyTorch (tests/fixtures/make_dinov2_fixtures.py): a ViT/14-reg4 of the
 * official layout with random weights (width 64, 4 heads, depth 4 to keep the fixture small),
 * loaded from a torch.save .pth; preprocessing, "l3" features and the final output for both
 * position-table recipes, and the antialiased bicubic on its own.
 */

import { expect, it } from "./lib/test.ts";
import { rejected } from "./lib/errors.ts";
import type { HostTensor, StateDict } from "../core/io/host_tensor.ts";
import { readNpz } from "../core/io/npy.ts";
import { loadStateDict } from "../core/io/state_dict.ts";
import { liveStorages, tidy } from "../core/tensor.ts";
import { noGrad } from "../core/autograd.ts";
import { resizeAntialiasBicubic } from "../plugins/dinov2/antialias.ts";
import { configFromStateDict, DINOV2_PRESETS } from "../plugins/dinov2/config.ts";
import { Dinov2Encoder } from "../plugins/dinov2/encoder.ts";
import { loadDinov2 } from "../plugins/dinov2/load.ts";
import { resizePosTable } from "../plugins/dinov2/pos_embed.ts";
import { DinoVisionTransformer } from "../plugins/dinov2/vision_transformer.ts";
import { probeWebGPU } from "../core/backends/webgpu/mod.ts";
import { cpuBackend, setDefaultBackend, useDevice } from "../core/device.ts";
import { SwiGLUFFN } from "../plugins/dinov2/mlp.ts";
import * as ops from "../core/ops/mod.ts";
import type { ImageBatch } from "../core/interfaces.ts";

const dir = new URL("./fixtures/dinov2/", import.meta.url).pathname;
const meta = JSON.parse(await Deno.readTextFile(dir + "tiny_vit.json"));
const weights = await loadStateDict(dir + "tiny_vit.pth");
const io = await readNpz(dir + "tiny_vit_io.npz");
const get = (k: string): HostTensor => {
  const t = io.get(k);
  if (!t) throw new Error(`fixture has no '${k}'`);
  return t;
};

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length, "lengths differ").toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function images(): ImageBatch {
  const t = get("images");
  return {
    data: Uint8Array.from(t.data),
    count: t.shape[0],
    height: t.shape[1],
    width: t.shape[2],
  };
}

it("the fixture's architecture is read from its shapes", () => {
  const cfg = configFromStateDict(weights);
  expect(cfg.embedDim).toBe(meta.dim);
  expect(cfg.depth).toBe(meta.depth);
  expect(cfg.registers).toBe(meta.registers);
  expect(cfg.mlpHidden).toBe(meta.mlp);
  expect(cfg.posGrid).toBe(meta.grid);
  expect(cfg.patchSize).toBe(14);
});

it("position table: DiGIT recipe and antialiased hub recipe match torch (1e-5)", () => {
  const pos = weights.get("pos_embed")!.data as Float32Array;
  for (const recipe of ["digit", "hub"] as const) {
    const ours = resizePosTable(pos, meta.dim, 16, 16, recipe);
    const err = maxAbsDiff(ours, get(`pos_${recipe}`).data);
    expect(err, `${recipe}: max abs error ${err}`).toBeLessThanOrEqual(1e-5);
  }
  // The two recipes really differ (so the test above can tell them apart).
  expect(maxAbsDiff(get("pos_digit").data, get("pos_hub").data)).toBeGreaterThan(1e-2);
  // 37x37 is used as is.
  expect(resizePosTable(pos, meta.dim, 37, 37, "hub")).toEqual(pos);
});

it("antialiased bicubic matches torch on a non-square plane, down and up (1e-5)", () => {
  const x = get("aa_in"), want = get("aa_out");
  const [, planes, h, w] = x.shape;
  const [, , oh, ow] = want.shape;
  const got = resizeAntialiasBicubic(x.data, planes, h, w, oh, ow);
  const err = maxAbsDiff(got, want.data);
  expect(err, `max abs error ${err}`).toBeLessThanOrEqual(1e-5);
});

for (const recipe of ["digit", "hub"] as const) {
  it(`${recipe} recipe: preprocessing, l3 features, CLS and final output match torch (1e-4)`, async () => {
    const before = liveStorages();
    const model = await loadDinov2(weights, { heads: meta.heads, recipe });
    const enc = new Dinov2Encoder(model);
    expect(enc.block).toBe(meta.depth - 3);
    tidy(() =>
      noGrad(() => {
        const x = enc.preprocess(images());
        expect(x.shape).toEqual([2, 3, 224, 224]);
        const rows = x.slice(2, 0, 8).dataSync();
        const errIn = maxAbsDiff(rows, get("input_rows").data);
        expect(errIn, `input rows: max abs error ${errIn}`).toBeLessThanOrEqual(1e-5);

        const l3 = enc.encode(x);
        expect(l3.shape).toEqual([2, 256, meta.dim]);
        const errL3 = maxAbsDiff(l3.dataSync(), get(`l3_${recipe}`).data);
        expect(errL3, `l3: max abs error ${errL3}`).toBeLessThanOrEqual(1e-4);

        const cls = model.clsFeatures(x, enc.block);
        const errCls = maxAbsDiff(cls.dataSync(), get(`l3_cls_${recipe}`).data);
        expect(errCls, `l3 CLS: max abs error ${errCls}`).toBeLessThanOrEqual(1e-4);

        const out = model.forwardFeatures(x);
        const errP = maxAbsDiff(out.patches.dataSync(), get(`final_patch_${recipe}`).data);
        const errC = maxAbsDiff(out.cls.dataSync(), get(`final_cls_${recipe}`).data);
        expect(errP, `final patches: max abs error ${errP}`).toBeLessThanOrEqual(1e-4);
        expect(errC, `final CLS: max abs error ${errC}`).toBeLessThanOrEqual(1e-4);
        expect(out.registers.shape).toEqual([2, meta.registers, meta.dim]);
      })
    );
    enc.dispose();
    expect(liveStorages(), "live storages after dispose").toBe(before);
  });
}

it("a DiGIT checkpoint's pretrained_encoder.* keys load; other keys are ignored", async () => {
  const wrapped: StateDict = new Map();
  for (const [k, v] of weights) wrapped.set(`pretrained_encoder.${k}`, v);
  wrapped.set("decoder.embed_tokens.weight", {
    dtype: "f32",
    shape: [2, 2],
    data: new Float32Array(4),
    sourceDtype: "f32",
  });
  const model = await loadDinov2(wrapped, { heads: meta.heads });
  expect(model.cfg.depth).toBe(meta.depth);
  model.dispose();
});

it("block-chunked keys (blocks.<chunk>.<i>.*) load as blocks.<i>.*", async () => {
  const chunked: StateDict = new Map();
  for (const [k, v] of weights) {
    chunked.set(
      k.replace(/^blocks\.(\d+)\./, (_m, i) => `blocks.${Number(i) < 2 ? 0 : 1}.${i}.`),
      v,
    );
  }
  expect(chunked.has("blocks.1.3.norm1.weight")).toBeTruthy();
  const model = await loadDinov2(chunked, { heads: meta.heads });
  expect(model.cfg.depth).toBe(meta.depth);
  model.dispose();
});

it("strict loading lists missing, unexpected and mis-shaped keys", async () => {
  const broken: StateDict = new Map(weights);
  broken.delete("blocks.1.ls1.gamma");
  broken.set("blocks.1.attn.extra", weights.get("norm.bias")!);
  broken.set("norm.bias", {
    dtype: "f32",
    shape: [3],
    data: new Float32Array(3),
    sourceDtype: "f32",
  });
  const e = await rejected(() => loadDinov2(broken, { heads: meta.heads }));
  expect(e.message).toMatch(/missing keys \(1\): blocks\.1\.ls1\.gamma/);
  expect(e.message).toMatch(/unexpected keys \(1\): blocks\.1\.attn\.extra/);
  expect(e.message).toMatch(/norm\.bias: expected \[64\], got \[3\]/);
});

/** Shapes of a preset's state dict without any data (the size check reads shapes only). */
function shapesOnly(model: DinoVisionTransformer): StateDict {
  const sd: StateDict = new Map();
  for (const [k, t] of model.stateDict()) {
    sd.set(k, { dtype: "f32", shape: [...t.shape], data: new Float32Array(0), sourceDtype: "f32" });
  }
  return sd;
}

it("a checkpoint of another ViT size names both sizes", async () => {
  // A ViT-S/14-reg4-shaped dict, checked against ViT-B/14-reg4.
  const small = new DinoVisionTransformer(DINOV2_PRESETS.vits14_reg);
  const sd = shapesOnly(small);
  small.dispose();
  const e = await rejected(() => loadDinov2(sd, { arch: "vitb14_reg" }));
  expect(e.message).toMatch(/holds a ViT-S\/14-reg4 \(dim 384, depth 12, 4 registers\)/);
  expect(e.message).toMatch(/model is ViT-B\/14-reg4 \(dim 768, depth 12, 4 registers\)/);
  await expect(() => loadDinov2(sd, { arch: "vitx" })).rejects.toThrow(
    /unknown architecture 'vitx'/,
  );
});

it("presets have the published sizes", () => {
  const count = (name: string) => {
    const m = new DinoVisionTransformer(DINOV2_PRESETS[name]);
    const n = m.numParameters();
    m.dispose();
    return n;
  };
  // spec §6 (measured with the reference code): ViT-B/14-reg4 86,583,552 parameters.
  expect(count("vitb14_reg")).toBe(86_583_552);
  expect(DINOV2_PRESETS.vitg14.mlpHidden).toBe(4096);
});

it("wrong image sizes and wrong encode inputs are reported with the sizes", async () => {
  const model = await loadDinov2(weights, { heads: meta.heads });
  const enc = new Dinov2Encoder(model);
  const bad: ImageBatch = {
    data: new Uint8Array(1 * 200 * 200 * 3),
    count: 1,
    height: 200,
    width: 200,
  };
  expect(() => enc.preprocess(bad)).toThrow(
    /images are 200x200 but the encoder takes 256x256 \(resized to 224\) or 224x224/,
  );
  tidy(() => {
    const x = enc.preprocess({
      data: new Uint8Array(224 * 224 * 3),
      count: 1,
      height: 224,
      width: 224,
    });
    expect(x.shape).toEqual([1, 3, 224, 224]);
  });
  expect(() => model.blockFromEnd(5)).toThrow(/layer 5 from the end is outside 1..4/);
  enc.dispose();
});

it("SwiGLU feed-forward (ViT-g) matches torch (1e-5)", () => {
  const ffn = new SwiGLUFFN(meta.dim, 40);
  const w = (k: string) => get(`swiglu_${k}`);
  ffn.loadStateDict(
    new Map([
      ["w12.weight", w("w12_weight")],
      ["w12.bias", w("w12_bias")],
      ["w3.weight", w("w3_weight")],
      ["w3.bias", w("w3_bias")],
    ]),
  );
  tidy(() => {
    const x = ops.tensor(w("x").data, w("x").shape);
    const err = maxAbsDiff(ffn.forward(x).dataSync(), w("out").data);
    expect(err, `max abs error ${err}`).toBeLessThanOrEqual(1e-5);
  });
  ffn.dispose();
});

it("l3 features never run the blocks after depth-3; the cached position table is reused", async () => {
  // NaN weights in the last block poison the final output but must not reach l3.
  const poisoned: StateDict = new Map(weights);
  const fc2 = weights.get(`blocks.${meta.depth - 1}.mlp.fc2.weight`)!;
  poisoned.set(`blocks.${meta.depth - 1}.mlp.fc2.weight`, {
    ...fc2,
    data: new Float32Array(fc2.data.length).fill(NaN),
  });
  const model = await loadDinov2(poisoned, { heads: meta.heads });
  const enc = new Dinov2Encoder(model);
  tidy(() =>
    noGrad(() => {
      const x = enc.preprocess(images());
      const err = maxAbsDiff(enc.encode(x).dataSync(), get("l3_digit").data);
      expect(err, `l3 with a poisoned last block: ${err}`).toBeLessThanOrEqual(1e-4);
      expect(Number.isNaN(model.forwardFeatures(x).patches.dataSync()[0])).toBeTruthy();
      expect(model.positions(16, 16)).toBe(model.positions(16, 16));
    })
  );
  enc.dispose();
});

it.skipIf(!(await probeWebGPU()).available)(
  "webgpu: the same model code gives torch's l3 features on WebGPU, with no readback (1e-4)",
  async () => {
    await useDevice("webgpu");
    try {
      const model = await loadDinov2(weights, { heads: meta.heads, recipe: "digit" });
      const enc = new Dinov2Encoder(model);
      const l3 = tidy(() => noGrad(() => enc.encode(enc.preprocess(images()))).keep());
      expect(l3.backend.name).toBe("webgpu");
      const err = maxAbsDiff(await l3.data(), get("l3_digit").data);
      expect(err, `l3 on webgpu: max abs error ${err}`).toBeLessThanOrEqual(1e-4);
      l3.dispose();
      enc.dispose();
    } finally {
      setDefaultBackend(cpuBackend());
    }
  },
);

it("DINOv2 Block runs its sub-modules' forward methods: an edit to Attention.forward shows, and the fused epilogue equals LayerScale.forward", async () => {
  const { Block } = await import("../plugins/dinov2/block.ts");
  const { Rng } = await import("../core/random.ts");
  const cfg = { ...DINOV2_PRESETS["vits14"], embedDim: 16, heads: 2, mlpHidden: 32 };
  const block = new Block(cfg);
  const gen = new Rng(3);
  for (const p of block.parameters()) {
    const fresh = ops.randn(p.shape, gen, 0.3);
    p.backend.copyInto(p.view(), fresh.view());
    fresh.dispose();
  }
  const x = ops.randn([2, 5, 16], gen);
  const host = (t: ReturnType<typeof ops.randn>) => Float32Array.from(t.dataSync() as Float32Array);
  noGrad(() => {
    const fused = host(block.forward(x));
    // The same block composed from unfused pieces: x + ls1(attn(norm1 x)), then the MLP branch.
    const h = block.ls1.forward(block.attn.forward(block.norm1.forward(x)), x);
    const composed = host(block.ls2.forward(block.mlp.forward(block.norm2.forward(h)), h));
    let worst = 0;
    fused.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - composed[i]))));
    expect(worst, `fused vs composed block: max |diff| ${worst} (tolerance 1e-5)`).toBeLessThan(
      1e-5,
    );
    // Someone adding, say, qk-norm edits Attention.forward: the block's output must change.
    const original = block.attn.forward.bind(block.attn);
    let calls = 0;
    block.attn.forward = (t, out) => (calls++, original(ops.mul(t, 0.5), out));
    const edited = host(block.forward(x));
    expect(calls).toBe(1);
    expect(
      edited.some((v, i) => Math.abs(v - fused[i]) > 1e-4),
      "editing Attention.forward changed nothing",
    ).toBeTruthy();
  });
  x.dispose();
  block.dispose();
});
