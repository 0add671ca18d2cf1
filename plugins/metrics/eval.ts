/**
 * The `eval` step: score a folder of generated images against a reference, the way DiGIT's
 * eval_fid.py does with torch-fidelity (FID + IS on the FID Inception-v3), plus optional
 * precision/recall and Frechet distances on registered encoders.
 *
 *   generated   folder of png/jpg/jpeg (non-recursive, sorted, one image size)
 *   reference   folder of images, or a .npz/.safetensors statistics file made earlier
 *   metrics     fid, is, prc, fd:<encoder>, domain     (default fid, is)
 *
 * `domain` scores with a classifier trained on the real data (class accuracy from the folder's
 * labels.tsv, FD on its features beside the real-vs-real floor, precision/recall, an IS
 * analogue, saturation); it needs `domain_classifier`. It is the registry's metric `domain`
 * (plugins/domain registers it, building on this plugin's statistics), so this file never
 * imports that plugin; it gets the reference batches of the same single pass over the reference
 * folder as Inception and the encoders (`updateReference`), so the folder is decoded once.
 *
 * Everything that can be checked before the network runs is checked first (folders, counts,
 * files, weights), so a bad call fails in seconds, not after an hour of features. Reference
 * statistics computed from a folder are written to the step folder (and to
 * `save_reference_stats` when given) so the next evaluation can skip the reference set.
 */

import { type Infer, s } from "../../core/config.ts";
import type { Metric, MetricResult } from "../../core/interfaces.ts";
import type { RunContext } from "../../core/registry.ts";
import type { InceptionFeatureExtractor } from "../inception/extractor.ts";
import { sharedInceptionExtractor } from "../inception/extractor.ts";
import { POOL3_DIM } from "../inception/model.ts";
import {
  encoderFeatureName,
  encoderFeatures,
  EncoderFrechetMetric,
  type EncoderPooling,
  type GlobalEncoder,
} from "./fd_encoder.ts";
import { LABELS_FILE } from "../../core/data/labels.ts";
import { FidMetric, INCEPTION_FEATURE } from "./fid.ts";
import { ImageFolder } from "./folder.ts";
import { InceptionScoreMetric } from "./is.ts";
import { FeatureRows, PrecisionRecallMetric } from "./prc.ts";
import { FeatureStats, type GaussianStats } from "./stats.ts";
import { loadStats, saveStats, statsFormatOf, type StoredStats } from "./stats_io.ts";

export const WEIGHTS_ENV = "DIGIT_INCEPTION_WEIGHTS";

const metricName = s.string({
  pattern: /fid|is|prc|domain|fd:[A-Za-z0-9][A-Za-z0-9._-]*/,
  patternName: "fid, is, prc or fd:<encoder name>, or domain",
});

export const evalParams = s.object({
  generated: s.string({
    nonEmpty: true,
    description: "folder of generated images (png/jpg/jpeg, not searched recursively)",
  }),
  reference: s.string({
    nonEmpty: true,
    description: "folder of reference images, or a .npz/.safetensors statistics file",
  }).optional(),
  metrics: s.array(metricName, { minLength: 1 }).default(["fid", "is"]),
  inception_weights: s.string({
    nonEmpty: true,
    description:
      `pt_inception-2015-12-05-6726825d.pth or weights-inception-2015-12-05-6726825d.pth (or their folder); default $${WEIGHTS_ENV}`,
  }).optional(),
  batch_size: s.int({ min: 1 }).default(64),
  limit: s.int({ min: 1, description: "use only the first N images of each folder" }).optional(),
  is_splits: s.int({ min: 1 }).default(10),
  prc_neighborhood: s.int({ min: 1 }).default(3),
  encoders: s.record(s.any(), { description: "options per encoder used by fd:<encoder>" }).default(
    {},
  ),
  fd_pooling: s.enum(["mean", "cls"] as const).default("mean"),
  domain_classifier: s.string({
    nonEmpty: true,
    description: "metric domain: classifier.json of a train-domain-classifier step",
  }).optional(),
  require_labels: s.bool({
    description: "metric domain: fail (instead of skipping class accuracy) without labels.tsv",
  }).default(false),
  save_reference_stats: s.string({
    nonEmpty: true,
    description: "also write the reference's Inception statistics here (.npz or .safetensors)",
  }).optional(),
});
export type EvalParams = Infer<typeof evalParams>;

export interface EvalContext extends RunContext {
  /** Where reference statistics are written (the step folder). */
  stepDir: string;
  /** Test hook: use this extractor instead of loading `inception_weights`. */
  extractor?: InceptionFeatureExtractor;
}

export interface EvalReport {
  metrics: MetricResult;
  /** `count` images scored, of the `total` the folder held (the demo summary checks it). */
  generated: { folder: string; count: number; total: number };
  reference?: { source: string; count: number };
  files: Record<string, string>;
}

