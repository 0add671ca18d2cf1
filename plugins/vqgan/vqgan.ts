/**
 * MaskGIT's VQGAN as MAGE ships it (`vqgan_jax_strongaug.ckpt`, frozen in DiGIT): encoder,
 * vector quantiser and decoder with no attention, no quant_conv and no post_quant_conv.
 * Keys match taming's VQModel exactly (168 tensors for the `mage` preset).
 *
 * The model is a `Decoder` (token grid -> uint8 images) and offers `encode` (images ->
 * token grid). Images are floats in [0, 1] on the way in; the way out truncates
 * clip(x*255) to uint8 as DiGIT does.
 */

import { noGrad } from "../../core/autograd.ts";
import type { Decoder, ImageBatch, TokenGrid } from "../../core/interfaces.ts";
import { Module } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { VqDecoder } from "./decoder.ts";
import { VqEncoder } from "./encoder.ts";
import { imagesToTensor, tensorToImages } from "./images.ts";
import { type QuantizerOutput, VectorQuantizer } from "./quantizer.ts";

export interface VqganConfig {
  /** Base channel count. */
  ch: number;
  /** Channel multiplier per level; levels-1 halvings of the resolution. */
  chMult: number[];
  numResBlocks: number;
  /** Channels of z. */
  zChannels: number;
  /** Codebook dimension: zChannels (MaskGIT, no projection) or fewer (factorised codes, ViT-VQGAN). */
  embedDim: number;
  /** Codebook size. */
  nEmbed: number;
  inChannels: number;
  outCh: number;
  /** Image side the model is used at (sets gridSize = resolution / 2^(levels-1)). */
  resolution: number;
  /** Groups of every GroupNorm (MaskGIT: 32). */
  normGroups: number;
  /** GroupNorm epsilon (MaskGIT: 1e-6). */
  eps: number;
  /** Commitment weight of the quantiser (training only). */
  beta: number;
  /** Pixels per side folded into channels before conv_in and unfolded after conv_out (default 1: none). */
  patch?: number;
  /** l2-normalised lookup of z and the codes (ViT-VQGAN; default false). */
  l2Codes?: boolean;
  /**
   * GroupNorm + swish before each conv_out (default true, MaskGIT). false: conv_out reads the
   * residual stream directly. The norm takes away each image's mean and contrast per channel
   * group, which is where a flat background's or a solid shape's colour lives.
   */
  outNorm?: boolean;
  /**
   * "group" (default, MaskGIT): GroupNorm before every conv of the residual blocks. "none":
   * no normalisation at all, and each block's last conv starts at zero, so every block
   * starts as the identity and the model as a nearly linear autoencoder. Small models
   * trained for a few hundred steps learn colour this way; with GroupNorm they do not.
   */
  norm?: "group" | "none";
}

const base = { inChannels: 3, outCh: 3, eps: 1e-6, beta: 0.25 };

/**
 * `mage` is MAGE's tokenizer (DiGIT config/vqgan/vqgan.yaml): 54.5M parameters, 256 px to a
 * 16x16 grid of 1024 codes. The `cpu*` presets are small enough to train on a CPU. They
 * keep one channel width through all levels: a block that changes width has no skip path
 * (the MaskGIT quirk, out = h + nin_shortcut(h)), and at these sizes such a block loses
 * most colour information early in training (measured on shapes: 16.3 vs 16.9 dB after
 * 200 steps, colours washed out).
 */
export const VQGAN_PRESETS: Record<string, VqganConfig> = {
  mage: {
    ...base,
    ch: 128,
    chMult: [1, 1, 2, 2, 4],
    numResBlocks: 2,
    zChannels: 256,
    embedDim: 256,
    nEmbed: 1024,
    resolution: 256,
    normGroups: 32,
  },
  /** 16x16 images to an 8x8 grid (tests). */
  cpu16: {
    ...base,
    ch: 16,
    chMult: [1, 1],
    numResBlocks: 1,
    zChannels: 16,
    embedDim: 16,
    nEmbed: 256,
    resolution: 16,
    normGroups: 8,
  },
  /** 32x32 images to an 8x8 grid. */
  cpu32: {
    ...base,
    ch: 32,
    chMult: [1, 1, 1],
    numResBlocks: 1,
    zChannels: 32,
    embedDim: 32,
    nEmbed: 512,
    resolution: 32,
    normGroups: 8,
  },
  /** 64x64 images to a 16x16 grid (DiGIT's 256 tokens per image). */
  cpu64: {
    ...base,
    ch: 32,
    chMult: [1, 1, 1],
    numResBlocks: 2,
    zChannels: 32,
    embedDim: 32,
    nEmbed: 1024,
    resolution: 64,
    normGroups: 8,
  },
};

/** Image pixels per code along each side: the patch fold times one halving per level but the last. */
export function vqganDownsampling(cfg: VqganConfig): number {
  return (cfg.patch ?? 1) * 2 ** (cfg.chMult.length - 1);
}

