/**
 * `train-tokenizer` (what `deno task train tokenizer` runs): the three offline steps of
 * DiGIT's tokenizer in one go, for a dataset and an optional held-out set:
 *
 *   dump-features (a seeded fraction of the images) -> fit-kmeans -> tokenize-dataset
 *
 * Outputs, in the step's folder: features/ (the dump), km_<K>.npy (the centroids),
 * train.tokens and, with `valid_dataset`, valid.tokens: the token files stage 1 and
 * stage 2 read (configs/stage1.yaml points at them). The work is done by plugins/tokenizer;
 * this step only chains it so that one command produces everything.
 */

import { type Infer, s } from "../../core/config.ts";
import { type DatasetSpec, openDataset } from "../../core/data/mod.ts";
import type { StepContext } from "../../core/registry.ts";
import { centroidFileName, readCentroids } from "../kmeans/centroids.ts";
import { INIT_METHODS } from "../kmeans/init.ts";
import { dumpFeatures, MANIFEST } from "../tokenizer/dump.ts";
import { fitCentroids } from "../tokenizer/fit.ts";
import { KMeansTokenizer } from "../tokenizer/kmeans_tokenizer.ts";
import { tokenizeDataset } from "../tokenizer/tokenize.ts";

const datasetSpec = s.any().describe(
  "dataset: { kind: shapes, size, length, seed } | { kind: imagefolder, root } | ... (core/data)",
);

export const trainTokenizerParams = s.object({
  dataset: datasetSpec.default({ kind: "shapes", size: 32, length: 2048, seed: 0 }),
  valid_dataset: datasetSpec.optional().describe("held-out set, tokenized to valid.tokens"),
  encoder: s.object({
    name: s.string({ nonEmpty: true }).default("random-projection").describe(
      "a registered encoder (dinov2 needs weights)",
    ),
    options: s.any().default({}),
  }).default({ name: "random-projection", options: {} }),
  k: s.int({ min: 2 }).default(64).describe("K-Means clusters: the semantic vocabulary"),
  fraction: s.number({ min: 0, max: 1 }).default(0.25).describe(
    "share of images whose features fit K-Means (DiGIT: 0.1)",
  ),
  iterations: s.int({ min: 0 }).default(20),
  init: s.enum(INIT_METHODS).default("kmeans++"),
  seed: s.int().default(1234),
  batch_size: s.int({ min: 1 }).default(64),
});
export type TrainTokenizerParams = Infer<typeof trainTokenizerParams>;

export function trainTokenizerOutputs(p: TrainTokenizerParams): Record<string, string> {
  return {
    centroids: centroidFileName(p.k),
    tokens: "train.tokens",
    ...(p.valid_dataset !== undefined ? { valid_tokens: "valid.tokens" } : {}),
  };
}

export async function trainTokenizer(p: TrainTokenizerParams, ctx: StepContext): Promise<void> {
  const encoder = await ctx.registry.create(
    "encoders",
    p.encoder.name,
    p.encoder.options,
    ctx,
    `encoder '${p.encoder.name}' options`,
  );
  try {
    const dataset = await openDataset(p.dataset as DatasetSpec);
    const featureDir = `${ctx.stepDir}/features`;
    await dumpFeatures({
      dataset,
      encoder,
      outDir: featureDir,
      fraction: p.fraction,
      seed: p.seed,
      imagesPerShard: 512,
      batchSize: p.batch_size,
      log: ctx.log,
      signal: ctx.signal,
    });
    await fitCentroids(`${featureDir}/${MANIFEST}`, {
      k: p.k,
      iterations: p.iterations,
      init: p.init,
      seed: p.seed,
      out: ctx.outputs.centroids,
      log: ctx.log,
      signal: ctx.signal,
    });
    const tokenizer = new KMeansTokenizer(encoder, readCentroids(ctx.outputs.centroids), {
      batchSize: p.batch_size,
    });
    try {
      const sets: [unknown, string][] = [[p.dataset, ctx.outputs.tokens]];
      if (p.valid_dataset !== undefined) sets.push([p.valid_dataset, ctx.outputs.valid_tokens]);
      for (const [spec, out] of sets) {
        await tokenizeDataset({
          dataset: await openDataset(spec as DatasetSpec),
          tokenizer,
          out,
          batchSize: p.batch_size,
          log: ctx.log,
          signal: ctx.signal,
        });
      }
    } finally {
      tokenizer.dispose();
    }
  } finally {
    encoder.dispose?.();
  }
}
