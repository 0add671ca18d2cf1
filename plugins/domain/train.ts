/**
 * The `train-domain-classifier` step: train the domain classifier (model.ts) on a dataset's
 * real images with the shared training loop (AdamW, cosine schedule, exact resume from
 * `<step dir>/checkpoints/last`), then
 *   - measure its accuracy on a held-out real set, and fail when it is below `min_accuracy`
 *     (a metric built on a classifier that cannot classify would be meaningless);
 *   - measure the real-vs-real floor on the held-out features (floor.ts);
 *   - write `classifier.json` (+ weights), a self-describing checkpoint (checkpoint.ts), and
 *     `report.json` with the same numbers.
 */

import { type Infer, s } from "../../core/config.ts";
import type { Dataset } from "../../core/data/dataset.ts";
import { type DatasetSpec, openDataset } from "../../core/data/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import type { StepContext } from "../../core/registry.ts";
import { train } from "../../core/train/trainer.ts";
import { CLASSIFIER_KIND, type ClassifierMeta, saveClassifier } from "./checkpoint.ts";
import { augmentedBatch, distinctLabels, type LabelledImages, readLabelled } from "./data.ts";
import { accuracy, classify } from "./features.ts";
import { type FloorReference, realFloor } from "./floor.ts";
import { batchToTensor, DEFAULT_CLASSIFIER, DomainClassifier } from "./model.ts";

const STEP = "train-domain-classifier";

export const trainClassifierParams = s.object({
  dataset: s.any().describe(
    "real training images, a dataset spec, e.g. {kind: shapes, size: 32, length: 2048, seed: 0}",
  ),
  held_out: s.any().describe(
    "real held-out images (accuracy and floor), e.g. {kind: shapes, size: 32, length: 600, seed: 2}",
  ),
  floor_reference: s.any().describe(
    "real images the samples will be scored against (e.g. the test split); the floor then compares held_out with these; default: two disjoint parts of held_out",
  ).optional(),
  steps: s.int({ min: 1 }).default(500),
  batch_size: s.int({ min: 1 }).default(32),
  lr: s.number({ positive: true }).default(5e-3),
  weight_decay: s.number({ min: 0 }).default(1e-4),
  warmup: s.int({ min: 0 }).default(20),
  seed: s.int().default(0),
  augment: s.object({
    shift: s.int({ min: 0 }).default(2).describe("random shift in pixels (x and y)"),
    flip: s.bool().default(true).describe("random horizontal mirror"),
    blur: s.number({ min: 0, max: 1 }).default(0.5).describe("probability of a random blur"),
    noise: s.number({ min: 0 }).default(8).describe("largest pixel-noise std (0..255 units)"),
  }).default({ shift: 2, flip: true, blur: 0.5, noise: 8 }),
  model: s.object({
    channels: s.array(s.int({ min: 1 }), { minLength: 3, maxLength: 3 }).default([
      ...DEFAULT_CLASSIFIER.channels,
    ]),
    feature_dim: s.int({ min: 2 }).default(DEFAULT_CLASSIFIER.featureDim),
    groups: s.int({ min: 1 }).default(DEFAULT_CLASSIFIER.groups),
  }).default({
    channels: [...DEFAULT_CLASSIFIER.channels],
    feature_dim: DEFAULT_CLASSIFIER.featureDim,
    groups: DEFAULT_CLASSIFIER.groups,
  }),
  min_accuracy: s.number({ min: 0, max: 1 }).default(0.9).describe(
    "fail when held-out accuracy is lower",
  ),
  floor: s.object({
    generated: s.int({ min: 4 }).default(100).describe("size of the sample folders to be scored"),
    reference: s.int({ min: 4 }).default(500).describe("size of the reference folder"),
    max_splits: s.int({ min: 1 }).default(5),
    neighborhood: s.int({ min: 1 }).default(3).describe("k of precision/recall"),
  }).default({ generated: 100, reference: 500, max_splits: 5, neighborhood: 3 }),
  log_interval: s.int({ min: 1 }).default(50),
  save_interval: s.int({ min: 1 }).default(250),
});
export type TrainClassifierParams = Infer<typeof trainClassifierParams>;

export const trainClassifierOutputs = () => ({
  checkpoint: "classifier.json",
  report: "report.json",
});

