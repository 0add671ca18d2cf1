/**
 * Reconstruction report for a trained VQGAN on held-out shapes images:
 *
 *   deno run -A plugins/vqgan/report.ts <checkpoint> [count=500] [size=32] [seed=1]
 *
 * <checkpoint> is anything loadVqgan takes (e.g. outputs/demo/vqgan/checkpoints/last).
 * The images come from the shapes stream with another seed than the demo's training data
 * (seed 0), so none of them was seen in training.
 */

import { ShapesDataset } from "../../core/data/shapes.ts";
import { formatReconMetrics, reconMetrics } from "./recon_metrics.ts";
import { collectImages } from "./train.ts";
import { loadVqgan } from "./load.ts";

if (import.meta.main) {
  const [path, count = "500", size = "32", seed = "1"] = Deno.args;
  if (!path) {
    console.error("usage: report.ts <checkpoint> [count=500] [size=32] [seed=1]");
    Deno.exit(2);
  }
  const model = await loadVqgan(path);
  model.batchSize = 50;
  const ds = new ShapesDataset({ size: Number(size), length: Number(count), seed: Number(seed) });
  const images = await collectImages(ds);
  const m = await reconMetrics(model, images);
  console.log(`${path}: ${formatReconMetrics(m)}`);
  console.log(JSON.stringify(m));
  model.dispose();
}
