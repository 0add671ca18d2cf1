/**
 * The tokenizer plugin: the `kmeans` tokenizer and the three offline commands of DiGIT's
 * tokenizer pipeline as task steps.
 *
 *   steps:
 *     - { name: features, type: dump-features,
 *         params: { dataset: { kind: imagefolder, root: data/train }, encoder: { name: dinov2, options: { checkpoint: w.pth } } } }
 *     - { name: kmeans, type: fit-kmeans, params: { features: "${steps.features.outputs.features}", k: 8192 } }
 *     - { name: lloyd-1, type: kmeans-lloyd-step,     # optional: more iterations, shardable
 *         params: { features: "${steps.features.outputs.features}", centroids: "${steps.kmeans.outputs.centroids}" } }
 *     - { name: tokens, type: tokenize-dataset,
 *         params: { dataset: ..., encoder: ..., centroids: "${steps.kmeans.outputs.centroids}" } }
 *
 * The encoder is any registered encoder (`dinov2`, or a plugin's own, see examples/custom-encoder).
 */

import { type Infer, s } from "../../core/config.ts";
import type { Dataset } from "../../core/data/dataset.ts";
import { type DatasetSpec, openDataset } from "../../core/data/mod.ts";
import type { Encoder } from "../../core/interfaces.ts";
import { definePlugin, type RunContext, type StepContext } from "../../core/registry.ts";
import { centroidFileName, readCentroids } from "../kmeans/centroids.ts";
import { INIT_METHODS } from "../kmeans/init.ts";
import {
  LLOYD_REPORT,
  type LloydInputs,
  lloydIteration,
  type LloydOutputs,
  lloydShard,
  mergeLloydShards,
} from "../kmeans/lloyd_shard.ts";
import {
  concatTokenFiles,
  linkOrCopy,
  readSlice,
  shardSlice,
  sliceFiles,
  writeSlice,
} from "../../core/shard.ts";
import {
  dumpFeatures,
  dumpFeatureSlice,
  MANIFEST,
  mergeFeatureSlices,
  readManifest,
} from "./dump.ts";
import { fitCentroids } from "./fit.ts";
import { KMeansTokenizer } from "./kmeans_tokenizer.ts";
import { tokenizeDataset } from "./tokenize.ts";

const encoderRef = s.object({
  name: s.string({ nonEmpty: true }).default("dinov2").describe("a registered encoder"),
  options: s.any().default({}).describe("the encoder's options"),
}).describe("which encoder makes the features");

const datasetSpec = s.any().describe(
  "dataset: { kind: imagefolder, root } | { kind: list, dir, tsv, numClasses } | ... (core/data)",
);

async function makeEncoder(
  ref: { name: string; options?: unknown },
  ctx: RunContext,
): Promise<Encoder> {
  return await ctx.registry.create(
    "encoders",
    ref.name,
    ref.options,
    ctx,
    `encoder '${ref.name}' options`,
  );
}

function disposeEncoder(e: Encoder): void {
  e.dispose?.();
}

const dumpParams = s.object({
  dataset: datasetSpec,
  encoder: encoderRef,
  fraction: s.number({ min: 0, max: 1 }).default(0.1).describe(
    "probability of keeping each image (DiGIT: 0.1)",
  ),
  seed: s.int().default(0),
  images_per_shard: s.int({ min: 1 }).default(512),
  batch_size: s.int({ min: 1 }).default(8),
});

const fitParams = s.object({
  features: s.string({ nonEmpty: true }).describe("features.json written by dump-features"),
  k: s.int({ min: 1 }).default(8192),
  iterations: s.int({ min: 0 }).default(20),
  init: s.enum(INIT_METHODS).default("random").describe("random (faiss's) or kmeans++"),
  seed: s.int().default(1234),
  max_points_per_centroid: s.int({ min: 0 }).default(256).describe(
    "subsample to K x this many rows (faiss); 0 keeps all",
  ),
  spherical: s.bool().default(false),
});