export function vqganGridSize(cfg: VqganConfig): number {
  return cfg.resolution / vqganDownsampling(cfg);
}

export interface VqganForward {
  reconstruction: Tensor;
  vq: QuantizerOutput;
}

export class VQGAN extends Module implements Decoder {
  readonly name = "vqgan";
  readonly encoder: VqEncoder;
  readonly decoder: VqDecoder;
  readonly quantize: VectorQuantizer;
  readonly gridSize: number;
  readonly imageSize: number;
  /** Images per decoder call in `decode`/`encode` (bounds memory at 256 px). */
  batchSize = 4;

  constructor(readonly cfg: VqganConfig, gen = new Rng(0)) {
    super();
    if (cfg.embedDim > cfg.zChannels) {
      throw new Error(
        `vqgan: embedDim ${cfg.embedDim} exceeds zChannels ${cfg.zChannels} (codes are looked up in zChannels or fewer dimensions)`,
      );
    }
    const grid = vqganGridSize(cfg);
    if (!Number.isInteger(grid) || grid < 1) {
      throw new Error(
        `vqgan: resolution ${cfg.resolution} is not divisible by the downsampling factor ${
          vqganDownsampling(cfg)
        }`,
      );
    }
    const norm = { groups: cfg.normGroups, eps: cfg.eps, kind: cfg.norm ?? "group" };
    this.encoder = this.child("encoder", new VqEncoder(cfg, norm, gen));
    this.decoder = this.child("decoder", new VqDecoder(cfg, norm, gen));
    this.quantize = this.child(
      "quantize",
      new VectorQuantizer(cfg.nEmbed, cfg.embedDim, cfg.beta, gen, {
        zDim: cfg.zChannels,
        l2: cfg.l2Codes,
      }),
    );
    this.gridSize = grid;
    this.imageSize = cfg.resolution;
  }

  /** Training pass: images (B, 3, R, R) -> reconstruction and quantiser output. */
  forward(x: Tensor): VqganForward {
    const vq = this.quantize.forward(this.encoder.forward(x));
    return { reconstruction: this.decoder.forward(vq.quantized), vq };
  }

  /** Images (B, 3, R, R) in [0, 1] -> code ids (B, g*g) i32, raster order. */
  encodeTensor(x: Tensor): Tensor {
    return noGrad(() => tidy(() => this.quantize.indices(this.encoder.forward(x))));
  }

  /** Code ids (B, h*w) -> images (B, 3, h*f, w*f), nominally in [0, 1]. */
  decodeTensor(ids: Tensor, height = this.gridSize, width = this.gridSize): Tensor {
    return noGrad(() => tidy(() => this.decoder.forward(this.quantize.lookup(ids, height, width))));
  }

  /** uint8 images -> token grids (the VQ ids stage 2 is trained on). */
  async encode(images: ImageBatch): Promise<TokenGrid> {
    const f = vqganDownsampling(this.cfg);
    if (images.height % f !== 0 || images.width % f !== 0) {
      throw new Error(
        `vqgan.encode: ${images.height}x${images.width} images are not divisible by the downsampling factor ${f}`,
      );
    }
    const h = images.height / f, w = images.width / f;
    const tokens = new Int32Array(images.count * h * w);
    for (let i = 0; i < images.count; i += this.batchSize) {
      const n = Math.min(this.batchSize, images.count - i);
      const ids = tidy(() => this.encodeTensor(imagesToTensor(images, i, n)));
      tokens.set((await ids.data()) as Int32Array, i * h * w);
      ids.dispose();
    }
    return { tokens, count: images.count, height: h, width: w };
  }

  /** Token grids (ids 0..nEmbed-1, no offset) -> uint8 images. */
  async decode(grid: TokenGrid): Promise<ImageBatch> {
    const L = grid.height * grid.width;
    if (grid.tokens.length !== grid.count * L) {
      throw new Error(
        `vqgan.decode: ${grid.tokens.length} tokens do not fill ${grid.count} grids of ${grid.height}x${grid.width}`,
      );
    }
    for (const t of grid.tokens) {
      if (t < 0 || t >= this.cfg.nEmbed) {
        throw new Error(
          `vqgan.decode: token ${t} is outside the codebook 0..${this.cfg.nEmbed - 1}`,
        );
      }
    }
    const f = vqganDownsampling(this.cfg);
    const H = grid.height * f, W = grid.width * f;
    const out = new Uint8Array(grid.count * H * W * 3);
    for (let i = 0; i < grid.count; i += this.batchSize) {
      const n = Math.min(this.batchSize, grid.count - i);
      const x = tidy(() => {
        const ids = ops.tensor(grid.tokens.subarray(i * L, (i + n) * L), [n, L], { dtype: "i32" });
        return this.decodeTensor(ids, grid.height, grid.width);
      });
      const imgs = await tensorToImages(x);
      x.dispose();
      out.set(imgs.data, i * H * W * 3);
    }
    return { data: out, count: grid.count, height: H, width: W };
  }
}
