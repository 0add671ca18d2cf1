/**
 * `ssl-encoder`: the trained SSL network as a core `Encoder`. Its patch features come from
 * the last conv feature map (before global pooling), by default passed patch by patch
 * through the projection head, one row per grid cell in raster order, l2-normalised so that
 * K-Means (Euclidean) clusters by direction, i.e. cosine similarity, as the loss measured.
 *
 * The checkpoint is the one `train-ssl-encoder` writes (`<dir>/encoder`, marker
 * `<dir>/encoder.json`); its metadata (kind "ssl-encoder" + the architecture) is all the
 * encoder needs, so task files only name the path.
 */

import { normalizeBatch } from "../../core/image/pipelines.ts";
import { noGrad } from "../../core/autograd.ts";
import type { Encoder, ImageBatch } from "../../core/interfaces.ts";
import { loadCheckpoint, modelWeights } from "../../core/io/checkpoint.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { l2Normalize } from "./loss.ts";
import { SslEncoderNet } from "./model.ts";
import { SSL_KIND, type SslEncoderMeta } from "./train.ts";

const HALF = [0.5, 0.5, 0.5];

/** Accepts the checkpoint path with or without the marker's `.json`. */
function checkpointBase(path: string): string {
  return path.endsWith(".json") ? path.slice(0, -".json".length) : path;
}

/**
 * Which patch features K-Means sees. "head": every patch through the projection head, the
 * space the patch-to-image term trained to name the image (measured: a bag-of-tokens probe of
 * 79% vs 62% for "backbone" on shapes). "backbone": the last conv feature map itself.
 */
export type SslFeatures = "head" | "backbone";

export class SslEncoder implements Encoder {
  readonly name: string;
  readonly inputSize: number;
  readonly gridSize: number;
  readonly featureDim: number;

  constructor(
    readonly net: SslEncoderNet,
    readonly features: SslFeatures = "head",
    readonly normalize = true,
  ) {
    const c = net.cfg;
    this.name = `ssl-encoder-${c.imageSize}px-g${c.grid}-${features}`;
    this.inputSize = c.imageSize;
    this.gridSize = c.grid;
    this.featureDim = features === "head" ? c.projDim : net.featureDim;
    net.eval();
  }

  static async load(
    path: string,
    features: SslFeatures = "head",
    normalize = true,
  ): Promise<SslEncoder> {
    const base = checkpointBase(path);
    const ck = await loadCheckpoint(base);
    const meta = ck.meta as Partial<SslEncoderMeta> | null;
    if (meta?.kind !== SSL_KIND || !meta.config) {
      throw new Error(
        `ssl-encoder: ${base} is not an SSL encoder checkpoint (metadata kind ${
          JSON.stringify(meta?.kind)
        }, want "${SSL_KIND}"); train one with the train-ssl-encoder step`,
      );
    }
    const net = new SslEncoderNet(meta.config, new Rng(0));
    net.loadStateDict(modelWeights(ck.weights), {
      strict: true,
      what: `ssl-encoder checkpoint ${base}`,
    });
    return new SslEncoder(net, features, normalize);
  }

  /** NHWC uint8 -> NCHW in [-1, 1], the range the augmentations produce in training. */
  preprocess(images: ImageBatch): Tensor {
    const { count, height, width } = images;
    if (height !== this.inputSize || width !== this.inputSize) {
      throw new Error(
        `${this.name}: images are ${height}x${width}, expected ${this.inputSize}x${this.inputSize}`,
      );
    }
    // (v / 255 - 0.5) / 0.5: [-1, 1].
    return ops.tensor(normalizeBatch(images, HALF, HALF), [count, 3, height, width]);
  }

  encode(input: Tensor): Tensor {
    const [N, C, H, W] = input.shape;
    if (C !== 3 || H !== this.inputSize || W !== this.inputSize) {
      throw new Error(
        `${this.name}: encode expects (N, 3, ${this.inputSize}, ${this.inputSize}), got [${input.shape}]`,
      );
    }
    const G = this.gridSize;
    return noGrad(() =>
      tidy(() => {
        const fmap = this.net.features(input);
        // Rows by image then raster order: (N * G*G, P) from the head, or (N, D, G, G) permuted.
        const f = this.features === "head"
          ? ops.reshape(this.net.projectPatches(fmap), [N, G * G, this.featureDim])
          : ops.permute(ops.reshape(fmap, [N, this.featureDim, G * G]), [0, 2, 1]);
        return this.normalize ? l2Normalize(f) : ops.contiguous(f);
      })
    );
  }

  dispose(): void {
    this.net.dispose();
  }
}
