/**
 * How well a VQGAN reconstructs a set of images, in the terms of issue 14:
 *   - PSNR (dB) over all pixels;
 *   - saturation ratio: mean HSV saturation S = (max - min) / max per pixel of the
 *     reconstructions over that of the originals (1 = colour kept, 0 = grey);
 *   - codebook usage: the fraction of codes chosen at least once over the whole set.
 * A washed-out reconstruction can score a fair PSNR on these images (backgrounds are
 * large and dull), which is why saturation is reported on its own.
 */

import type { ImageBatch } from "../../core/interfaces.ts";
import { psnr } from "./images.ts";
import type { VQGAN } from "./vqgan.ts";

export interface ReconMetrics {
  images: number;
  psnr: number;
  /** Mean saturation of the originals and of the reconstructions. */
  saturation: { original: number; reconstruction: number; ratio: number };
  /** Codes used at least once, out of the codebook's size. */
  codebook: { used: number; size: number; usage: number };
}

/** Mean HSV saturation (max - min) / max over every pixel of a uint8 RGB batch (0 for black). */
export function meanSaturation(batch: ImageBatch): number {
  const d = batch.data;
  let total = 0;
  const pixels = d.length / 3;
  for (let p = 0; p < pixels; p++) {
    const r = d[3 * p], g = d[3 * p + 1], b = d[3 * p + 2];
    const max = Math.max(r, g, b);
    if (max > 0) total += (max - Math.min(r, g, b)) / max;
  }
  return total / pixels;
}

/** Encode, decode and score `images` (batched through the model's own batch size). */
export async function reconMetrics(model: VQGAN, images: ImageBatch): Promise<ReconMetrics> {
  return (await reconstructAndScore(model, images)).metrics;
}

/** The reconstructions themselves too, for callers that keep them (reconstruct-vqgan). */
export async function reconstructAndScore(
  model: VQGAN,
  images: ImageBatch,
): Promise<{ metrics: ReconMetrics; reconstructions: ImageBatch }> {
  const grid = await model.encode(images);
  const recon = await model.decode(grid);
  const seen = new Uint8Array(model.cfg.nEmbed);
  for (const t of grid.tokens) seen[t] = 1;
  const used = seen.reduce((a, b) => a + b, 0);
  const original = meanSaturation(images), reconstruction = meanSaturation(recon);
  const metrics = {
    images: images.count,
    psnr: psnr(images, recon),
    saturation: { original, reconstruction, ratio: reconstruction / original },
    codebook: { used, size: model.cfg.nEmbed, usage: used / model.cfg.nEmbed },
  };
  return { metrics, reconstructions: recon };
}

export function formatReconMetrics(m: ReconMetrics): string {
  const s = m.saturation, c = m.codebook;
  return `${m.images} images: PSNR ${m.psnr.toFixed(2)} dB, saturation ${
    s.reconstruction.toFixed(3)
  } vs ${s.original.toFixed(3)} (ratio ${s.ratio.toFixed(3)}), codebook ${c.used}/${c.size} used (${
    (100 * c.usage).toFixed(1)
  }%)`;
}
