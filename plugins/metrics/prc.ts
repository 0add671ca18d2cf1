/**
 * Improved precision and recall (torch-fidelity's `precision`, `recall`, `f_score`) on pool3
 * features, through precision_recall.ts. Both feature sets are kept in memory (8 KB per
 * image), so the reference must be a folder of images, not a statistics file.
 */

import type { ImageBatch, Metric, MetricResult } from "../../core/interfaces.ts";
import type { InceptionFeatureExtractor } from "../inception/extractor.ts";
import { POOL3_DIM } from "../inception/model.ts";
import { precisionRecall, type PrecisionRecallOptions } from "./precision_recall.ts";

/** A growable (rows, dim) float32 matrix. */
export class FeatureRows {
  #data: Float32Array;
  #rows = 0;
  constructor(readonly dim: number) {
    this.#data = new Float32Array(256 * dim);
  }
  push(rows: Float32Array): void {
    const need = this.#rows * this.dim + rows.length;
    if (need > this.#data.length) {
      const grown = new Float32Array(Math.max(need, 2 * this.#data.length));
      grown.set(this.#data.subarray(0, this.#rows * this.dim));
      this.#data = grown;
    }
    this.#data.set(rows, this.#rows * this.dim);
    this.#rows += rows.length / this.dim;
  }
  get rows(): number {
    return this.#rows;
  }
  get data(): Float32Array {
    return this.#data.subarray(0, this.#rows * this.dim);
  }
  clear(): void {
    this.#rows = 0;
  }
}

export class PrecisionRecallMetric implements Metric {
  readonly name = "prc";
  readonly #generated = new FeatureRows(POOL3_DIM);

  constructor(
    readonly extractor: InceptionFeatureExtractor,
    readonly reference: FeatureRows,
    readonly options: PrecisionRecallOptions = {},
  ) {}

  async update(images: ImageBatch): Promise<void> {
    this.#generated.push((await this.extractor.extract(images)).pool3);
  }

  compute(): Promise<MetricResult> {
    const r = precisionRecall(
      this.reference.data,
      this.reference.rows,
      this.#generated.data,
      this.#generated.rows,
      POOL3_DIM,
      this.options,
    );
    return Promise.resolve({ precision: r.precision, recall: r.recall, f_score: r.fScore });
  }

  reset(): void {
    this.#generated.clear();
  }
}
