/**
 * The metrics plugin: FID, IS and encoder Frechet distances as registry metrics, and the steps
 *   eval                  score a folder of generated images (what `digit eval` runs)
 *   prepare-imagenet-val  ImageNet val -> Resize(256) + CenterCrop(256) PNGs, the FID reference
 *   feature-stats         Inception statistics of a folder (eval's reference), shardable
 */

import { s } from "../../core/config.ts";
import { definePlugin, type RunContext } from "../../core/registry.ts";
import { sharedInceptionExtractor } from "../inception/extractor.ts";
import { POOL3_DIM } from "../inception/model.ts";
import { type EvalContext, evalParams, runEval, WEIGHTS_ENV } from "./eval.ts";
import { encoderFeatureName, EncoderFrechetMetric } from "./fd_encoder.ts";
import { FidMetric, INCEPTION_FEATURE } from "./fid.ts";
import { InceptionScoreMetric } from "./is.ts";
import { prepareImageNetVal } from "./prepare_imagenet.ts";
import { loadStats, saveStats } from "./stats_io.ts";
import {
  blockMoments,
  BLOCKS_FILE,
  foldBlocks,
  openReference,
  readBlocks,
  writeBlocks,
} from "./feature_stats.ts";
import { shardSlice, sliceFiles, writeSlice } from "../../core/shard.ts";

const weightsOption = s.string({
  nonEmpty: true,
  description:
    `FID Inception-v3 weights (pt_inception-... or weights-inception-2015-12-05-6726825d.pth); default $${WEIGHTS_ENV}`,
}).optional();

function weights(path: string | undefined, what: string): string {
  const p = path ?? Deno.env.get(WEIGHTS_ENV);
  if (!p) {
    throw new Error(
      `${what}: set 'weights' (or $${WEIGHTS_ENV}) to the FID Inception-v3 weight file`,
    );
  }
  return p;
}

async function extractorFor(path: string | undefined, what: string) {
  return await sharedInceptionExtractor(weights(path, what));
}

