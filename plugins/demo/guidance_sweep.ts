/**
 * `guidance-sweep`: how classifier-free guidance changes what a class-conditional pipeline
 * draws. For each guidance scale it samples the same classes with the same seeds (stage 1
 * -> stage 2 -> VQGAN, in memory) and lets the domain classifier say which class each image
 * shows. Guidance only helps when stage 1 learned an unconditional path (class dropout);
 * the sweep is how that is measured rather than assumed.
 */

import { type Infer, s } from "../../core/config.ts";
import { useDevice } from "../../core/device.ts";
import type { StepContext } from "../../core/registry.ts";
import { loadClassifier } from "../domain/checkpoint.ts";
import { classify } from "../domain/features.ts";
import { loadStage1 } from "../stage1/plugin.ts";
import { sampleStage1 } from "../stage1/sampler.ts";
import { sampleStage2 } from "../stage2/generator.ts";
import { loadStage2 } from "../stage2/load.ts";
import { loadVqgan } from "../vqgan/weights.ts";

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
  await useDevice(ctx.device);
  const stage1 = await loadStage1(p.stage1);
  const { model: stage2, vqgan: inside } = await loadStage2(p.stage2);
  inside?.dispose();
  const vqgan = await loadVqgan(p.vqgan);
  vqgan.batchSize = p.batch_size;
  const classifier = await loadClassifier(p.classifier, "guidance-sweep");
  const points: SweepPoint[] = [];
  try {
    const classes = stage1.cfg.classes;
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
        const semantic = await sampleStage1(stage1, {
          count: n,
          seed: p.seed + i,
          topK: p.top_k,
          guidance,
          classes: wanted,
        });
        const vq = await sampleStage2(stage2, semantic, {
          seed: p.seed,
          firstIndex: i,
          topP: p.stage2_top_p,
        });
        const images = await vqgan.decode(vq);
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
    stage1.dispose();
    stage2.dispose();
    vqgan.dispose();
    classifier.model.dispose();
  }
  return points;
}
