/**
 * FID as torch-fidelity reports it (`frechet_inception_distance`): pool3 features of the FID
 * Inception-v3, float64 mean and covariance (np.cov convention), and the Frechet distance to
 * the reference statistics (frechet.ts: the symmetric eigenvalue form of tr sqrt(S1 S2)).
 */

import type { ImageBatch, Metric, MetricResult } from "../../core/interfaces.ts";
import type { InceptionFeatureExtractor } from "../inception/extractor.ts";
import { POOL3_DIM } from "../inception/model.ts";
import { frechetDistanceParts } from "./frechet.ts";
import { FeatureStats, type GaussianStats } from "./stats.ts";

/** The feature name recorded in statistics files made from pool3. */
export const INCEPTION_FEATURE = "inception-v3-compat-pool3";

export class FidMetric implements Metric {
  readonly name = "fid";
  readonly #stats = new FeatureStats(POOL3_DIM);

  constructor(readonly extractor: InceptionFeatureExtractor, readonly reference: GaussianStats) {
    if (reference.dim !== POOL3_DIM) {
      throw new Error(
        `FidMetric: reference statistics have ${reference.dim} dimensions, pool3 has ${POOL3_DIM}`,
      );
    }
  }

  async update(images: ImageBatch): Promise<void> {
    this.#stats.update((await this.extractor.extract(images)).pool3);
  }

  get count(): number {
    return this.#stats.count;
  }

  /** Mean and covariance of the images seen so far (at least 2). */
  statistics(): GaussianStats {
    if (this.count < 2) throw new Error(`FID needs at least 2 generated images, got ${this.count}`);
    return this.#stats.finalize();
  }

  compute(): Promise<MetricResult> {
    const g = this.statistics();
    const parts = frechetDistanceParts(g.mu, g.sigma, this.reference.mu, this.reference.sigma);
    return Promise.resolve({ frechet_inception_distance: parts.distance });
  }

  reset(): void {
    this.#stats.reset();
  }
}

/** pool3 statistics of a stream of batches (a reference set, typically). */
export async function inceptionStats(
  extractor: InceptionFeatureExtractor,
  batches: AsyncIterable<ImageBatch>,
  onBatch?: (done: number) => void,
): Promise<GaussianStats> {
  const stats = new FeatureStats(POOL3_DIM);
  for await (const batch of batches) {
    stats.update((await extractor.extract(batch)).pool3);
    onBatch?.(stats.count);
  }
  return stats.finalize();
}
