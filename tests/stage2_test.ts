/**
 * Stage 2: the forward pass against a fairseq-layout fixture (pre-LN, two position
 * tables, logits after the prefix; tests/fixtures/make_vqgan_fixtures.py), checkpoint
 * loading, the MaskGIT schedule, AR cached vs uncached sampling, NAR decoding, and
 * training below the unigram baseline.
 */

import { expect, it } from "./lib/test.ts";
import { validate } from "../core/config.ts";
import { loadStateDict } from "../core/io/state_dict.ts";
import { writeTokenFile } from "../core/io/tokens.ts";
import * as ops from "../core/ops/mod.ts";
import { Rng } from "../core/random.ts";
import { liveStorages, tidy } from "../core/tensor.ts";
import { stage2ConfigSchema } from "../plugins/stage2/config.ts";
import {
  arBatch,
  narBatch,
  narMaskCount,
  type PairSet,
  readPairSet,
  vqUnigramEntropy,
} from "../plugins/stage2/data.ts";
import { loadDigitStage2, loadStage2 } from "../plugins/stage2/load.ts";
import { maskgitSchedule, sampleNAR } from "../plugins/stage2/maskgit.ts";
import { SPECIALS, Stage2Model } from "../plugins/stage2/model.ts";
import { sampleAR } from "../plugins/stage2/sample_ar.ts";
import { trainStage2 } from "../plugins/stage2/train.ts";

const dir = new URL("./fixtures/vqgan/", import.meta.url).pathname;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const tinyConfig = (variant: "ar" | "nar", P = 9, L = 9) => ({
  variant,
  clusters: 20,
  codebookSize: 12,
  prefixLength: P,
  length: L,
  layers: 2,
  dim: 32,
  heads: 4,
  ffnDim: 64,
  dropout: 0.1,
});

const grid = (tokens: number[], count: number, side: number) => ({
  tokens: Int32Array.from(tokens),
  count,
  height: side,
  width: side,
});

it("DiGIT stage-2 checkpoint loads (decoder.* and vqgan.*) and its logits match the fairseq reference (1e-4)", async () => {
  const { model, vqgan, fairseqConfig } = await loadDigitStage2(dir + "stage2_tiny.pt", {
    prefixLength: 4,
    length: 4,
    vqgan: { normGroups: 8 },
  });
  expect(model.cfg.variant).toBe("ar");
  expect([
    model.cfg.clusters,
    model.cfg.codebookSize,
    model.cfg.layers,
    model.cfg.dim,
    model.cfg.heads,
  ]).toEqual([12, 10, 2, 16, 2]);
  expect((fairseqConfig!.task as Record<string, unknown>).source_vocab_size).toBe(12);
  expect(vqgan && vqgan.cfg.nEmbed === 32, "the VQGAN comes from the vqgan.* keys").toBeTruthy();
  expect(model.semanticId(0), "semantic c -> (V+5)+5+c").toBe(10 + 5 + 5);
  const io = await loadStateDict(dir + "stage2_io.pt");
  for (const variant of ["ar", "nar"] as const) {
    tidy(() => {
      (model.cfg as { variant: string }).variant = variant;
      const t = io.get(`${variant}_tokens`)!;
      const logits = model.forward(ops.tensor(t.data, t.shape, { dtype: "i32" }));
      expect(logits.shape).toEqual([2, 5, 15]);
      const err = maxAbsDiff(logits.dataSync(), io.get(`${variant}_logits`)!.data);
      expect(err, `${variant} logits max abs error ${err}`).toBeLessThan(1e-4);
    });
  }
  model.dispose();
  vqgan!.dispose();
});

it("MaskGIT schedule: 5,15,24,31,39,45,48,49 for L=256, T=8; the formula for other T and L", () => {
  expect(maskgitSchedule(256, 8)).toEqual([5, 15, 24, 31, 39, 45, 48, 49]);
  // Independent statement of DiGIT's rule: masked after step s is
  // max(1, min(masked_before - 1, floor(L cos(pi/2 (s+1)/T)))), and 0 after the last step.
  for (const [L, T] of [[256, 4], [256, 10], [256, 12], [64, 8], [16, 3], [256, 1], [4, 8]]) {
    let masked = L;
    const want: number[] = [];
    for (let s = 0; s < T; s++) {
      const after = s === T - 1
        ? 0
        : Math.max(1, Math.min(masked - 1, Math.floor(L * Math.cos(Math.PI / 2 * (s + 1) / T))));
      want.push(masked - after);
      masked = after;
    }
    const got = maskgitSchedule(L, T);
    expect(got, `L=${L} T=${T}`).toEqual(want);
    expect(got.reduce((a, b) => a + b, 0)).toBe(L);
  }
  // Training masks: floor(L cos(pi/2 u)) + 1, capped at L.
  expect(narMaskCount(256, 0)).toBe(256);
  expect(narMaskCount(256, 0.5)).toBe(Math.floor(256 * Math.SQRT1_2) + 1);
  expect(narMaskCount(256, 0.999999)).toBe(1);
});

