/**
 * Frechet distance on the features of any registered Encoder (FD-DINOv2 style, Stein et al.
 * 2023): the same Gaussian statistics and distance as FID, with the Inception network
 * replaced by the encoder.
 *
 * The Encoder interface yields a patch grid (N, L, D); the image feature is the mean over the
 * L patches ("mean"). An encoder that also offers `encodeGlobal` (a CLS token, which is what
 * FD-DINOv2 uses) can be asked for it with pooling "cls".
 */

import { noGrad } from "../../core/autograd.ts";
import type { Encoder, ImageBatch, Metric, MetricResult } from "../../core/interfaces.ts";
import * as ops from "../../core/ops/mod.ts";
import type { Tensor } from "../../core/tensor.ts";
import { frechetDistance } from "./frechet.ts";
import { FeatureStats, type GaussianStats } from "./stats.ts";

export type EncoderPooling = "mean" | "cls";

/** An Encoder that can also return one global vector per image, (N, D). */
export interface GlobalEncoder extends Encoder {
  encodeGlobal?(input: Tensor): Tensor;
}

/** The feature name recorded in statistics files, e.g. "dinov2-vitl14-mean". */
export const encoderFeatureName = (encoder: Encoder, pooling: EncoderPooling): string =>
  `${encoder.name}-${pooling}`;

/** (N, D) image features of a batch, `chunk` images per encoder call. */
export async function encoderFeatures(
  encoder: GlobalEncoder,
  images: ImageBatch,
  pooling: EncoderPooling = "mean",
  chunk = 16,
): Promise<Float32Array> {
  if (pooling === "cls" && !encoder.encodeGlobal) {
    throw new Error(`encoder '${encoder.name}' has no global (CLS) output; use pooling "mean"`);
  }
  const D = encoder.featureDim;
  const out = new Float32Array(images.count * D);
  const pixels = images.height * images.width * 3;
  for (let start = 0; start < images.count; start += chunk) {
    const n = Math.min(chunk, images.count - start);
    const part: ImageBatch = {
      data: images.data.subarray(start * pixels, (start + n) * pixels),
      count: n,
      height: images.height,
      width: images.width,
    };
    const features = noGrad(() => {
      const x = encoder.preprocess(part);
      let f: Tensor;
      if (pooling === "cls") f = encoder.encodeGlobal!(x);
      else {
        const grid = encoder.encode(x);
        f = ops.mean(grid, 1);
        grid.dispose();
      }
      x.dispose();
      return f;
    });
    if (features.ndim !== 2 || features.shape[0] !== n || features.shape[1] !== D) {
      throw new Error(
        `encoder '${encoder.name}': expected (${n}, ${D}) features, got [${features.shape}]`,
      );
    }
    out.set(await features.data(), start * D);
    features.dispose();
  }
  return out;
}

export class EncoderFrechetMetric implements Metric {
  readonly name: string;
  readonly #stats: FeatureStats;

  constructor(
    readonly encoder: GlobalEncoder,
    readonly reference: GaussianStats,
    readonly pooling: EncoderPooling = "mean",
  ) {
    this.name = `fd-${encoder.name}`;
    if (reference.dim !== encoder.featureDim) {
      throw new Error(
        `${this.name}: reference statistics have ${reference.dim} dimensions, the encoder gives ${encoder.featureDim}`,
      );
    }
    this.#stats = new FeatureStats(encoder.featureDim);
  }

  async update(images: ImageBatch): Promise<void> {
    this.#stats.update(await encoderFeatures(this.encoder, images, this.pooling));
  }

  statistics(): GaussianStats {
    if (this.#stats.count < 2) {
      throw new Error(`${this.name} needs at least 2 generated images, got ${this.#stats.count}`);
    }
    return this.#stats.finalize();
  }

  compute(): Promise<MetricResult> {
    const g = this.statistics();
    const d = frechetDistance(g.mu, g.sigma, this.reference.mu, this.reference.sigma);
    return Promise.resolve({ [`frechet_distance_${this.encoder.name}`]: d });
  }

  reset(): void {
    this.#stats.reset();
  }
}

/** Encoder-feature statistics of a stream of batches (a reference set). */
export async function encoderStats(
  encoder: GlobalEncoder,
  batches: AsyncIterable<ImageBatch>,
  pooling: EncoderPooling = "mean",
): Promise<GaussianStats> {
  const stats = new FeatureStats(encoder.featureDim);
  for await (const batch of batches) stats.update(await encoderFeatures(encoder, batch, pooling));
  return stats.finalize();
}
