/**
 * Loading DiGIT's fairseq stage-1 checkpoints: tiny stand-ins made by
 * tests/fixtures/make_digit_fixtures.py, whose logits come from a plain-torch fairseq forward.
 */

import { expect, it } from "./lib/test.ts";
import { readNpz } from "../core/io/npy.ts";
import { StateDictError } from "../core/io/state_dict.ts";
import { loadTorch } from "../core/io/torch.ts";
import * as ops from "../core/ops/mod.ts";
import { tidy } from "../core/tensor.ts";
import { digitStage1FromCheckpoint, loadDigitStage1 } from "../plugins/stage1/digit_checkpoint.ts";
import { Stage1GPT } from "../plugins/stage1/model.ts";

const dir = new URL("./fixtures/digit/", import.meta.url).pathname;
const expected = await readNpz(dir + "expected.npz");

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Logits of the loaded model on the fixture's token batch against torch's (f32, 1e-4). */
async function checkFile(name: string, sizes: { classes: number }) {
  const { model, centroids, encoderWeights } = await loadDigitStage1(`${dir}${name}.pt`);
  try {
    expect({ ...model.cfg }).toEqual({
      clusters: 8,
      classes: sizes.classes,
      layers: 2,
      dim: 16,
      heads: 2,
      ffnDim: 32,
      length: 256,
      dropout: 0.1,
    });
    expect(model.training, "returned in eval mode").toBe(false);
    // fairseq's table: max_target_positions 1024 + 2 rows; ours for 256 tokens is the same
    expect(model.decoder.embed_positions.count).toBe(1026);

    const km = expected.get(`${name}.km`)!;
    expect(centroids.shape, "centroids are (K, D) like km_8k.npy").toEqual(km.shape);
    expect([...centroids.data]).toEqual([...km.data]);

    expect([...encoderWeights.keys()]).toEqual(["cls_token", "blocks.0.norm1.weight"]);
    expect([...encoderWeights.get("cls_token")!.data]).toEqual([
      ...expected.get(`${name}.encoder.cls_token`)!.data,
    ]);

    const tok = expected.get(`${name}.tokens`)!;
    const want = expected.get(`${name}.logits`)!;
    tidy(() => {
      const logits = model.forward(ops.tensor(tok.data, tok.shape, { dtype: "i32" }));
      expect(logits.shape).toEqual(want.shape);
      const err = maxAbsDiff(logits.dataSync(), want.data);
      expect(err, `${name}: logits differ from torch by ${err}`).toBeLessThan(1e-4);
    });
  } finally {
    model.dispose();
  }
}

it("DiGIT stage-1 checkpoint (DictConfig cfg, f32): config, logits, centroids, encoder", async () => {
  await checkFile("stage1_uncond", { classes: 0 });
});

it("DiGIT stage-1 checkpoint (plain-dict cfg, f16, class-conditional): the same", async () => {
  await checkFile("stage1_classcond", { classes: 3 });
});

it("Stage1GPT's position table for 256 tokens has fairseq's 1026 rows", () => {
  const m = new Stage1GPT({
    clusters: 4,
    classes: 0,
    layers: 1,
    dim: 8,
    heads: 2,
    ffnDim: 8,
    length: 256,
    dropout: 0,
  });
  expect(m.decoder.embed_positions.count).toBe(1024 + 2);
  m.dispose();
});

it("a decoder that does not match the cfg is refused with one report naming every key", async () => {
  const file = `${dir}stage1_uncond.pt`;
  const fresh = async () => (await loadTorch(file)) as Map<string, unknown>;

  const ck = await fresh();
  const sd = ck.get("model") as Map<string, unknown>;
  sd.delete("decoder.layers.1.fc2.bias");
  sd.set("decoder.layer_norm.weight", sd.get("decoder.layers.0.fc2.bias"));
  sd.set("decoder.layers.0.fc1.bias", sd.get("decoder.layers.0.fc2.bias")); // 16 rows, not 32
  const error = (() => {
    try {
      digitStage1FromCheckpoint(ck, file);
    } catch (e) {
      return e;
    }
  })();
  expect(error, String(error)).toBeInstanceOf(StateDictError);
  const { message } = error as StateDictError;
  for (
    const s of [
      file,
      "missing keys (1): decoder.layers.1.fc2.bias",
      "unexpected keys (1): decoder.layer_norm.weight",
      "decoder.layers.0.fc1.bias: expected [32], got [16]",
    ]
  ) expect(message).toContain(s);
  expect(message, "decoder.version is not a weight").not.toContain("decoder.version");

  // cfg sizes that disagree with the weights
  const wide = await fresh();
  const cfg = (wide.get("cfg") as { state: Map<string, unknown> }).state.get("_content") as Map<
    string,
    { state: Map<string, unknown> }
  >;
  const model = cfg.get("model")!.state.get("_content") as Map<
    string,
    { state: Map<string, unknown> }
  >;
  model.get("decoder_ffn_embed_dim")!.state.set("_val", 64);
  expect(() => digitStage1FromCheckpoint(wide, file)).toThrow(
    /fc1\.weight: expected \[64,16\], got \[32,16\]/,
  );
  model.get("decoder_normalize_before")!.state.set("_val", true);
  expect(() => digitStage1FromCheckpoint(wide, file)).toThrow(
    /unsupported stage-1 architecture: cfg\.model\.decoder_normalize_before = true/,
  );
  model.get("decoder_normalize_before")!.state.set("_val", false);
  model.get("decoder_layers")!.state.set("_val", "???");
  expect(() => digitStage1FromCheckpoint(wide, file)).toThrow(
    /cfg\.model\.decoder_layers is "\?\?\?", expected a positive integer/,
  );

  // a position table that Stage1GPT cannot build
  const short = await fresh();
  const pos = (short.get("model") as Map<string, { shape: number[]; data: Float32Array }>)
    .get("decoder.embed_positions.weight")!;
  pos.shape = [302, 16];
  pos.data = pos.data.subarray(0, 302 * 16);
  expect(() => digitStage1FromCheckpoint(short, file)).toThrow(
    /embed_positions.weight has 302 rows \(max_target_positions 300\), but cfg\.model\.max_target_positions is 1024/,
  );

  // no centroids: not a DiGIT stage-1 file
  const noKm = await fresh();
  (noKm.get("model") as Map<string, unknown>).delete("centroids");
  expect(() => digitStage1FromCheckpoint(noKm, file)).toThrow(/no 'centroids'/);
});
