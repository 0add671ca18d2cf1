/**
 * `guidance-sweep`: how classifier-free guidance changes what a class-conditional pipeline
 * draws. For each guidance scale it samples the same classes with the same seeds (stage 1
 * -> stage 2 -> VQGAN, in memory, built by plugins/pipeline as the `sample` step builds them) and lets the domain classifier say which class each image
 * shows. Guidance only helps when stage 1 learned an unconditional path (class dropout);
 * the sweep is how that is measured rather than assumed.
 */

import { type Infer, s } from "../../core/config.ts";
import type { StepContext } from "../../core/registry.ts";
import { loadClassifier } from "../domain/checkpoint.ts";
import { classify } from "../domain/features.ts";
import { buildParts, type BuiltParts, checkFit, disposeParts } from "../pipeline/build.ts";
import { partAt } from "../pipeline/parts.ts";
import { VQGAN } from "../vqgan/vqgan.ts";

export const sweepParams = s.object({
  stage1: s.string({ nonEmpty: true, description: "class-conditional stage-1 experiment folder" }),
  stage2: s.string({
    nonEmpty: true,
    description: "stage-2 checkpoint (e.g. <dir>/checkpoints/last)",
  }),
  vqgan: s.string({ nonEmpty: true, description: "VQGAN checkpoint" }),
  classifier: s.string({
    nonEmpty: true,
    description: "domain classifier (train-domain-classifier's checkpoint)",
  }),
  scales: s.array(s.number({ min: 0 }), { minLength: 1 }).default([1, 1.5, 2, 3]),
  per_class: s.int({ min: 1 }).default(10).describe("images per class at each scale"),
  seed: s.int().default(100),
  top_k: s.int({ min: 0 }).default(0).describe("stage-1 top-k (0: off)"),
  temperature: s.number({ positive: true }).default(1).describe(
    "stage-1 temperature, as sample-stage1",
  ),
  stage2_top_p: s.number({ min: 0, max: 1 }).default(0.8).describe(
    "stage-2 nucleus mass, as generate-images",
  ),
  batch_size: s.int({ min: 1 }).default(50),
});
export type SweepParams = Infer<typeof sweepParams>;

export interface SweepPoint {
  guidance: number;
  classAccuracy: number;
  images: number;
}

export async function guidanceSweep(p: SweepParams, ctx: StepContext): Promise<SweepPoint[]> {
  // The parts are built as `sample` builds them (plugins/pipeline), by their checkpoint kind.
  const refs = {
    stage1: await partAt("stage1", p.stage1, "last", ctx.registry),
    stage2: await partAt("stage2", p.stage2, "last", ctx.registry),
    vqgan: await partAt("vqgan", p.vqgan, "last", ctx.registry),
  };
  let parts: BuiltParts | null = null;
  let classifier: Awaited<ReturnType<typeof loadClassifier>> | null = null;
  const points: SweepPoint[] = [];
  try {
    parts = await buildParts(refs, { ctx, who: "guidance-sweep" });
    checkFit(parts, refs, "guidance-sweep");
    const { stage1, stage2, decoder } = parts;
    // One decode call per batch (the VQGAN's own default splits it further): speed only.
    if (decoder instanceof VQGAN) decoder.batchSize = p.batch_size;
    classifier = await loadClassifier(p.classifier, "guidance-sweep");
    const classes = stage1!.classes;
    if (classes === 0) {
      throw new Error(
        `guidance-sweep: stage 1 in ${p.stage1} is unconditional; guidance needs classes`,
      );
    }
    const total = classes * p.per_class;
    for (const guidance of p.scales) {
      let right = 0;
      for (let i = 0; i < total; i += p.batch_size) {
        ctx.signal.throwIfAborted();
        const n = Math.min(p.batch_size, total - i);
        const wanted = Int32Array.from({ length: n }, (_, j) => (i + j) % classes);
        // The same seeds at every scale: only the guidance differs between the points.
        const semantic = await stage1!.sample({
          count: n,
          seed: p.seed + i,
          topK: p.top_k,
          temperature: p.temperature,
          guidance,
          classes: wanted,
        });
        const vq = await stage2.sample({
          count: n,
          condition: semantic,
          seed: p.seed,
          firstIndex: i,
          topP: p.stage2_top_p,
        });
        const images = await decoder.decode(vq);
        const { predicted } = await classify(classifier.model, images);
        predicted.forEach((c, j) => (right += c === wanted[j] ? 1 : 0));
        ctx.log.progress(`guidance ${guidance}`, i + n, total);
      }
      points.push({ guidance, classAccuracy: right / total, images: total });
      ctx.log.info(
        `guidance ${guidance}: class accuracy ${
          (100 * right / total).toFixed(1)
        }% of ${total} images`,
      );
    }
  } finally {
    if (parts) disposeParts(parts);
    classifier?.model.dispose();
  }
  return points;
}