async function openChecked(spec: unknown, key: string, ctx: StepContext): Promise<Dataset> {
  if (spec === null || typeof spec !== "object") {
    throw new Error(`${STEP} (step '${ctx.stepName}'): params.${key} must be a dataset spec`);
  }
  const ds = await openDataset(spec as DatasetSpec);
  if (ds.numClasses < 2) {
    throw new Error(
      `${STEP} (step '${ctx.stepName}'): params.${key} '${ds.name}' has ${ds.numClasses} class; ` +
        `a classifier needs at least 2`,
    );
  }
  return ds;
}

export async function trainClassifierStep(
  p: TrainClassifierParams,
  ctx: StepContext,
): Promise<void> {
  const where = `${STEP} (step '${ctx.stepName}')`;
  const trainSet = await openChecked(p.dataset, "dataset", ctx);
  /** A real set the classifier is measured on: its classes must be the training set's. */
  const openLike = async (spec: unknown, key: string) => {
    const ds = await openChecked(spec, key, ctx);
    if (ds.numClasses !== trainSet.numClasses) {
      throw new Error(
        `${where}: ${key} '${ds.name}' has ${ds.numClasses} classes, dataset '${trainSet.name}' ${trainSet.numClasses}`,
      );
    }
    return ds;
  };
  const heldSet = await openLike(p.held_out, "held_out");
  if (trainSet.length < p.batch_size) {
    throw new Error(
      `${where}: dataset '${trainSet.name}' has ${trainSet.length} images, fewer than batch_size ${p.batch_size}`,
    );
  }
  const refSet = p.floor_reference === undefined
    ? null
    : await openLike(p.floor_reference, "floor_reference");
  const need = p.floor.generated + (refSet ? 0 : p.floor.reference);
  if (heldSet.length < need) {
    throw new Error(
      `${where}: held_out '${heldSet.name}' has ${heldSet.length} images; the floor needs ` +
        (refSet ? `floor.generated = ${need}` : `floor.generated + floor.reference = ${need}`),
    );
  }
  if (refSet && refSet.length < p.floor.reference) {
    throw new Error(
      `${where}: floor_reference '${refSet.name}' has ${refSet.length} images; the floor needs floor.reference = ${p.floor.reference}`,
    );
  }
  const images = await readLabelled(trainSet, where, trainSet.length, ctx.signal);
  if (distinctLabels(images.labels) < 2) {
    throw new Error(`${where}: every image of dataset '${trainSet.name}' has the same class`);
  }
  const held = await readLabelled(heldSet, where, heldSet.length, ctx.signal);

  const model = new DomainClassifier({
    imageSize: images.height,
    numClasses: trainSet.numClasses,
    channels: [p.model.channels[0], p.model.channels[1], p.model.channels[2]],
    featureDim: p.model.feature_dim,
    groups: p.model.groups,
  }, p.seed);
  await dropStaleCheckpoints(p, ctx);
  const started = performance.now();
  await fit(model, images, p, ctx);
  const seconds = (performance.now() - started) / 1000;

  model.eval();
  const out = await classify(model, held);
  const heldAccuracy = accuracy(out.predicted, held.labels);
  let reference: FloorReference | undefined;
  let floorReference: ClassifierMeta["floorReference"];
  if (refSet) {
    const refImages = await readLabelled(refSet, where, refSet.length, ctx.signal);
    reference = { features: (await classify(model, refImages)).features, count: refImages.count };
    floorReference = { dataset: p.floor_reference, count: refImages.count };
  }
  const floor = realFloor(
    out.features,
    held.count,
    model.cfg.featureDim,
    {
      generated: p.floor.generated,
      reference: p.floor.reference,
      maxSplits: p.floor.max_splits,
      neighborhood: p.floor.neighborhood,
    },
    where,
    reference,
  );
  const meta: ClassifierMeta = {
    kind: CLASSIFIER_KIND,
    version: 1,
    config: model.cfg,
    classNames: Array.from(
      { length: model.cfg.numClasses },
      (_, c) => trainSet.classNames?.[c] ?? String(c),
    ),
    dataset: p.dataset,
    heldOut: { dataset: p.held_out, count: held.count, accuracy: heldAccuracy },
    ...(floorReference ? { floorReference } : {}),
    floor,
    training: { steps: p.steps, batchSize: p.batch_size, seconds, seed: p.seed },
  };
  await saveClassifier(ctx.outputs.checkpoint.replace(/\.json$/, ""), model, meta);
  await Deno.writeTextFile(ctx.outputs.report, JSON.stringify(meta, null, 2) + "\n");
  model.dispose();
  ctx.log.info(
    `domain classifier: held-out accuracy ${heldAccuracy.toFixed(4)} on ${held.count} images ` +
      `(${
        seconds.toFixed(1)
      } s of training); real-vs-real floor (${floor.generated} vs ${floor.reference} ` +
      `images, ${floor.splits} splits): FD ${floor.fd.toFixed(3)} [${floor.fdMin.toFixed(3)}, ` +
      `${floor.fdMax.toFixed(3)}], precision ${floor.precision.toFixed(3)}, recall ${
        floor.recall.toFixed(3)
      }`,
  );
  if (heldAccuracy < p.min_accuracy) {
    throw new Error(
      `${where}: held-out accuracy ${
        heldAccuracy.toFixed(4)
      } is below min_accuracy ${p.min_accuracy}; ` +
        `train longer (steps) or check the data; a metric on this classifier would not be meaningful`,
    );
  }
}