it("NAR decoding follows the schedule on the real code path, leaves no masks, never emits specials", async () => {
  const before = liveStorages();
  const model = new Stage2Model(
    { ...tinyConfig("nar", 256, 256), dim: 16, heads: 2, ffnDim: 32 },
    new Rng(3),
  );
  const g = new Rng(9);
  const sem = grid(Array.from({ length: 2 * 256 }, () => g.int(20)), 2, 16);
  const steps: number[][] = [];
  const out = await sampleNAR(model, sem, { seed: 5, onStep: (s) => steps.push(s.masked) });
  // Masked counts after each step for L=256, T=8 (DiGIT's derived list), then 0.
  expect(steps).toEqual([251, 236, 212, 181, 142, 97, 49, 0].map((m) => [m, m]));
  expect(out.tokens.length).toBe(512);
  expect(out.tokens.every((t) => t >= 0 && t < 12), "codes only: no <unk> left, no specials")
    .toBeTruthy();
  const again = await sampleNAR(model, sem, { seed: 5 });
  expect(again.tokens, "same seed, same codes").toEqual(out.tokens);
  // Per-image streams: the second image decoded alone (firstIndex 1) gives the same codes.
  const alone = await sampleNAR(model, { ...sem, count: 1, tokens: sem.tokens.slice(256) }, {
    seed: 5,
    firstIndex: 1,
  });
  expect(alone.tokens).toEqual(out.tokens.slice(256));
  model.dispose();
  expect(liveStorages(), "no leaked storages").toBe(before);
});

/** A tiny aligned model whose neighbourhood conv has random (non-zero) weights. */
function contextModel(seed: number): Stage2Model {
  const model = new Stage2Model(
    { ...tinyConfig("ar"), semanticInput: "aligned", semanticContext: 3 },
    new Rng(seed),
  );
  const w = model.semantic_context!.weight;
  const g = new Rng(seed + 100);
  const values = Float32Array.from({ length: w.size }, () => 0.2 * g.normal());
  model.loadStateDict(
    new Map([["semantic_context.weight", {
      dtype: "f32",
      shape: [...w.shape],
      data: values,
      sourceDtype: "F32",
    }]]),
    { strict: false },
  );
  return model;
}

for (const semanticInput of ["prefix", "aligned", "aligned, context 3"] as const) {
  it(`AR sampling (${semanticInput}): KV-cached and uncached generation give the same codes for the same seed`, async () => {
    const before = liveStorages();
    const model = semanticInput === "aligned, context 3"
      ? contextModel(4)
      : new Stage2Model({ ...tinyConfig("ar"), semanticInput }, new Rng(4));
    const g = new Rng(2);
    const sem = grid(Array.from({ length: 3 * 9 }, () => g.int(20)), 3, 3);
    for (
      const opts of [{ seed: 11 }, { seed: 12, topP: 1, temperature: 1.5 }, { seed: 13, topK: 3 }]
    ) {
      const cached = await sampleAR(model, sem, opts);
      const uncached = await sampleAR(model, sem, { ...opts, cache: false });
      expect(Array.from(cached.tokens), JSON.stringify(opts)).toEqual(Array.from(uncached.tokens));
      expect(cached.tokens.every((t) => t >= 0 && t < 12)).toBeTruthy();
      expect([cached.count, cached.height, cached.width]).toEqual([3, 3, 3]);
    }
    model.dispose();
    expect(liveStorages(), "no leaked storages").toBe(before);
  });
}

/** (L+1) x V logits of one image with the semantic ids `sem` and the codes `codes`. */
function imageLogits(model: Stage2Model, sem: number[], codes: number[]): number[] {
  const ids = [
    ...sem.map((c) => model.semanticId(c)),
    SPECIALS.eos,
    ...codes.map((v) => model.vqId(v)),
  ];
  return tidy(() =>
    Array.from(
      model.forward(ops.tensor(ids, [1, ids.length], { dtype: "i32" })).dataSync(),
    )
  );
}

/** How much each position's logits move when semantic token k changes. */
function positionDiffs(model: Stage2Model, sem: number[], codes: number[], k: number): number[] {
  const V = model.vqDictSize;
  const changed = sem.slice();
  changed[k] = (changed[k] + 7) % 20;
  const base = imageLogits(model, sem, codes), other = imageLogits(model, changed, codes);
  return Array.from(
    { length: codes.length + 1 },
    (_, j) => maxAbsDiff(base.slice(j * V, (j + 1) * V), other.slice(j * V, (j + 1) * V)),
  );
}