function weightsPath(p: EvalParams): string {
  const path = p.inception_weights ?? Deno.env.get(WEIGHTS_ENV);
  if (!path) {
    throw new Error(
      `eval: set inception_weights (or $${WEIGHTS_ENV}) to pt_inception-2015-12-05-6726825d.pth or ` +
        `weights-inception-2015-12-05-6726825d.pth; FID and IS need the FID Inception-v3 weights`,
    );
  }
  return path;
}

/** What the checks established: the folders, the reference and what each metric needs. */
interface EvalPlan {
  wants: Set<string>;
  encoderNames: string[];
  generated: ImageFolder;
  referenceFolder: ImageFolder | null;
  referenceFile: StoredStats | null;
}

export async function runEval(p: EvalParams, ctx: EvalContext): Promise<EvalReport> {
  const plan = await checkInputs(p, ctx);
  const { wants, encoderNames } = plan;
  const encoders: GlobalEncoder[] = [];
  let domain: Metric | null = null;
  try {
    // Built first: its own checks (labels.tsv, the classifier) run before Inception loads.
    if (wants.has("domain")) {
      domain = await ctx.registry.create(
        "metrics",
        "domain",
        {
          classifier: p.domain_classifier,
          reference: p.reference,
          labels: p.generated,
          require_labels: p.require_labels,
          neighborhood: p.prc_neighborhood,
          batch_size: p.batch_size,
          limit: p.limit,
          read_reference: false,
        },
        ctx,
        "eval: metric domain",
      );
      if (!domain.updateReference) {
        throw new Error("eval: the registered metric 'domain' takes no reference images");
      }
    }
    const needsInception = wants.has("fid") || wants.has("is") || wants.has("prc");
    const extractor = needsInception
      ? ctx.extractor ?? await sharedInceptionExtractor(weightsPath(p))
      : null;
    for (const name of encoderNames) {
      encoders.push(
        await ctx.registry.create(
          "encoders",
          name,
          p.encoders[name] ?? {},
          ctx,
          `eval: encoders.${name}`,
        ),
      );
    }
    return await score(p, ctx, plan, extractor, encoders, domain);
  } finally {
    for (const e of encoders) e.dispose?.();
    domain?.dispose?.();
  }
}

/** Everything that needs no network: folders, counts, image sizes, the reference, file names. */
async function checkInputs(p: EvalParams, ctx: EvalContext): Promise<EvalPlan> {
  const wants = new Set(p.metrics);
  const encoderNames = p.metrics.filter((m) => m.startsWith("fd:")).map((m) => m.slice(3));
  const usable = (f: ImageFolder) => Math.min(f.count, p.limit ?? Infinity);

  const generated = await ImageFolder.open(p.generated, "generated images");
  // labels.tsv is the sample folder's own class list (core/data/labels.ts), not a stray file.
  const stray = generated.skipped.filter((f) => !f.endsWith(`/${LABELS_FILE}`));
  if (stray.length) {
    ctx.log.warn(`${p.generated}: ignoring ${stray.length} file(s) that are not png/jpg/jpeg`);
  }
  const needGenerated = Math.max(
    wants.has("fid") || encoderNames.length ? 2 : 1,
    wants.has("is") ? p.is_splits : 1,
    wants.has("prc") || wants.has("domain") ? p.prc_neighborhood + 1 : 1,
  );
  if (usable(generated) < needGenerated) {
    throw new Error(
      `generated images '${p.generated}' has ${usable(generated)} usable image(s); ` +
        `metrics [${p.metrics.join(", ")}] need at least ${needGenerated}`,
    );
  }

  let referenceFolder: ImageFolder | null = null;
  let referenceFile: StoredStats | null = null;
  if (wants.has("fid") || wants.has("prc") || wants.has("domain") || encoderNames.length > 0) {
    if (!p.reference) {
      throw new Error(
        `eval: metrics [${p.metrics.join(", ")}] need a reference (folder or statistics file)`,
      );
    }
    const info = await Deno.stat(p.reference).catch(() => null);
    if (!info) throw new Error(`eval: reference '${p.reference}' does not exist`);
    if (info.isDirectory) {
      referenceFolder = await ImageFolder.open(p.reference, "reference images");
      const need = wants.has("prc") || wants.has("domain") ? p.prc_neighborhood + 1 : 2;
      if (usable(referenceFolder) < need) {
        throw new Error(
          `reference images '${p.reference}' has ${
            usable(referenceFolder)
          } usable image(s); needs at least ${need}`,
        );
      }
    } else {
      statsFormatOf(p.reference);
      if (wants.has("prc")) {
        throw new Error(
          `eval: prc needs reference images (a folder), not the statistics file '${p.reference}'`,
        );
      }
      if (wants.has("domain")) {
        throw new Error(
          `eval: domain needs reference images (a folder), not the statistics file '${p.reference}'`,
        );
      }
      if (encoderNames.length) {
        throw new Error(
          `eval: fd:${encoderNames[0]} needs reference images (a folder), not '${p.reference}'`,
        );
      }
      referenceFile = await loadStats(p.reference, { dim: POOL3_DIM, feature: INCEPTION_FEATURE });
    }
  }
  if (p.save_reference_stats) {
    statsFormatOf(p.save_reference_stats);
    if (!referenceFolder) {
      throw new Error(
        `eval: save_reference_stats needs a reference folder to compute statistics from`,
      );
    }
  }
  if (wants.has("domain") && !p.domain_classifier) {
    throw new Error(
      "eval: metric 'domain' needs domain_classifier (the classifier.json written by a train-domain-classifier step)",
    );
  }
  await generated.checkSizes(p.limit);
  await referenceFolder?.checkSizes(p.limit);
  return { wants, encoderNames, generated, referenceFolder, referenceFile };
}