/** What the trainer's checkpoints depend on; `floor` and `min_accuracy` act after training. */
function trainingFingerprint(p: TrainClassifierParams): string {
  const { dataset, steps, batch_size, lr, weight_decay, warmup, seed, augment, model } = p;
  return JSON.stringify({
    dataset,
    steps,
    batch_size,
    lr,
    weight_decay,
    warmup,
    seed,
    augment,
    model,
  });
}

/**
 * The trainer resumes from `checkpoints/last`, which is right after an interruption but wrong
 * after a params change (a shorter run would resume past its end, another dataset would
 * continue the old model). So the checkpoints remember the params they were made with, and
 * other params start afresh.
 */
async function dropStaleCheckpoints(p: TrainClassifierParams, ctx: StepContext): Promise<void> {
  const dir = `${ctx.stepDir}/checkpoints`;
  const marker = `${dir}/params.json`;
  const want = trainingFingerprint(p);
  const had = await Deno.readTextFile(marker).catch(() => null);
  if (had !== want || ctx.fresh) {
    if (had !== null && !ctx.fresh) {
      ctx.log.info(`${STEP}: params changed since the saved checkpoint; training afresh`);
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(marker, want);
  }
}

/** The training loop proper: shuffled, augmented batches, cross-entropy, AdamW + cosine. */
async function fit(
  model: DomainClassifier,
  images: LabelledImages,
  p: TrainClassifierParams,
  ctx: StepContext,
): Promise<void> {
  const B = p.batch_size;
  const batchesPerEpoch = Math.floor(images.count / B);
  await train<{ rows: Int32Array; tick: number }>(
    {
      model,
      batchesPerEpoch,
      batch: (epoch, index, order) => {
        const perm = new Rng(p.seed).fork(1000 + epoch).permutation(images.count);
        const at = order[index] * B;
        return { rows: perm.subarray(at, at + B), tick: epoch * batchesPerEpoch + index };
      },
      loss: ({ rows, tick }) => {
        const gen = new Rng(p.seed + 17).fork(tick);
        const x = batchToTensor(augmentedBatch(images, rows, gen, p.augment));
        const labels = Int32Array.from(rows, (r) => images.labels[r]);
        return ops.crossEntropy(model.forward(x), ops.tensor(labels, [labels.length]));
      },
      itemsPerBatch: ({ rows }) => rows.length,
    },
    {
      maxSteps: p.steps,
      schedule: { kind: "cosine", lr: p.lr, total: p.steps, warmup: p.warmup, minLr: p.lr * 0.01 },
      betas: [0.9, 0.999],
      weightDecay: p.weight_decay,
      clipNorm: 1,
      accumulate: 1,
      logInterval: p.log_interval,
      saveInterval: p.save_interval,
      validInterval: 0,
      seed: p.seed,
    },
    `${ctx.stepDir}/checkpoints`,
    {
      signal: ctx.signal,
      onProgress: (step, total) => ctx.log.progress(STEP, step, total),
      onLog: (r) =>
        ctx.log.info(
          `step ${r.step}: loss ${r.loss.toFixed(4)}, lr ${r.lr.toExponential(2)}, ${
            r.itemsPerSecond.toFixed(0)
          } images/s`,
        ),
    },
  );
}
