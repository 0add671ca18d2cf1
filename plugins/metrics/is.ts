/**
 * Inception Score as torch-fidelity reports it (`inception_score_mean`, `inception_score_std`):
 * logits_unbiased of the FID Inception-v3 (pool3 @ fc.weight^T, no bias), shuffled with
 * RandomState(2020), float64 softmax, 10 splits (inception_score.ts).
 * All logits are kept until compute(): 4 KB per image, 200 MB for 50,000.
 */

import type { ImageBatch, Metric, MetricResult } from "../../core/interfaces.ts";
import type { InceptionFeatureExtractor } from "../inception/extractor.ts";
import { INCEPTION_CLASSES } from "../inception/model.ts";
import { inceptionScore, type InceptionScoreOptions } from "./inception_score.ts";

export class InceptionScoreMetric implements Metric {
  readonly name = "is";
  #logits = new Float32Array(1024 * INCEPTION_CLASSES);
  #count = 0;

  constructor(
    readonly extractor: InceptionFeatureExtractor,
    readonly options: InceptionScoreOptions = {},
  ) {}

  async update(images: ImageBatch): Promise<void> {
    const { logitsUnbiased, count } = await this.extractor.extract(images);
    const need = (this.#count + count) * INCEPTION_CLASSES;
    if (need > this.#logits.length) {
      const grown = new Float32Array(Math.max(need, 2 * this.#logits.length));
      grown.set(this.#logits.subarray(0, this.#count * INCEPTION_CLASSES));
      this.#logits = grown;
    }
    this.#logits.set(logitsUnbiased, this.#count * INCEPTION_CLASSES);
    this.#count += count;
  }

  get count(): number {
    return this.#count;
  }

  compute(): Promise<MetricResult> {
    const splits = this.options.splits ?? 10;
    if (this.#count < splits) {
      throw new Error(
        `Inception Score with ${splits} splits needs at least ${splits} images, got ${this.#count}`,
      );
    }
    const logits = this.#logits.subarray(0, this.#count * INCEPTION_CLASSES);
    const r = inceptionScore(logits, this.#count, INCEPTION_CLASSES, this.options);
    return Promise.resolve({ inception_score_mean: r.mean, inception_score_std: r.std });
  }

  reset(): void {
    this.#count = 0;
  }
}
