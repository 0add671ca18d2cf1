/**
 * DINOv2 as DiGIT's tokenizer encoder (spec §1.2-1.3, DiGIT's `prepare_semantic`):
 *
 *   256x256 uint8 crop -> ToTensor ([0,1]) -> Normalize(ImageNet mean, std)
 *   -> F.interpolate(scale_factor=224/256, bicubic, align_corners=False, no antialias)
 *   -> ViT -> output of block depth-3 ("l3") -> final norm -> 256 patch tokens
 *
 * A 224x224 input skips the resize, as DiGIT does for its linear-probe path.
 */

import type { Encoder, ImageBatch } from "../../core/interfaces.ts";
import { noGrad } from "../../core/autograd.ts";
import { interpolateBicubic } from "../../core/image/interpolate_torch.ts";
import { IMAGENET_MEAN, IMAGENET_STD } from "../../core/image/transforms.ts";
import * as ops from "../../core/ops/mod.ts";
import type { Tensor } from "../../core/tensor.ts";
import type { DinoVisionTransformer } from "./vision_transformer.ts";

export interface Dinov2EncoderOptions {
  /** DiGIT's `layer`: features come from block depth - layer (3 = "l3"). */
  layerFromEnd?: number;
  /** Side of the images handed to `preprocess` (DiGIT: 256). */
  imageSize?: number;
  /** Side of the network input (DiGIT: 224 = 16 patches of 14). */
  inputSize?: number;
}

/** uint8 NHWC images to normalised NCHW float32, exactly as ToTensor + Normalize round. */
export function normalizeImages(
  images: ImageBatch,
  mean = IMAGENET_MEAN,
  std = IMAGENET_STD,
): Float32Array {
  const { count, height: H, width: W, data } = images;
  if (data.length !== count * H * W * 3) {
    throw new Error(
      `normalizeImages: ${count}x${H}x${W}x3 needs ${count * H * W * 3} bytes, got ${data.length}`,
    );
  }
  const out = new Float32Array(count * 3 * H * W);
  const plane = H * W;
  for (let c = 0; c < 3; c++) {
    const m = Math.fround(mean[c]), s = Math.fround(std[c]);
    for (let n = 0; n < count; n++) {
      const dst = (n * 3 + c) * plane;
      const src = n * plane * 3 + c;
      for (let i = 0; i < plane; i++) {
        out[dst + i] = Math.fround(Math.fround(data[src + 3 * i] / 255) - m) / s;
      }
    }
  }
  return out;
}

export class Dinov2Encoder implements Encoder {
  readonly name: string;
  readonly inputSize: number;
  readonly imageSize: number;
  readonly gridSize: number;
  readonly featureDim: number;
  /** Index of the block whose (normalised) output is the feature. */
  readonly block: number;

  constructor(readonly model: DinoVisionTransformer, opts: Dinov2EncoderOptions = {}) {
    const cfg = model.cfg;
    this.inputSize = opts.inputSize ?? 224;
    this.imageSize = opts.imageSize ?? 256;
    if (this.inputSize % cfg.patchSize !== 0) {
      throw new Error(
        `dinov2 encoder: input size ${this.inputSize} is not a multiple of the patch size ${cfg.patchSize}`,
      );
    }
    this.gridSize = this.inputSize / cfg.patchSize;
    this.featureDim = cfg.embedDim;
    this.block = model.blockFromEnd(opts.layerFromEnd ?? 3);
    this.name = `dinov2-${cfg.name}-block${this.block}`;
  }

  /** (N, 3, inputSize, inputSize) normalised input from 256 (or 224) pixel crops. */
  preprocess(images: ImageBatch): Tensor {
    const { count, height, width } = images;
    const ok = height === width && (height === this.imageSize || height === this.inputSize);
    if (!ok) {
      throw new Error(
        `${this.name}: images are ${height}x${width} but the encoder takes ${this.imageSize}x${this.imageSize} ` +
          `(resized to ${this.inputSize}) or ${this.inputSize}x${this.inputSize}; crop them first`,
      );
    }
    const x = normalizeImages(images);
    if (height === this.inputSize) return ops.tensor(x, [count, 3, height, width]);
    // On the host, whatever the backend: the CPU resize kernel (through interpolate_torch.ts)
    // reproduces torch's float32 bicubic bit for bit.
    const r = interpolateBicubic(x, count * 3, height, width, {
      scaleFactor: this.inputSize / this.imageSize,
    });
    return ops.tensor(r.data, [count, 3, r.height, r.width]);
  }

  /** (N, 3, inputSize, inputSize) -> (N, gridSize^2, featureDim), raster order. */
  encode(input: Tensor): Tensor {
    if (
      input.ndim !== 4 || input.shape[1] !== 3 || input.shape[2] !== this.inputSize ||
      input.shape[3] !== this.inputSize
    ) {
      throw new Error(
        `${this.name}: encode expects (N, 3, ${this.inputSize}, ${this.inputSize}), got [${input.shape}]`,
      );
    }
    return noGrad(() => this.model.patchFeatures(input, this.block));
  }

  dispose(): void {
    this.model.dispose();
  }
}