it("aligned stage 2: semantic token k reaches the logits of position k (which predicts code k+1) and no earlier one", () => {
  const P = 9, L = 9;
  const model = new Stage2Model({ ...tinyConfig("ar"), semanticInput: "aligned" }, new Rng(5))
    .eval();
  const g = new Rng(3);
  const sem = Array.from({ length: P }, () => g.int(20));
  const codes = Array.from({ length: L }, () => g.int(12));
  for (const k of [0, 4, 8]) {
    positionDiffs(model, sem, codes, k).forEach((d, j) => {
      if (j < k) expect(d, `position ${j} must not see semantic token ${k}`).toBe(0);
      if (j === k) {
        expect(d, `position ${k} must see semantic token ${k} (diff ${d})`).toBeGreaterThan(1e-3);
      }
    });
  }
  model.dispose();
});

it("aligned stage 2 with context 3: starts as plain aligned input, then position j reads the tokens around semantic token j", () => {
  const P = 9, L = 9;
  const g = new Rng(3);
  const sem = Array.from({ length: P }, () => g.int(20));
  const codes = Array.from({ length: L }, () => g.int(12));
  // Same seed, conv drawn after the decoder and zeroed: the plain aligned model's logits.
  const plain = new Stage2Model({ ...tinyConfig("ar"), semanticInput: "aligned" }, new Rng(5))
    .eval();
  const fresh = new Stage2Model(
    { ...tinyConfig("ar"), semanticInput: "aligned", semanticContext: 3 },
    new Rng(5),
  ).eval();
  expect(maxAbsDiff(imageLogits(plain, sem, codes), imageLogits(fresh, sem, codes))).toBe(0);
  plain.dispose();
  fresh.dispose();

  const model = contextModel(5).eval();
  // On the 3x3 grid, token 8 (bottom right) has the neighbours 4, 5 and 7; token 5 has 1, 2, 4 and 8.
  for (const [k, first] of [[8, 4], [5, 1]]) {
    positionDiffs(model, sem, codes, k).forEach((d, j) => {
      if (j < first) expect(d, `position ${j} must not see semantic token ${k}`).toBe(0);
      if (j === first) {
        expect(d, `position ${j} must see its neighbour ${k} (diff ${d})`).toBeGreaterThan(1e-3);
      }
    });
  }
  model.dispose();
});

it("stage 2 rejects a semantic context without aligned input or with an even side", () => {
  expect(() => new Stage2Model({ ...tinyConfig("ar"), semanticContext: 3 })).toThrow(
    /semantic_context 3 needs semantic_input aligned/,
  );
  expect(() =>
    new Stage2Model({ ...tinyConfig("ar"), semanticInput: "aligned", semanticContext: 2 })
  ).toThrow(/an odd side/);
});

it("NAR training batches mask floor(L cos(pi/2 u))+1 codes as <unk> and score only those", () => {
  const model = new Stage2Model(tinyConfig("nar", 4, 8));
  const set: PairSet = {
    semantic: Int32Array.from([1, 2, 3, 4]),
    vq: Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7]),
    count: 1,
    prefixLength: 4,
    length: 8,
  };
  const gen = new Rng(1);
  const u = new Rng(1).uniform();
  tidy(() => {
    const { ids, targets, masked } = narBatch(model, set, [0], gen);
    expect(masked).toBe(narMaskCount(8, u));
    const x = Array.from(ids.dataSync()), t = Array.from(targets.dataSync());
    expect(x.slice(0, 5)).toEqual([
      model.semanticId(1),
      model.semanticId(2),
      model.semanticId(3),
      model.semanticId(4),
      SPECIALS.eos,
    ]);
    expect(t[0], "</s> is never scored").toBe(-100);
    for (let j = 0; j < 8; j++) {
      if (x[5 + j] === SPECIALS.unk) expect(t[1 + j]).toBe(j + 5);
      else expect([x[5 + j], t[1 + j]]).toEqual([j + 5, -100]);
    }
    expect(x.filter((v) => v === SPECIALS.unk).length).toBe(masked);
  });
  model.dispose();
});