/** The reference pass (when the reference is a folder), then the generated pass. */
async function score(
  p: EvalParams,
  ctx: EvalContext,
  plan: EvalPlan,
  extractor: InceptionFeatureExtractor | null,
  encoders: GlobalEncoder[],
  domain: Metric | null,
): Promise<EvalReport> {
  const { wants, generated, referenceFolder, referenceFile } = plan;
  const pooling = p.fd_pooling as EncoderPooling;
  const options = { limit: p.limit, signal: ctx.signal };
  const usable = (f: ImageFolder) => Math.min(f.count, p.limit ?? Infinity);
  const files: Record<string, string> = {};

  let inceptionReference: GaussianStats | null = referenceFile;
  const referenceRows = wants.has("prc") ? new FeatureRows(POOL3_DIM) : null;
  const encoderReference = new Map<string, GaussianStats>();
  if (referenceFolder) {
    const stats = extractor && (wants.has("fid") || p.save_reference_stats)
      ? new FeatureStats(POOL3_DIM)
      : null;
    const perEncoder = encoders.map((e) => ({ e, stats: new FeatureStats(e.featureDim) }));
    let done = 0;
    for await (const batch of referenceFolder.batches(p.batch_size, options)) {
      if (extractor && (stats || referenceRows)) {
        const f = await extractor.extract(batch);
        stats?.update(f.pool3);
        referenceRows?.push(f.pool3);
      }
      for (const { e, stats } of perEncoder) stats.update(await encoderFeatures(e, batch, pooling));
      await domain?.updateReference?.(batch);
      done += batch.count;
      ctx.log.progress("reference images", done, usable(referenceFolder));
    }
    if (stats) {
      inceptionReference = stats.finalize();
      files.reference_stats = `${ctx.stepDir}/reference-${INCEPTION_FEATURE}.npz`;
      await saveStats(files.reference_stats, inceptionReference, INCEPTION_FEATURE);
      if (p.save_reference_stats) {
        await saveStats(p.save_reference_stats, inceptionReference, INCEPTION_FEATURE);
        ctx.log.info(`reference statistics saved to ${p.save_reference_stats}`);
      }
    }
    for (const { e, stats } of perEncoder) {
      const feature = encoderFeatureName(e, pooling);
      encoderReference.set(e.name, stats.finalize());
      files[`reference_stats_${e.name}`] = `${ctx.stepDir}/reference-${feature}.npz`;
      await saveStats(files[`reference_stats_${e.name}`], encoderReference.get(e.name)!, feature);
    }
  }

  const metrics: Metric[] = [];
  if (wants.has("fid")) metrics.push(new FidMetric(extractor!, inceptionReference!));
  if (wants.has("is")) metrics.push(new InceptionScoreMetric(extractor!, { splits: p.is_splits }));
  if (wants.has("prc")) {
    metrics.push(
      new PrecisionRecallMetric(extractor!, referenceRows!, { neighborhood: p.prc_neighborhood }),
    );
  }
  for (const e of encoders) {
    metrics.push(new EncoderFrechetMetric(e, encoderReference.get(e.name)!, pooling));
  }
  if (domain) metrics.push(domain);
  let done = 0;
  for await (const batch of generated.batches(p.batch_size, options)) {
    for (const m of metrics) await m.update(batch);
    done += batch.count;
    ctx.log.progress("generated images", done, usable(generated));
  }
  const results: MetricResult = {};
  for (const m of metrics) Object.assign(results, await m.compute());
  for (const [k, v] of Object.entries(results)) ctx.log.info(`${k}: ${v}`);
  const reference = p.reference === undefined ? undefined : {
    source: p.reference,
    count: referenceFolder ? usable(referenceFolder) : referenceFile?.count ?? 0,
  };
  return {
    metrics: results,
    generated: { folder: p.generated, count: done, total: generated.count },
    reference,
    files,
  };
}