export default definePlugin({
  name: "digit-metrics",
  version: "0.1.0",
  description:
    "FID / IS (torch-fidelity's Inception-v3), encoder Frechet distances, eval and reference-set steps",
  register(r) {
    r.metric({
      name: "fid",
      description: "Frechet Inception Distance against reference statistics (.npz/.safetensors)",
      options: s.object({ weights: weightsOption, reference: s.string({ nonEmpty: true }) }),
      create: async (o) =>
        new FidMetric(
          await extractorFor(o.weights, "metric fid"),
          await loadStats(o.reference, { dim: POOL3_DIM, feature: INCEPTION_FEATURE }),
        ),
    });
    r.metric({
      name: "is",
      description:
        "Inception Score (torch-fidelity: logits without bias, 10 splits, RandomState(2020) shuffle)",
      options: s.object({ weights: weightsOption, splits: s.int({ min: 1 }).default(10) }),
      create: async (o) =>
        new InceptionScoreMetric(await extractorFor(o.weights, "metric is"), {
          splits: o.splits,
        }),
    });
    r.metric({
      name: "fd-encoder",
      description: "Frechet distance on a registered encoder's features (FD-DINOv2 style)",
      options: s.object({
        encoder: s.string({ nonEmpty: true }),
        encoder_options: s.any().default({}),
        reference: s.string({
          nonEmpty: true,
          description: "statistics file of the reference set's features",
        }),
        pooling: s.enum(["mean", "cls"] as const).default("mean"),
      }),
      create: async (o, ctx) => {
        const encoder = await ctx.registry.create(
          "encoders",
          o.encoder,
          o.encoder_options,
          ctx,
          "fd-encoder: encoder_options",
        );
        const feature = encoderFeatureName(encoder, o.pooling);
        return new EncoderFrechetMetric(
          encoder,
          await loadStats(o.reference, { dim: encoder.featureDim, feature }),
          o.pooling,
        );
      },
    });
    r.step({
      name: "eval",
      description:
        "FID / IS (and optionally precision/recall, fd:<encoder>, domain) of generated images against a reference",
      params: evalParams,
      outputs: () => ({ metrics: "metrics.json" }),
      run: async (p, ctx) => {
        const report = await runEval(p, ctx as EvalContext);
        await Deno.writeTextFile(ctx.outputs.metrics, JSON.stringify(report, null, 2) + "\n");
      },
    });
    const statsParams = s.object({
      images: s.string({ nonEmpty: true, description: "folder of images (sorted by name)" }),
      output: s.string({ nonEmpty: true }).describe(".npz or .safetensors file name").default(
        "stats.npz",
      ),
      weights: weightsOption,
      batch_size: s.int({ min: 1 }).default(8),
      block: s.int({ min: 1 }).describe(
        "images per block (a multiple of batch_size; shards take whole blocks)",
      ).default(512),
    });
    const blockOptions = (
      p: { batch_size: number; block: number },
      ctx: RunContext & { signal: AbortSignal },
    ) => ({
      batchSize: p.batch_size,
      block: p.block,
      signal: ctx.signal,
      onProgress: (d: number, t: number) => ctx.log.progress("feature-stats", d, t),
    });
    r.step({
      name: "feature-stats",
      description:
        "FID Inception-v3 statistics of an image folder (a reference for eval); shardable",
      params: statsParams,
      outputs: (p) => ({ stats: p.output }),
      run: async (p, ctx) => {
        const folder = await openReference(p.images);
        const extractor = await extractorFor(p.weights, "feature-stats");
        const range = { start: 0, end: folder.files.length };
        const blocks = await blockMoments(extractor, folder, range, blockOptions(p, ctx));
        await saveStats(ctx.outputs.stats, foldBlocks(blocks), INCEPTION_FEATURE);
      },
      // A shard computes whole blocks and keeps their moments; the merge folds them in order.
      shardable: {
        run: async (p, ctx, shard) => {
          const folder = await openReference(p.images);
          const total = folder.files.length;
          const range = shardSlice(total, shard, p.block);
          const extractor = range.end > range.start
            ? await extractorFor(p.weights, "feature-stats")
            : null;
          const blocks = extractor
            ? await blockMoments(extractor, folder, range, blockOptions(p, ctx))
            : [];
          await writeBlocks(shard.dir, blocks, POOL3_DIM);
          await writeSlice(shard.dir, { ...range, total, unit: "images" });
        },
        merge: async (_p, ctx, shards) => {
          await sliceFiles(shards, BLOCKS_FILE); // checks that the slices tile the folder
          const blocks = (await Promise.all(shards.map((sh) => readBlocks(sh.dir)))).flat();
          await saveStats(ctx.outputs.stats, foldBlocks(blocks), INCEPTION_FEATURE);
        },
      },
    });
    r.step({
      name: "prepare-imagenet-val",
      description:
        "ImageNet val -> Resize(256) + CenterCrop(256) -> {i:05d}.png (DiGIT/MAGE's FID reference set)",
      params: s.object({
        source: s.string({
          nonEmpty: true,
          description: "ImageNet root (with val/) or the val folder itself",
        }),
        output: s.string({
          nonEmpty: true,
          description:
            "output folder; a relative path lives in the step's folder (default imagenet-val)",
        }).optional(),
        size: s.int({ min: 1 }).default(256),
        limit: s.int({ min: 1 }).optional(),
      }),
      outputs: (p) => ({ images: p.output ?? "imagenet-val" }),
      run: async (p, ctx) => {
        const n = await prepareImageNetVal(p.source, ctx.outputs.images, {
          size: p.size,
          limit: p.limit,
          signal: ctx.signal,
          onProgress: (done, total) => ctx.log.progress("prepare-imagenet-val", done, total),
        });
        ctx.log.info(`${n} reference images in ${ctx.outputs.images}`);
      },
    });
  },
});
