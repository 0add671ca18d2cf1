/**
 * The public API, `DigitPipeline.load(...).generate(...)`: from run folders written here the
 * way training writes them (self-describing checkpoints), from the same run in the older
 * layout (config in sidecar files), and from the released-file fixtures (a fairseq stage-1
 * .pt and MAGE-layout VQGAN .ckpt) with a stage 2 shaped to fit them.
 */

import { expect, it } from "./lib/test.ts";
import { definePlugin, DigitPipeline, imagePng, s, type Stage2Part } from "../mod.ts";
import { loadCheckpoint, saveCheckpoint } from "../core/io/checkpoint.ts";
import { decodePng } from "../core/image/png.ts";
import { hostStateDict, type Module } from "../core/nn/module.ts";
import { Rng } from "../core/random.ts";
import { liveStorages } from "../core/tensor.ts";
import { findParts } from "../plugins/pipeline/parts.ts";
import { stage1Meta } from "../plugins/stage1/load.ts";
import { type Stage1Config, Stage1GPT } from "../plugins/stage1/model.ts";
import { stage2Meta } from "../plugins/stage2/load.ts";
import { type Stage2Config, Stage2Model } from "../plugins/stage2/model.ts";
import { VQGAN, VQGAN_PRESETS, type VqganConfig } from "../plugins/vqgan/vqgan.ts";
import { vqganMeta } from "../plugins/vqgan/load.ts";

const fixtures = new URL("./fixtures/", import.meta.url).pathname;

const STAGE1: Stage1Config = {
  clusters: 6,
  classes: 3,
  layers: 1,
  dim: 16,
  heads: 2,
  ffnDim: 32,
  length: 16,
  dropout: 0,
};
const STAGE2: Stage2Config = {
  variant: "ar",
  clusters: 6,
  codebookSize: 12,
  prefixLength: 16,
  length: 16,
  layers: 1,
  dim: 16,
  heads: 2,
  ffnDim: 32,
  dropout: 0,
};
/** 16 px images, a 4x4 grid of 12 codes. */
const VQ: VqganConfig = { ...VQGAN_PRESETS.cpu16, chMult: [1, 1, 1], nEmbed: 12 };

/** Saves a model as training does: `<dir>/checkpoints/last` with `meta`. */
async function save(model: Module, dir: string, meta: Record<string, unknown>): Promise<void> {
  try {
    await Deno.mkdir(`${dir}/checkpoints`, { recursive: true });
    await saveCheckpoint(`${dir}/checkpoints/last`, await hostStateDict(model), meta);
  } finally {
    model.dispose();
  }
}

/** A run folder with the three parts; `legacy`: configs in sidecars, as older runs kept them. */
async function writeRun(root: string, legacy = false): Promise<void> {
  const s1 = stage1Meta(STAGE1), s2 = stage2Meta(STAGE2), vq = vqganMeta(VQ);
  const train = { train: { step: 3 } };
  await save(new Stage1GPT(STAGE1, new Rng(1)), `${root}/stage1`, legacy ? train : { ...s1 });
  await save(new Stage2Model(STAGE2, new Rng(2)), `${root}/stage2`, legacy ? train : s2);
  await save(new VQGAN(VQ, new Rng(3)), `${root}/vqgan`, legacy ? train : vq);
  if (legacy) {
    await Deno.writeTextFile(`${root}/stage1/model.json`, JSON.stringify(STAGE1));
    await Deno.writeTextFile(`${root}/stage2/stage2.json`, JSON.stringify(s2));
    await Deno.writeTextFile(`${root}/vqgan/vqgan.json`, JSON.stringify(vq));
  }
}

