/**
 * The stage-1 plugin: registers `train-stage1` (what `deno task train stage1` runs),
 * `sample-stage1` (semantic token grids from a trained model) and `probe-stage1`.
 */

import { type Infer, s } from "../../core/config.ts";
import { experimentDir, experimentPath } from "../../core/tasks.ts";
import { readTokenFile, writeTokenFile } from "../../core/io/tokens.ts";
import { concatTokenFiles, shardSlice, sliceFiles, writeSlice } from "../../core/shard.ts";
import { definePlugin, type StepContext } from "../../core/registry.ts";
import { TrainReporter } from "../../core/train/reporter.ts";
import { stage1ConfigSchema, type Stage1TrainConfig } from "./config.ts";
import type { TokenSet } from "./data.ts";
import { loadStage1 } from "./load.ts";
import { sampleStage1 } from "./sampler.ts";
import { trainStage1 } from "./train.ts";
import { linearProbe, pooledFeatures } from "./probe.ts";

export { loadStage1 };

async function tokenSet(path: string): Promise<TokenSet> {
  const f = await readTokenFile(path);
  return {
    tokens: f.tokens,
    count: f.count,
    length: f.height * f.width,
    clusters: f.vocab,
    labels: f.labels,
    classNames: f.classNames,
  };
}

/**
 * Guidance mixes in the unconditional (</s>-start) path, which a model only learns when it
 * was trained with class dropout; say so rather than let guidance silently add noise.
 */
async function warnUnlearnedGuidance(dir: string, ctx: StepContext): Promise<void> {
  const trained = await Deno.readTextFile(`${dir}/config.json`).then(JSON.parse).catch(() => null);
  const rate = trained?.model?.class_dropout_prob ?? 0;
  if (trained?.model?.class_conditional && rate === 0) {
    ctx.log.warn(
      `${dir} was trained without class dropout (model.class_dropout_prob = 0): its unconditional path is untrained, so guidance mixes in noise`,
    );
  }
}

async function train(cfg: Stage1TrainConfig, ctx: StepContext): Promise<void> {
  const backend = ctx.backend;
  ctx.log.info(`device: ${backend.name} (${backend.description})`);
  const dir = experimentDir(cfg.output.dir, ctx.stepDir);
  await Deno.mkdir(dir, { recursive: true });
  const trainSet = await tokenSet(cfg.task.tokens);
  const validSet = cfg.task.valid_tokens ? await tokenSet(cfg.task.valid_tokens) : null;
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(cfg, null, 2));
  using report = new TrainReporter(dir, ctx.log, {
    signal: ctx.signal,
    fresh: ctx.fresh,
    label: "stage 1",
    unit: "tok",
  });
  const { model, result } = await trainStage1(cfg, trainSet, validSet, dir, report.hooks);
  model.dispose();
  report.finish(result);
}

const sampleParams = s.object({
  model: s.string({
    nonEmpty: true,
    description: "stage-1 experiment folder (holds checkpoints/)",
  }),
  count: s.int({ min: 1 }).default(16),
  seed: s.int().default(0),
  top_k: s.int({ min: 0 }).default(200),
  top_p: s.number({ min: 0, max: 1 }).default(1),
  temperature: s.number({ positive: true }).default(1),
  guidance: s.number({ min: 0 }).default(1),
  /** Class ids for a class-conditional model, cycled over the samples. */
  classes: s.array(s.int({ min: 0 })).default([]),
  batch_size: s.int({ min: 1 }).default(16),
});

const probeParams = s.object({
  model: s.string({ nonEmpty: true }),
  train_tokens: s.string({ nonEmpty: true }),
  eval_tokens: s.string({ nonEmpty: true }),
  epochs: s.int({ min: 1 }).default(30),
  batch_size: s.int({ min: 1 }).default(64),
  lr: s.number({ positive: true }).default(0.4),
  seed: s.int().default(0),
});

type SampleParams = Infer<typeof sampleParams>;

/**
 * Samples [start, end) of the `count` grids into ctx.outputs.tokens. Batch b covers samples
 * [b, b + batch_size) and draws from seed + b, so a grid depends on its global index (and
 * batch_size), never on which process makes it; `start` must be a multiple of batch_size.
 */
