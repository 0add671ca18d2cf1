/**
 * The demo's `guidance-sweep` builds its parts through plugins/pipeline (as `sample` does) and
 * scores each guidance scale with the domain classifier: its accuracy at a scale must be what
 * the same chain gives when run by hand with the networks' own samplers.
 */

import { expect, it } from "./lib/test.ts";
import { cpuBackend } from "../core/device.ts";
import { saveCheckpoint } from "../core/io/checkpoint.ts";
import { hostStateDict, type Module } from "../core/nn/module.ts";
import { Rng } from "../core/random.ts";
import { memoryLogger, Registry, type StepContext } from "../core/registry.ts";
import { guidanceSweep, sweepParams } from "../plugins/demo/guidance_sweep.ts";
import { validate } from "../core/config.ts";
import { CLASSIFIER_KIND } from "../plugins/domain/checkpoint.ts";
import { classify } from "../plugins/domain/features.ts";
import { DomainClassifier } from "../plugins/domain/model.ts";
import builtins from "../plugins/mod.ts";
import { stage1Meta } from "../plugins/stage1/load.ts";
import { Stage1GPT } from "../plugins/stage1/model.ts";
import { sampleStage1 } from "../plugins/stage1/sampler.ts";
import { sampleStage2 } from "../plugins/stage2/generator.ts";
import { stage2Meta } from "../plugins/stage2/load.ts";
import { Stage2Model } from "../plugins/stage2/model.ts";
import { VQGAN, VQGAN_PRESETS } from "../plugins/vqgan/vqgan.ts";
import { vqganMeta } from "../plugins/vqgan/load.ts";

const TINY = { layers: 1, dim: 16, heads: 2, ffnDim: 32, dropout: 0 };
const S1 = { ...TINY, clusters: 6, classes: 3, length: 16 };
const S2 = {
  ...TINY,
  variant: "ar" as const,
  clusters: 6,
  codebookSize: 12,
  prefixLength: 16,
  length: 16,
};
const VQ = { ...VQGAN_PRESETS.cpu16, chMult: [1, 1, 1], nEmbed: 12 };
const CLS = { imageSize: 16, numClasses: 3, channels: [8, 8, 8] as [number, number, number] };

async function save(model: Module, path: string, meta: unknown): Promise<void> {
  await Deno.mkdir(path.replace(/\/[^/]+$/, ""), { recursive: true });
  await saveCheckpoint(path, await hostStateDict(model), meta);
}

it("guidance-sweep: parts built by plugins/pipeline, accuracy as the chain run by hand", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-sweep-" });
  const stage1 = new Stage1GPT(S1, new Rng(1));
  const stage2 = new Stage2Model(S2, new Rng(2));
  const vqgan = new VQGAN(VQ, new Rng(3));
  const classifier = new DomainClassifier({ ...CLS, featureDim: 8, groups: 2 }, 4);
  try {
    await save(stage1, `${root}/stage1/checkpoints/last`, stage1Meta(S1));
    await save(stage2, `${root}/stage2/checkpoints/last`, stage2Meta(S2));
    await save(vqgan, `${root}/vqgan/checkpoints/last`, vqganMeta(VQ));
    await save(classifier, `${root}/domain/last`, {
      kind: CLASSIFIER_KIND,
      version: 1,
      config: classifier.cfg,
      classNames: ["a", "b", "c"],
    });
    const registry = new Registry();
    for (const p of builtins) await registry.use(p);
    const ctx: StepContext = {
      registry,
      device: "cpu",
      backend: cpuBackend(),
      log: memoryLogger(),
      outputDir: root,
      signal: new AbortController().signal,
      stepName: "sweep",
      stepDir: root,
      outputs: {},
    };
    const p = validate(sweepParams, {
      stage1: `${root}/stage1`,
      stage2: `${root}/stage2/checkpoints/last`,
      vqgan: `${root}/vqgan/checkpoints/last`,
      classifier: `${root}/domain/last`,
      scales: [1, 2],
      per_class: 2,
      batch_size: 4,
      top_k: 3,
    }, "test");
    const points = await guidanceSweep(p, ctx);
    expect(points.map((q) => [q.guidance, q.images])).toEqual([[1, 6], [2, 6]]);

    // Scale 2 by hand: the same seeds, batches and samplers.
    let right = 0;
    for (let i = 0; i < 6; i += 4) {
      const n = Math.min(4, 6 - i);
      const wanted = Int32Array.from({ length: n }, (_, j) => (i + j) % 3);
      const semantic = await sampleStage1(stage1, {
        count: n,
        seed: p.seed + i,
        topK: 3,
        guidance: 2,
        classes: wanted,
      });
      const vq = await sampleStage2(stage2, semantic, { seed: p.seed, firstIndex: i, topP: 0.8 });
      const { predicted } = await classify(classifier, await vqgan.decode(vq));
      predicted.forEach((c, j) => (right += c === wanted[j] ? 1 : 0));
    }
    expect(points[1].classAccuracy).toBe(right / 6);
  } finally {
    for (const m of [stage1, stage2, vqgan, classifier]) m.dispose();
    await Deno.remove(root, { recursive: true });
  }
});
