/**
 * uint8 image batches to Inception features on the host: pool3 (N, 2048) for FID and
 * logits_unbiased (N, 1008) for IS, computed in chunks so that memory stays bounded
 * (the first activations are ~2.8 MB per image).
 *
 * FID and IS usually read the same images: the extractor remembers the features of the
 * last batch it saw (by object identity), so two metrics sharing one extractor cost one
 * pass through the network.
 */

import type { ImageBatch } from "../../core/interfaces.ts";
import type { FidInceptionV3 } from "./model.ts";
import { INCEPTION_CLASSES, POOL3_DIM } from "./model.ts";
import { inceptionInput } from "./preprocess.ts";
import { loadFidInception } from "./weights.ts";

export interface InceptionFeatures {
  count: number;
  /** (count, 2048) row-major. */
  pool3: Float32Array;
  /** (count, 1008) row-major: pool3 @ fc.weight^T. */
  logitsUnbiased: Float32Array;
}

export class InceptionFeatureExtractor {
  #last: { images: ImageBatch; features: InceptionFeatures } | null = null;

  /** `chunk`: images per network call (8 keeps the peak near 200 MB). */
  constructor(readonly model: FidInceptionV3, readonly chunk = 8) {
    if (!Number.isInteger(chunk) || chunk < 1) {
      throw new Error(`InceptionFeatureExtractor: bad chunk ${chunk}`);
    }
  }

  async extract(images: ImageBatch): Promise<InceptionFeatures> {
    if (this.#last?.images === images) return this.#last.features;
    const n = images.count;
    const pool3 = new Float32Array(n * POOL3_DIM);
    const logitsUnbiased = new Float32Array(n * INCEPTION_CLASSES);
    for (let start = 0; start < n; start += this.chunk) {
      const end = Math.min(n, start + this.chunk);
      const x = inceptionInput(images, start, end, this.model.fc.weight.backend);
      const out = this.model.forward(x);
      x.dispose();
      pool3.set(await out.pool3.data(), start * POOL3_DIM);
      logitsUnbiased.set(await out.logitsUnbiased.data(), start * INCEPTION_CLASSES);
      out.pool3.dispose();
      out.logitsUnbiased.dispose();
    }
    const features = { count: n, pool3, logitsUnbiased };
    this.#last = { images, features };
    return features;
  }

  dispose(): void {
    this.#last = null;
    this.model.dispose();
  }
}

const shared = new Map<string, Promise<InceptionFeatureExtractor>>();

/**
 * One extractor per weight file for the whole process, so the metrics of one evaluation
 * (FID, IS, precision/recall) load the 95 MB of weights once and share forward passes.
 * Shared extractors live as long as the process: do not dispose them.
 */
export function sharedInceptionExtractor(weightsPath: string): Promise<InceptionFeatureExtractor> {
  let p = shared.get(weightsPath);
  if (!p) {
    p = loadFidInception(weightsPath).then((m) => new InceptionFeatureExtractor(m));
    p.catch(() => shared.delete(weightsPath));
    shared.set(weightsPath, p);
  }
  return p;
}
