/**
 * KMeansTokenizer: DiGIT's semantic tokenizer. An encoder turns each image into a grid of
 * feature vectors; each vector becomes the id of its nearest K-Means centroid
 * (dist = |x|^2 - 2 x.c + |c|^2, first minimum on ties), in raster order. Ids carry no
 * dictionary offset; stage 1 adds fairseq's 5 specials itself.
 */

import type { Encoder, ImageBatch, TokenGrid, Tokenizer } from "../../core/interfaces.ts";
import type { Tensor } from "../../core/tensor.ts";
import { tidyAsync } from "../../core/tensor.ts";
import { CentroidIndex } from "../kmeans/assign.ts";
import type { Centroids } from "../kmeans/centroids.ts";

/** Image sides an encoder accepts: its network input, and its `imageSize` when it declares one. */
export function acceptedImageSizes(encoder: Encoder): number[] {
  const declared = (encoder as Encoder & { imageSize?: number }).imageSize;
  return declared !== undefined && declared !== encoder.inputSize
    ? [declared, encoder.inputSize]
    : [encoder.inputSize];
}

export interface KMeansTokenizerOptions {
  name?: string;
  /** Images per encoder call (bounds memory); default 16. */
  batchSize?: number;
  /** dispose() also disposes the encoder (when the tokenizer made it). */
  ownsEncoder?: boolean;
}

export class KMeansTokenizer implements Tokenizer {
  readonly name: string;
  readonly vocabSize: number;
  readonly gridSize: number;
  readonly batchSize: number;
  readonly #index: CentroidIndex;
  readonly #ownsEncoder: boolean;

  constructor(readonly encoder: Encoder, centroids: Centroids, opts: KMeansTokenizerOptions = {}) {
    if (centroids.dim !== encoder.featureDim) {
      throw new Error(
        `KMeansTokenizer: the centroids have dimension ${centroids.dim} (${centroids.k} x ${centroids.dim}) ` +
          `but encoder '${encoder.name}' gives features of dimension ${encoder.featureDim}`,
      );
    }
    this.vocabSize = centroids.k;
    this.gridSize = encoder.gridSize;
    this.batchSize = opts.batchSize ?? 16;
    this.name = opts.name ?? `kmeans${centroids.k}-${encoder.name}`;
    this.#index = new CentroidIndex(centroids.data, centroids.k, centroids.dim);
    this.#ownsEncoder = opts.ownsEncoder ?? false;
  }

  /** Features (N, L, D) -> token ids (N, L), i32, on the device. */
  featuresToTokens(features: Tensor): Tensor {
    if (features.ndim !== 3) {
      throw new Error(`${this.name}: features must be (N, L, D), got [${features.shape}]`);
    }
    return this.#index.assign(features);
  }

  #checkImages(images: ImageBatch): void {
    const sizes = acceptedImageSizes(this.encoder);
    const { height: h, width: w } = images;
    if (h !== w || !sizes.includes(h)) {
      throw new Error(
        `${this.name}: images are ${h}x${w} but encoder '${this.encoder.name}' takes ` +
          `${sizes.map((s) => `${s}x${s}`).join(" or ")}; resize and crop them first`,
      );
    }
    if (images.data.length !== images.count * h * w * 3) {
      throw new Error(
        `${this.name}: ${images.count} images of ${h}x${w}x3 need ${
          images.count * h * w * 3
        } bytes, got ${images.data.length}`,
      );
    }
  }

  /** uint8 images -> (count, grid^2) token ids, raster order, in batches of `batchSize`. */
  async tokenize(images: ImageBatch): Promise<TokenGrid> {
    this.#checkImages(images);
    const { count, height: h, width: w } = images;
    const L = this.gridSize * this.gridSize;
    const tokens = new Int32Array(count * L);
    const per = h * w * 3;
    for (let s = 0; s < count; s += this.batchSize) {
      const n = Math.min(this.batchSize, count - s);
      const part: ImageBatch = {
        data: images.data.subarray(s * per, (s + n) * per),
        count: n,
        height: h,
        width: w,
      };
      const ids = await tidyAsync(async () => {
        const feats = this.encoder.encode(this.encoder.preprocess(part));
        if (feats.ndim !== 3 || feats.shape[0] !== n || feats.shape[1] !== L) {
          throw new Error(
            `${this.name}: encoder '${this.encoder.name}' returned [${feats.shape}], expected [${n}, ${L}, ${this.encoder.featureDim}]`,
          );
        }
        return await this.featuresToTokens(feats).data();
      });
      tokens.set(ids, s * L);
    }
    return { tokens, count, height: this.gridSize, width: this.gridSize };
  }

  dispose(): void {
    this.#index.dispose();
    if (this.#ownsEncoder) this.encoder.dispose?.();
  }
}