const lloydParams = s.object({
  features: s.string({ nonEmpty: true }).describe("features.json written by dump-features"),
  centroids: s.string({ nonEmpty: true }).describe(
    "(K, D) float32 .npy from fit-kmeans or an earlier kmeans-lloyd-step",
  ),
  block_rows: s.int({ min: 1 }).default(1 << 20).describe(
    "rows per block of statistics; shards cover whole blocks (the float64 rounding depends on it, not on the shard count)",
  ),
});

/** kmeans-lloyd-step's inputs: the feature files of a finished dump, in row order. */
async function lloydInputs(
  p: Infer<typeof lloydParams>,
  ctx: StepContext,
): Promise<LloydInputs> {
  const manifest = await readManifest(p.features);
  if (!manifest.complete) {
    throw new Error(
      `kmeans-lloyd-step: ${p.features} is an unfinished dump; run dump-features again to complete it`,
    );
  }
  const dir = p.features.includes("/") ? p.features.slice(0, p.features.lastIndexOf("/")) : ".";
  return {
    features: manifest.shards.map((s) => `${dir}/${s.file}`),
    centroids: p.centroids,
    blockRows: p.block_rows,
    backend: ctx.backend,
    signal: ctx.signal,
    log: ctx.log,
    onProgress: (done, total) => ctx.log.progress("kmeans-lloyd-step", done, total),
  };
}

function lloydOutputs(ctx: StepContext): LloydOutputs {
  return { centroids: ctx.outputs.centroids, report: ctx.outputs.report };
}

const tokenizeParams = s.object({
  dataset: datasetSpec,
  encoder: encoderRef,
  centroids: s.string({ nonEmpty: true }).describe("(K, D) float32 .npy, e.g. km_8k.npy"),
  batch_size: s.int({ min: 1 }).default(16),
  labels: s.bool().optional().describe(
    "store class labels (default: when the dataset has classes)",
  ),
});

/** tokenize-dataset's work, for the whole dataset or a shard's `range` of it. */
async function tokenizeWith(
  p: Infer<typeof tokenizeParams>,
  ctx: StepContext,
  dataset: Dataset,
  range?: { start: number; end: number },
): Promise<void> {
  const tokenizer = new KMeansTokenizer(
    await makeEncoder(p.encoder, ctx),
    readCentroids(p.centroids),
    {
      batchSize: p.batch_size,
      ownsEncoder: true,
    },
  );
  try {
    await tokenizeDataset({
      dataset,
      tokenizer,
      out: ctx.outputs.tokens,
      batchSize: p.batch_size,
      labels: p.labels,
      log: ctx.log,
      signal: ctx.signal,
      range,
    });
  } finally {
    tokenizer.dispose();
  }
}

