/**
 * The metrics plugin: FID, IS and encoder Frechet distances as registry metrics, and the steps
 *   eval                  score a folder of generated images (what `digit eval` runs)
 *   prepare-imagenet-val  ImageNet val -> Resize(256) + CenterCrop(256) PNGs, the FID reference
 */

import { s } from "../../core/config.ts";
import { useDevice } from "../../core/device.ts";
import { definePlugin, type RunContext } from "../../core/registry.ts";
import { sharedInceptionExtractor } from "../inception/extractor.ts";
import { POOL3_DIM } from "../inception/model.ts";
import { type EvalContext, evalParams, runEval, WEIGHTS_ENV } from "./eval.ts";
import { encoderFeatureName, EncoderFrechetMetric } from "./fd_encoder.ts";
import { FidMetric, INCEPTION_FEATURE } from "./fid.ts";
import { InceptionScoreMetric } from "./is.ts";
import { prepareImageNetVal } from "./prepare_imagenet.ts";
import { loadStats } from "./stats_io.ts";

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

async function extractorFor(path: string | undefined, what: string, ctx: RunContext) {
  await useDevice(ctx.device);
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
      create: async (o, ctx) =>
        new FidMetric(
          await extractorFor(o.weights, "metric fid", ctx),
          await loadStats(o.reference, { dim: POOL3_DIM, feature: INCEPTION_FEATURE }),
        ),
    });
    r.metric({
      name: "is",
      description:
        "Inception Score (torch-fidelity: logits without bias, 10 splits, RandomState(2020) shuffle)",
      options: s.object({ weights: weightsOption, splits: s.int({ min: 1 }).default(10) }),
      create: async (o, ctx) =>
        new InceptionScoreMetric(await extractorFor(o.weights, "metric is", ctx), {
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
