/**
 * What the domain metric reads from images: the classifier's penultimate features and
 * class probabilities (batched, without a graph), the Inception-Score analogue on those
 * probabilities, and the mean HSV saturation of the pixels.
 */

import { noGrad } from "../../core/autograd.ts";
import type { ImageBatch } from "../../core/interfaces.ts";
import * as ops from "../../core/ops/mod.ts";
import { tidy } from "../../core/tensor.ts";
import { sliceBatch } from "./data.ts";
import { batchToTensor, type DomainClassifier } from "./model.ts";

export interface Classified {
  /** (count, featureDim) penultimate features. */
  features: Float32Array;
  /** (count, numClasses) softmax probabilities. */
  probs: Float32Array;
  /** (count) argmax classes. */
  predicted: Int32Array;
}

/** Features and probabilities of a batch, `chunk` images per forward pass. */
export async function classify(
  model: DomainClassifier,
  images: ImageBatch,
  chunk = 64,
): Promise<Classified> {
  const D = model.cfg.featureDim, C = model.cfg.numClasses;
  const features = new Float32Array(images.count * D);
  const probs = new Float32Array(images.count * C);
  for (let start = 0; start < images.count; start += chunk) {
    const n = Math.min(chunk, images.count - start);
    const [f, p] = noGrad(() =>
      tidy(() => {
        const f = model.features(batchToTensor(sliceBatch(images, start, n)));
        return [f, ops.softmax(model.logits(f), -1)];
      })
    );
    features.set(await f.data() as Float32Array, start * D);
    probs.set(await p.data() as Float32Array, start * C);
    f.dispose();
    p.dispose();
  }
  const predicted = new Int32Array(images.count);
  for (let i = 0; i < images.count; i++) {
    let best = 0;
    for (let c = 1; c < C; c++) if (probs[i * C + c] > probs[i * C + best]) best = c;
    predicted[i] = best;
  }
  return { features, probs, predicted };
}

/** Share of `predicted` equal to `labels`. */
export function accuracy(predicted: Int32Array, labels: Int32Array): number {
  let right = 0;
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) right++;
  return right / labels.length;
}

/**
 * exp(mean_i KL(p(y|x_i) || p(y))) over all rows (one split): 1 when every image gets the
 * same class distribution, numClasses when each is confidently one class and the classes
 * are used equally. Terms with p = 0 contribute 0 (the limit of p log p).
 */
export function inceptionScore(probs: Float32Array, classes: number): number {
  const n = probs.length / classes;
  const marginal = new Float64Array(classes);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < classes; c++) marginal[c] += probs[i * classes + c] / n;
  }
  let kl = 0;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < classes; c++) {
      const p = probs[i * classes + c];
      if (p > 0) kl += p * (Math.log(p) - Math.log(marginal[c]));
    }
  }
  return Math.exp(kl / n);
}

/** Running mean of HSV saturation S = (max - min) / max per pixel (0 where max = 0). */
export class SaturationMean {
  #sum = 0;
  #pixels = 0;

  update(images: ImageBatch): void {
    const d = images.data;
    const pixels = images.count * images.height * images.width;
    let s = 0;
    for (let p = 0; p < pixels; p++) {
      const r = d[3 * p], g = d[3 * p + 1], b = d[3 * p + 2];
      const max = Math.max(r, g, b);
      if (max > 0) s += (max - Math.min(r, g, b)) / max;
    }
    this.#sum += s;
    this.#pixels += pixels;
  }

  /** Mean over every pixel of every image seen (images share one size, so equal weights). */
  value(): number {
    if (this.#pixels === 0) throw new Error("saturation: no images");
    return this.#sum / this.#pixels;
  }
}