it("DigitPipeline: a run folder -> images and token grids, deterministic per seed", async () => {
  const before = liveStorages();
  const root = await Deno.makeTempDir({ prefix: "digit-api-" });
  try {
    await writeRun(`${root}/run`);
    const parts = await findParts(`${root}/run`);
    expect(parts.stage2.map((f) => f.dir)).toEqual([`${root}/run/stage2`]);

    const pipe = await DigitPipeline.load({
      stage1: `${root}/run/stage1`,
      stage2: `${root}/run/stage2`,
      vqgan: `${root}/run/vqgan/checkpoints/last.json`,
      device: "cpu",
    });
    try {
      expect(pipe.sources.stage1).toEqual({
        path: `${root}/run/stage1/checkpoints/last`,
        kind: "stage1-gpt",
      });
      expect([pipe.sources.stage2.kind, pipe.sources.vqgan.kind]).toEqual(["stage2-ar", "vqgan"]);
      expect([pipe.classes, pipe.variant, pipe.imageSize]).toEqual([3, "ar", 16]);
      const stages = new Map<string, number>();
      const out = await pipe.generate({
        classes: [2, 0],
        count: 5,
        seed: 4,
        topK: 3,
        batchSize: 2,
        onProgress: (p) => {
          expect(p.done).toBeLessThanOrEqual(p.total);
          stages.set(p.stage, p.done / p.total);
        },
      });
      expect([...stages]).toEqual([["stage 1", 1], ["stage 2", 1], ["decode", 1]]);
      expect([out.images.count, out.images.height, out.images.width]).toEqual([5, 16, 16]);
      expect(out.images.data.length).toBe(5 * 16 * 16 * 3);
      expect([out.semantic.count, out.semantic.height, out.semantic.width]).toEqual([5, 4, 4]);
      expect([out.codes.count, out.codes.height, out.codes.width]).toEqual([5, 4, 4]);
      expect(Array.from(out.classes!)).toEqual([2, 0, 2, 0, 2]);
      expect(out.semantic.tokens.every((t) => t >= 0 && t < 6)).toBe(true);
      expect(out.codes.tokens.every((t) => t >= 0 && t < 12)).toBe(true);
      const png = decodePng(imagePng(out.images, 4));
      expect([png.width, png.height]).toEqual([16, 16]);
      expect(png.data).toEqual(out.images.data.subarray(4 * 768));

      // The same options give the same images; another seed differs. (Stage 1 draws batch by
      // batch from seed + first index, as the sample step does, so the batch size is an option.)
      const again = await pipe.generate({
        classes: [2, 0],
        count: 5,
        seed: 4,
        topK: 3,
        batchSize: 2,
      });
      expect(again.semantic.tokens).toEqual(out.semantic.tokens);
      expect(again.images.data).toEqual(out.images.data);
      const other = await pipe.generate({
        classes: [2, 0],
        count: 5,
        seed: 5,
        topK: 3,
        batchSize: 2,
      });
      expect(other.semantic.tokens).not.toEqual(out.semantic.tokens);
      await expect(pipe.generate({ classes: 3 })).rejects.toThrow(/class 3 is outside 0\.\.2/);

      // dir= finds each part under a folder by its checkpoint kind.
      const found = await DigitPipeline.load({ dir: `${root}/run`, device: "cpu" });
      try {
        expect(found.sources.stage2.path).toBe(`${root}/run/stage2/checkpoints/last`);
        const f = await found.generate({
          classes: [2, 0],
          count: 5,
          seed: 4,
          topK: 3,
          batchSize: 2,
        });
        expect(f.images.data).toEqual(out.images.data);
      } finally {
        found.dispose();
      }

      // A run from before checkpoints described themselves (sidecar configs) loads the same.
      await writeRun(`${root}/old`, true);
      const old = await DigitPipeline.load({
        stage1: `${root}/old/stage1`,
        stage2: `${root}/old/stage2/checkpoints/last`,
        vqgan: `${root}/old/vqgan`,
        device: "cpu",
      });
      try {
        const o = await old.generate({ classes: [2, 0], count: 5, seed: 4, topK: 3, batchSize: 2 });
        expect(o.images.data).toEqual(out.images.data);
      } finally {
        old.dispose();
      }
    } finally {
      pipe.dispose();
    }

    // A part given in the wrong slot is named by its kind.
    await expect(DigitPipeline.load({
      stage1: `${root}/run/stage2`,
      stage2: `${root}/run/stage2`,
      vqgan: `${root}/run/vqgan`,
      device: "cpu",
    })).rejects.toThrow(/is a stage 2 checkpoint \(kind 'stage2-ar'\), given as stage 1/);
    expect(liveStorages()).toBe(before);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

it("DigitPipeline: the released-file fixtures (fairseq stage-1 .pt, MAGE-layout VQGAN .ckpt)", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-api-released-" });
  try {
    // The fixtures: stage 1 with 8 clusters and 256 tokens; a VQGAN of 32 codes on a 4x4 grid.
    // A stage 2 (MaskGIT) shaped to join them, saved as training saves one.
    const cfg: Stage2Config = {
      ...STAGE2,
      variant: "nar",
      clusters: 8,
      prefixLength: 256,
      codebookSize: 32,
    };
    await save(new Stage2Model(cfg, new Rng(5)), `${root}/stage2`, stage2Meta(cfg));
    const pipe = await DigitPipeline.load({
      stage1: `${fixtures}digit/stage1_classcond.pt`,
      stage2: `${root}/stage2`,
      vqgan: `${fixtures}vqgan/tiny.ckpt`,
      vqganConfig: { normGroups: 8, resolution: 16 },
      device: "cpu",
    });
    try {
      expect([pipe.sources.stage1.kind, pipe.sources.stage2.kind, pipe.sources.vqgan.kind])
        .toEqual(["stage1-fairseq", "stage2-maskgit", "vqgan-weights"]);
      expect(pipe.variant).toBe("nar");
      const out = await pipe.generate({ classes: 1, count: 2, seed: 0, stage2: { steps: 2 } });
      expect([out.images.count, out.images.height, out.images.width]).toEqual([2, 16, 16]);
      expect([out.semantic.height, out.semantic.width]).toEqual([16, 16]);
      expect(Array.from(out.classes!)).toEqual([1, 1]);
      expect(out.codes.tokens.every((t) => t >= 0 && t < 32)).toBe(true);
    } finally {
      pipe.dispose();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** A third-party stage 2: image token = semantic token + `shift` (mod the codebook). */
const shiftStage2 = definePlugin({
  name: "shift-stage2",
  version: "1",
  register(r) {
    r.generator({
      name: "shift-stage2",
      slot: "stage2",
      options: s.object({ checkpoint: s.string() }),
      create: async (o) => {
        const { meta } = await loadCheckpoint(o.checkpoint);
        const { shift } = (meta as { config: { shift: number } }).config;
        const part: Stage2Part = {
          name: "shift-stage2",
          variant: "ar",
          conditionVocab: STAGE2.clusters,
          conditionLength: STAGE2.prefixLength,
          vocabSize: STAGE2.codebookSize,
          length: STAGE2.length,
          sample: (q) => {
            const c = q.condition!;
            const tokens = c.tokens.map((t) => (t + shift) % STAGE2.codebookSize);
            return Promise.resolve({ ...c, tokens });
          },
          dispose() {},
        };
        return part;
      },
    });
  },
});

it("DigitPipeline: a plugin's stage 2 (a generator with slot: stage2) is built by its kind", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-api-plugin-" });
  try {
    await writeRun(`${root}/run`);
    await Deno.mkdir(`${root}/shift/checkpoints`, { recursive: true });
    await saveCheckpoint(`${root}/shift/checkpoints/last`, new Map(), {
      kind: "shift-stage2",
      config: { shift: 5 },
    });
    const pipe = await DigitPipeline.load({
      stage1: `${root}/run/stage1`,
      stage2: `${root}/shift`,
      vqgan: `${root}/run/vqgan`,
      device: "cpu",
      plugins: [shiftStage2],
    });
    try {
      expect(pipe.sources.stage2.kind).toBe("shift-stage2");
      const out = await pipe.generate({ classes: 1, count: 2, seed: 3, topK: 3 });
      expect(Array.from(out.codes.tokens)).toEqual(
        Array.from(out.semantic.tokens, (t) => (t + 5) % STAGE2.codebookSize),
      );
    } finally {
      pipe.dispose();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
