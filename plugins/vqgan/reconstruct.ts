/**
 * `reconstruct-vqgan`: held-out images through a trained VQGAN (encode, quantise, decode),
 * written as a sample folder (PNGs + labels.tsv, so the domain metric can score them like
 * any samples) with the reconstruction report: PSNR, saturation kept, codebook usage.
 * This is what says whether the VQGAN keeps colour and shape, on images it never saw.
 */

import { type Infer, s } from "../../core/config.ts";
import type { Dataset } from "../../core/data/dataset.ts";
import { labelRows, writeLabels } from "../../core/data/labels.ts";
import { writePng } from "../../core/image/codec.ts";
import type { StepContext } from "../../core/registry.ts";
import { imageAt } from "./images.ts";
import { formatReconMetrics, reconstructAndScore } from "./recon_metrics.ts";
import { collectImages } from "./train.ts";
import type { VQGAN } from "./vqgan.ts";

export const reconstructParams = s.object({
  checkpoint: s.string({
    nonEmpty: true,
    description: "VQGAN checkpoint, e.g. <dir>/checkpoints/last",
  }),
  dataset: s.any().describe(
    "held-out images: a core/data DatasetSpec, e.g. { kind: shapes, size: 32, length: 500, seed: 1 }",
  ),
  count: s.int({ min: 1 }).optional().describe("default: the whole dataset"),
  batch_size: s.int({ min: 1 }).default(64),
});
export type ReconstructParams = Infer<typeof reconstructParams>;

export const reconstructOutputs = () => ({ results: "results", report: "recon.json" });

export async function reconstructDataset(
  model: VQGAN,
  dataset: Dataset,
  p: ReconstructParams,
  ctx: StepContext,
): Promise<void> {
  const images = await collectImages(dataset, p.count ?? dataset.length, 0, ctx.signal);
  model.batchSize = p.batch_size;
  const { metrics, reconstructions: recon } = await reconstructAndScore(model, images);
  await Deno.mkdir(ctx.outputs.results, { recursive: true });
  const digits = Math.max(4, String(images.count - 1).length);
  const files = Array.from(
    { length: images.count },
    (_, i) => `${String(i).padStart(digits, "0")}.png`,
  );
  for (let i = 0; i < images.count; i++) {
    await writePng(`${ctx.outputs.results}/${files[i]}`, imageAt(recon, i));
  }
  if (dataset.numClasses > 1) {
    await writeLabels(ctx.outputs.results, labelRows(files, images.labels, dataset.classNames));
  }
  await Deno.writeTextFile(
    ctx.outputs.report,
    JSON.stringify({ metrics, checkpoint: p.checkpoint, dataset: dataset.name }, null, 2) + "\n",
  );
  ctx.log.info(formatReconMetrics(metrics));
}