async function sampleSlice(
  p: SampleParams,
  ctx: StepContext,
  start: number,
  end: number,
): Promise<void> {
  if (start % p.batch_size !== 0) {
    throw new Error(`sample-stage1: a slice must start on a batch boundary, got ${start}`);
  }
  const model = await loadStage1(p.model);
  try {
    if (p.guidance !== 1) await warnUnlearnedGuidance(p.model, ctx);
    const all: Int32Array[] = [];
    let height = 0, width = 0;
    for (let i = start; i < end; i += p.batch_size) {
      const n = Math.min(p.batch_size, end - i);
      const classes = p.classes.length
        ? Int32Array.from({ length: n }, (_, j) => p.classes[(i + j) % p.classes.length])
        : undefined;
      const grid = await sampleStage1(model, {
        count: n,
        seed: p.seed + i,
        topK: p.top_k,
        topP: p.top_p,
        temperature: p.temperature,
        guidance: p.guidance,
        classes,
        // d of t tokens are drawn for each of this batch's n samples: count sample-tokens.
        onProgress: (d, t) =>
          ctx.log.progress("stage-1 sampling", (i - start) * t + d * n, (end - start) * t),
      });
      all.push(grid.tokens);
      height = grid.height;
      width = grid.width;
    }
    const tokens = new Int32Array(all.reduce((s, a) => s + a.length, 0));
    let at = 0;
    for (const a of all) (tokens.set(a, at), at += a.length);
    await writeTokenFile(ctx.outputs.tokens, {
      tokens,
      count: end - start,
      height,
      width,
      vocab: model.cfg.clusters,
      source: `sample-stage1 ${p.model}`,
      labels: p.classes.length
        ? Int32Array.from(
          { length: end - start },
          (_, j) => p.classes[(start + j) % p.classes.length],
        )
        : undefined,
    });
  } finally {
    model.dispose();
  }
}

export default definePlugin({
  name: "digit-stage1",
  version: "0.1.0",
  description: "DiGIT stage 1: GPT over semantic tokens (train, sample, linear probe)",
  register(r) {
    r.step({
      name: "train-stage1",
      description: "train the stage-1 GPT on a token file",
      params: stage1ConfigSchema,
      outputs: (p) => ({ checkpoint: experimentPath(p.output.dir, "checkpoints/last.json") }),
      run: train,
    });
    r.step({
      name: "sample-stage1",
      description: "sample semantic token grids from a trained stage-1 model",
      params: sampleParams,
      outputs: () => ({ tokens: "samples.tokens" }),
      run: async (p, ctx) => {
        await sampleSlice(p, ctx, 0, p.count);
      },
      // Shards start on batch boundaries, so shard batches are the whole run's batches with
      // the same seeds (seed + first index of the batch): identical grids, concatenated.
      shardable: {
        run: async (p, ctx, shard) => {
          const range = shardSlice(p.count, shard, p.batch_size);
          if (range.end > range.start) await sampleSlice(p, ctx, range.start, range.end);
          await writeSlice(shard.dir, { ...range, total: p.count, unit: "samples" });
        },
        merge: async (_p, ctx, shards) => {
          await concatTokenFiles(await sliceFiles(shards, "samples.tokens"), ctx.outputs.tokens);
        },
      },
    });
    r.step({
      name: "probe-stage1",
      description: "linear probe of every stage-1 layer (mean-pooled features, SGD + cosine)",
      params: probeParams,
      outputs: () => ({ report: "probe.json" }),
      run: async (p, ctx) => {
        const model = await loadStage1(p.model);
        const tr = await tokenSet(p.train_tokens), ev = await tokenSet(p.eval_tokens);
        if (!tr.labels || !ev.labels) throw new Error("probe-stage1: both token files need labels");
        const classes = Math.max(...tr.labels, ...ev.labels) + 1;
        const result = await linearProbe(
          await pooledFeatures(model, tr),
          tr.labels,
          await pooledFeatures(model, ev),
          ev.labels,
          classes,
          {
            epochs: p.epochs,
            batchSize: p.batch_size,
            lr: p.lr,
            seed: p.seed,
            onProgress: (d, t) => ctx.log.progress("probe", d, t),
          },
        );
        result.accuracy.forEach((a, d) =>
          ctx.log.info(`probe depth ${d}: top-1 ${(100 * a).toFixed(1)}%`)
        );
        await Deno.writeTextFile(ctx.outputs.report, JSON.stringify(result, null, 2));
        model.dispose();
      },
    });
  },
});