export default definePlugin({
  name: "digit-tokenizer",
  version: "0.1.0",
  description: "K-Means semantic tokenizer: dump features, fit centroids, tokenize datasets",
  register(r) {
    r.tokenizer({
      name: "kmeans",
      description: "nearest K-Means centroid of each encoder feature (DiGIT's semantic tokens)",
      options: s.object({
        encoder: encoderRef,
        centroids: s.string({ nonEmpty: true }),
        batch_size: s.int({ min: 1 }).default(16),
      }),
      create: async (o, ctx) =>
        new KMeansTokenizer(await makeEncoder(o.encoder, ctx), readCentroids(o.centroids), {
          batchSize: o.batch_size,
          ownsEncoder: true,
        }),
    });
    r.step({
      name: "dump-features",
      description:
        "encoder features of a seeded fraction of a dataset, as sharded .npy (resumable)",
      params: dumpParams,
      outputs: () => ({ features: MANIFEST }),
      complete: async (_p, out) => (await readManifest(out.features)).complete,
      run: async (p, ctx) => {
        const dataset = await openDataset(p.dataset as DatasetSpec);
        const encoder = await makeEncoder(p.encoder, ctx);
        try {
          const dir = ctx.outputs.features.slice(0, ctx.outputs.features.lastIndexOf("/")) || ".";
          await dumpFeatures({
            dataset,
            encoder,
            outDir: dir,
            fraction: p.fraction,
            seed: p.seed,
            imagesPerShard: p.images_per_shard,
            batchSize: p.batch_size,
            log: ctx.log,
            signal: ctx.signal,
          });
        } finally {
          disposeEncoder(encoder);
        }
      },
      // A shard encodes a contiguous run of whole feature files into its own folder; the
      // merge links them into the step folder and writes the complete manifest.
      shardable: {
        run: async (p, ctx, shard) => {
          const dataset = await openDataset(p.dataset as DatasetSpec);
          const encoder = await makeEncoder(p.encoder, ctx);
          try {
            let files = { start: 0, end: 0 };
            await dumpFeatureSlice({
              dataset,
              encoder,
              outDir: shard.dir,
              fraction: p.fraction,
              seed: p.seed,
              imagesPerShard: p.images_per_shard,
              batchSize: p.batch_size,
              log: ctx.log,
              signal: ctx.signal,
            }, (count) => (files = shardSlice(count, shard)));
            await writeSlice(shard.dir, { ...files, unit: "feature files" });
          } finally {
            disposeEncoder(encoder);
          }
        },
        merge: async (_p, ctx, shards) => {
          const parts = await Promise.all(
            shards.map(async (s) => ({ dir: s.dir, ...(await readSlice(s.dir)) })),
          );
          const dir = ctx.outputs.features.slice(0, ctx.outputs.features.lastIndexOf("/")) || ".";
          await mergeFeatureSlices(parts, dir, linkOrCopy);
        },
      },
    });
    r.step({
      name: "fit-kmeans",
      description: "faiss-like K-Means over dumped features; writes km_{K//1000}k.npy",
      params: fitParams,
      outputs: (p) => ({ centroids: centroidFileName(p.k) }),
      run: async (p, ctx) => {
        await fitCentroids(p.features, {
          k: p.k,
          iterations: p.iterations,
          init: p.init,
          seed: p.seed,
          maxPointsPerCentroid: p.max_points_per_centroid,
          spherical: p.spherical,
          out: ctx.outputs.centroids,
          log: ctx.log,
          signal: ctx.signal,
        });
      },
    });
    r.step({
      name: "kmeans-lloyd-step",
      description:
        "one Lloyd iteration over every dumped feature row from given centroids; shardable",
      params: lloydParams,
      // The input's file name (km_8k.npy stays km_8k.npy): K is not known while planning.
      outputs: (p) => ({
        centroids: p.centroids.slice(p.centroids.lastIndexOf("/") + 1),
        report: LLOYD_REPORT,
      }),
      run: async (p, ctx) => {
        await lloydIteration(await lloydInputs(p, ctx), lloydOutputs(ctx));
      },
      // A shard keeps per-block float64 statistics of whole row blocks; the merge folds them
      // in order (plugins/kmeans/lloyd_shard.ts).
      shardable: {
        run: async (p, ctx, shard) => {
          await lloydShard(await lloydInputs(p, ctx), shard);
        },
        merge: async (p, ctx, shards) => {
          await mergeLloydShards(p.centroids, p.block_rows, shards, lloydOutputs(ctx), ctx.log);
        },
      },
    });
    r.step({
      name: "tokenize-dataset",
      description: "semantic tokens of every image of a dataset, as a token file for stage 1 and 2",
      params: tokenizeParams,
      outputs: () => ({ tokens: "dataset.tokens" }),
      run: async (p, ctx) => {
        await tokenizeWith(p, ctx, await openDataset(p.dataset as DatasetSpec));
      },
      // A shard tokenizes whole batches [start, end) of the dataset; the merge concatenates.
      shardable: {
        run: async (p, ctx, shard) => {
          const dataset = await openDataset(p.dataset as DatasetSpec);
          const range = shardSlice(dataset.length, shard, p.batch_size);
          if (range.end > range.start) await tokenizeWith(p, ctx, dataset, range);
          await writeSlice(shard.dir, { ...range, total: dataset.length, unit: "images" });
        },
        merge: async (_p, ctx, shards) => {
          const files = await sliceFiles(shards, "dataset.tokens");
          await concatTokenFiles(files, ctx.outputs.tokens);
        },
      },
    });
  },
});