it("stage-2 token files: semantic + VQ core token files pair up; mismatched counts are named", async () => {
  const dir = await Deno.makeTempDir();
  const sem = Int32Array.from({ length: 2 * 4 }, (_, i) => i),
    vq = Int32Array.from({ length: 2 * 9 }, (_, i) => i % 5);
  await writeTokenFile(`${dir}/s.tokens`, { tokens: sem, count: 2, height: 2, width: 2, vocab: 8 });
  await writeTokenFile(`${dir}/v.tokens`, { tokens: vq, count: 2, height: 3, width: 3, vocab: 5 });
  await writeTokenFile(`${dir}/v1.tokens`, {
    tokens: vq.slice(0, 9),
    count: 1,
    height: 3,
    width: 3,
    vocab: 5,
  });
  const set = await readPairSet(`${dir}/s.tokens`, `${dir}/v.tokens`);
  expect([set.count, set.prefixLength, set.length, set.clusters, set.codebookSize]).toEqual([
    2,
    4,
    9,
    8,
    5,
  ]);
  await expect(() => readPairSet(`${dir}/s.tokens`, `${dir}/v1.tokens`)).rejects.toThrow(
    /has 2 images but .*v1\.tokens has 1/,
  );
  await Deno.remove(dir, { recursive: true });
});

/**
 * Each image has a class c (one of 4); its semantic tokens come from c's quarter of the
 * clusters, and its codes follow a class-specific spatial pattern, with 10% noise. So the
 * codes are predictable only through the prefix (the class) and their own position.
 */
function pairedSet(count: number, seed: number, K = 16, V = 32, L = 16, classes = 4): PairSet {
  const g = new Rng(seed);
  const pattern = (c: number, i: number) => (c * 11 + i * 5 + ((i * c) % 3)) % V;
  const semantic = new Int32Array(count * L), vq = new Int32Array(count * L);
  for (let n = 0; n < count; n++) {
    const c = g.int(classes);
    for (let i = 0; i < L; i++) {
      semantic[n * L + i] = c * (K / classes) + g.int(K / classes);
      vq[n * L + i] = g.uniform() < 0.1 ? g.int(V) : pattern(c, i);
    }
  }
  return { semantic, vq, count, prefixLength: L, length: L };
}

for (
  const [name, semantic_input, semantic_context] of [
    ["st2vtlm", "prefix", 1],
    ["st2vtlm", "aligned", 1],
    ["st2vtlm", "aligned", 3],
    ["st2vtlm_nar", "prefix", 1],
  ] as const
) {
  it(`stage 2 (${name}, ${semantic_input}, context ${semantic_context}) learns: validation NLL falls well below the VQ unigram entropy`, async () => {
    const trainSet = pairedSet(256, 1), validSet = pairedSet(32, 2);
    const out = await Deno.makeTempDir();
    const cfg = validate(stage2ConfigSchema, {
      task: {
        tokens: "(memory)",
        vq_tokens: "(memory)",
        source_vocab_size: 16,
        target_vocab_size: 32,
      },
      dataset: { batch_size: 16 },
      optimization: { max_update: 100, lr: 3e-3 },
      lr_scheduler: { warmup_updates: 10 },
      checkpoint: { save_interval_updates: 50 },
      model: { _name: name, preset: "tiny", dropout: 0, semantic_input, semantic_context },
      output: { dir: out },
    }, "test");
    const { model, result } = await trainStage2(cfg, trainSet, validSet, out);
    const baseline = vqUnigramEntropy(trainSet, 32, name === "st2vtlm");
    console.log(
      `${name}: unigram ${baseline.toFixed(3)} nats, best validation NLL ${
        result.bestValid!.toFixed(3)
      }`,
    );
    // Measured: unigram 3.42-3.45 nats; best validation NLL 0.94 (AR) and 0.80 (NAR) after 100 updates.
    expect(baseline, `baseline ${baseline}`).toBeGreaterThan(3);
    expect(result.bestValid!, `valid NLL ${result.bestValid} vs unigram ${baseline}`).toBeLessThan(
      0.4 * baseline,
    );
    // The checkpoint reloads with its config (recorded in its meta) and gives the same logits.
    const { model: again } = await loadStage2(`${out}/checkpoints/last`);
    tidy(() => {
      const ids = arBatch(model, validSet, [0, 1]).ids;
      expect(maxAbsDiff(again.forward(ids).dataSync(), model.eval().forward(ids).dataSync())).toBe(
        0,
      );
    });
    again.dispose();
    model.dispose();
    await Deno.remove(out, { recursive: true });
  });
}

it("train-stage2 refuses fewer image pairs than one batch, naming the key", async () => {
  const out = await Deno.makeTempDir();
  const cfg = validate(stage2ConfigSchema, {
    task: {
      tokens: "(memory)",
      vq_tokens: "(memory)",
      source_vocab_size: 16,
      target_vocab_size: 32,
    },
    dataset: { batch_size: 64 },
    optimization: { max_update: 10, lr: 3e-3 },
    model: { _name: "st2vtlm", preset: "tiny", dropout: 0 },
    output: { dir: out },
  }, "test");
  await expect(() => trainStage2(cfg, pairedSet(20, 1), null, out)).rejects.toThrow(
    /20 image pairs, fewer than one batch of dataset.batch_size = 64/,
  );
  await Deno.remove(out, { recursive: true });
});
