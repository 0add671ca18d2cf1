/**
 * The VQGAN plugin: the `vqgan` decoder (MAGE's checkpoint, a DiGIT stage-2 checkpoint's
 * `vqgan.*` keys, or one trained here), `train-vqgan` (a small VQGAN from scratch) and
 * `encode-vqgan` (VQ codes of a dataset: stage 2's training targets).
 */

import { s } from "../../core/config.ts";
import { experimentDir, experimentPath } from "../../core/tasks.ts";
import { type DatasetSpec, openDataset } from "../../core/data/mod.ts";
import { definePlugin } from "../../core/registry.ts";
import { concatTokenFiles, shardSlice, sliceFiles, writeSlice } from "../../core/shard.ts";
import { TrainReporter } from "../../core/train/reporter.ts";
import { vqganTrainConfigSchema } from "./config.ts";
import { encodeDataset, encodeSource } from "./encode.ts";
import { decodeOutputs, decodeParams, decodeTokenFile } from "./decode_tokens.ts";
import { reconstructDataset, reconstructOutputs, reconstructParams } from "./reconstruct.ts";
import { trainVqganFromConfig } from "./train.ts";
import { loadVqgan, untrainedVqgan } from "./load.ts";

const vqganOptions = s.object({
  checkpoint: s.string({
    nonEmpty: true,
    description: "vqgan_jax_strongaug.ckpt, a DiGIT stage-2 .pt, or <dir>/checkpoints/last",
  }),
  norm_groups: s.int({ min: 1 }).describe(
    "GroupNorm groups when not recorded (default 32 when the widths allow)",
  ).optional(),
  resolution: s.int({ min: 1 }).describe("image side when not recorded (default: 16x16 codes)")
    .optional(),
  untrained_seed: s.int().describe(
    "never-trained: the architecture one of our checkpoints records, weights drawn from this seed",
  ).optional(),
});

const encodeParams = s.object({
  vqgan: vqganOptions,
  dataset: s.any().describe("core/data DatasetSpec, e.g. { kind: shapes, size: 32 }"),
  first: s.int({ min: 0 }).default(0),
  count: s.int({ min: 1 }).optional(),
  batch_size: s.int({ min: 1 }).default(8),
});

type VqganOptions = {
  checkpoint: string;
  norm_groups?: number;
  resolution?: number;
  untrained_seed?: number;
};
const load = (o: VqganOptions) =>
  o.untrained_seed !== undefined
    ? untrainedVqgan(o.checkpoint, o.untrained_seed)
    : loadVqgan(o.checkpoint, { config: { normGroups: o.norm_groups, resolution: o.resolution } });

export default definePlugin({
  name: "digit-vqgan",
  version: "0.1.0",
  description: "MaskGIT/MAGE VQGAN: decode codes to pixels, encode images, train small ones",
  register(r) {
    r.decoder({
      name: "vqgan",
      description: "VQGAN decoder (token grid -> uint8 images, DiGIT's truncating conversion)",
      options: vqganOptions,
      create: async (o) => {
        return await load(o);
      },
    });
    r.step({
      name: "train-vqgan",
      description: "train a small VQGAN from scratch (L2/L1 + codebook + commitment)",
      params: vqganTrainConfigSchema,
      outputs: (p) => {
        const at = (rel: string) => experimentPath(p.output.dir, rel);
        return {
          checkpoint: at("checkpoints/last.json"),
          preview: at("reconstructions.png"),
        };
      },
      run: async (p, ctx) => {
        const dir = experimentDir(p.output.dir, ctx.stepDir);
        using report = new TrainReporter(dir, ctx.log, {
          signal: ctx.signal,
          fresh: ctx.fresh,
          label: "vqgan",
          unit: "img",
        });
        const run = await trainVqganFromConfig(p, dir, report.hooks);
        ctx.log.info(
          `reconstruction PSNR ${run.psnr.toFixed(2)} dB on ${
            p.dataset.valid_images > 0 ? "held-out" : "training"
          } images`,
        );
        run.model.dispose();
        report.finish(run.result);
      },
    });
    r.step({
      name: "reconstruct-vqgan",
      description:
        "held-out images through a VQGAN: PNGs + labels.tsv, PSNR, saturation kept, codebook usage",
      params: reconstructParams,
      outputs: reconstructOutputs,
      run: async (p, ctx) => {
        const model = await loadVqgan(p.checkpoint);
        try {
          await reconstructDataset(model, await openDataset(p.dataset as DatasetSpec), p, ctx);
        } finally {
          model.dispose();
        }
      },
    });
    r.step({
      name: "encode-vqgan",
      description: "VQ codes of a dataset as a token file (stage-2 targets)",
      params: encodeParams,
      outputs: () => ({ tokens: "vq.tokens" }),
      run: async (p, ctx) => {
        const model = await load(p.vqgan);
        const dataset = await openDataset(p.dataset as DatasetSpec);
        await encodeDataset(model, dataset, ctx.outputs.tokens, {
          first: p.first,
          count: p.count,
          batchSize: p.batch_size,
          signal: ctx.signal,
          onProgress: (d, t) => ctx.log.progress("vqgan encode", d, t),
        });
        model.dispose();
      },
      // A shard encodes whole batches of [first, first + count); the merge concatenates, and
      // every shard records the whole run's source, so the merged file is the single run's.
      shardable: {
        run: async (p, ctx, shard) => {
          const dataset = await openDataset(p.dataset as DatasetSpec);
          const total = Math.min(p.count ?? dataset.length - p.first, dataset.length - p.first);
          const range = shardSlice(total, shard, p.batch_size);
          if (range.end > range.start) {
            const model = await load(p.vqgan);
            try {
              await encodeDataset(model, dataset, ctx.outputs.tokens, {
                first: p.first + range.start,
                count: range.end - range.start,
                batchSize: p.batch_size,
                source: encodeSource(dataset, p.first, total),
                signal: ctx.signal,
                onProgress: (d, t) => ctx.log.progress("vqgan encode", d, t),
              });
            } finally {
              model.dispose();
            }
          }
          await writeSlice(shard.dir, { ...range, total, unit: "images" });
        },
        merge: async (_p, ctx, shards) => {
          await concatTokenFiles(await sliceFiles(shards, "vq.tokens"), ctx.outputs.tokens);
        },
      },
    });
    r.step({
      name: "decode-vqgan",
      description:
        "VQ code grids (a token file) to PNGs with labels.tsv, as generate-images lays them out",
      params: decodeParams,
      outputs: decodeOutputs,
      run: async (p, ctx) => {
        const model = await load(p.vqgan);
        try {
          const n = await decodeTokenFile(model, p, ctx);
          ctx.log.info(`decode-vqgan: ${n} images in ${ctx.outputs.results}`);
        } finally {
          model.dispose();
        }
      },
    });
  },
});
