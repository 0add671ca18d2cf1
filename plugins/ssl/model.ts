/**
 * The self-supervised encoder: a small all-convolutional network whose last feature map is
 * the patch grid the tokenizer sees, plus a projection head used only while training.
 *
 *   image (3, S, S) -> conv3x3 + GroupNorm + ReLU at S                      (stem)
 *                   -> one stride-2 conv3x3 block per halving until S / grid == 1
 *                   -> `depth` conv3x3 blocks at grid x grid                (patch features)
 *   training only:  global average pool -> Linear -> ReLU -> Linear        (projection head)
 *                   and the same head on every patch (the patch-to-image loss)
 *
 * The grid blocks are residual so that extra depth only widens the receptive field (each
 * adds 2 * (S / grid) pixels) without making the small network harder to train. With
 * S = 32 and grid 8 the patch features see 25 x 25 pixels at depth 2: enough of a shape to
 * say which shape it is part of. GroupNorm rather than BatchNorm: the runtime has no batch
 * statistics, and GroupNorm behaves the same in training and inference.
 */

import { Conv2d, GroupNorm, Linear } from "../../core/nn/layers.ts";
import { Module } from "../../core/nn/module.ts";
import * as ops from "../../core/ops/mod.ts";
import type { Rng } from "../../core/random.ts";
import type { Tensor } from "../../core/tensor.ts";

/**
 * What the first conv sees. "rgb": the image. "edges": a fixed, colour- and polarity-free
 * front end, the Sobel gradient magnitude over the three channels (one plane). "oriented":
 * the same magnitude m plus the edge orientation as the doubled-angle vector m (cos 2a,
 * sin 2a) of the colour structure tensor (three planes), still free of colour and polarity.
 */
export type SslInput = "rgb" | "edges" | "oriented";

export interface SslModelConfig {
  input: SslInput;
  /** Side of the (square) input image. */
  imageSize: number;
  /** Side of the patch grid; imageSize / grid must be a power of two. */
  grid: number;
  /** Kernel and stride of the stem conv (stride 4 with kernel 4: a patchify stem). */
  stemKernel: number;
  stemStride: number;
  /** Channels of the stem, then of each halving (the last is the feature dimension). */
  widths: number[];
  /** Residual conv3x3 blocks at the grid resolution. */
  depth: number;
  /** Hidden and output width of the projection head. */
  projHidden: number;
  projDim: number;
  /** GroupNorm groups (must divide every width). */
  groups: number;
}

/** Halvings from imageSize to grid; throws unless the ratio is a power of two. */
export function halvings(imageSize: number, grid: number): number {
  const ratio = imageSize / grid;
  const n = Math.round(Math.log2(ratio));
  if (!Number.isInteger(ratio) || 2 ** n !== ratio) {
    throw new Error(`ssl-encoder: image size ${imageSize} / grid ${grid} must be a power of two`);
  }
  return n;
}

/** Checks a config and fills `widths` to one entry per halving plus the stem. */
export function checkConfig(cfg: SslModelConfig): SslModelConfig {
  if (cfg.imageSize % cfg.stemStride !== 0) {
    throw new Error(
      `ssl-encoder: image size ${cfg.imageSize} is not a multiple of the stem stride ${cfg.stemStride}`,
    );
  }
  const need = halvings(cfg.imageSize / cfg.stemStride, cfg.grid) + 1;
  if (cfg.widths.length !== need) {
    throw new Error(
      `ssl-encoder: widths [${cfg.widths}] must have ${need} entries (the stem + one per halving from ${cfg.imageSize} to ${cfg.grid})`,
    );
  }
  for (const w of cfg.widths) {
    if (w % cfg.groups !== 0) {
      throw new Error(`ssl-encoder: width ${w} is not a multiple of groups ${cfg.groups}`);
    }
  }
  return cfg;
}

/** Sobel x and y kernels for each of 3 channels: a grouped conv weight (6, 1, 3, 3). */
const SOBEL = (() => {
  const gx = [-1, 0, 1, -2, 0, 2, -1, 0, 1], gy = [-1, -2, -1, 0, 0, 0, 1, 2, 1];
  return Float32Array.from([gx, gy, gx, gy, gx, gy].flat().map((v) => v / 4));
})();

/**
 * From the colour structure tensor J = sum over channels of (gx, gy)^T (gx, gy):
 * m = sqrt(Jxx + Jyy), the edge strength, the same for a red star on green as for a green
 * star on red; with `oriented`, also (Jxx - Jyy) / m and 2 Jxy / m, which are m (cos 2a,
 * sin 2a) for an edge at angle a. (N, 1 or 3, S, S); no parameters, no gradient needed.
 */
export function edgeFeatures(x: Tensor, oriented: boolean): Tensor {
  const [N, , H, W] = x.shape;
  const g = ops.reshape(
    ops.conv2d(x, ops.tensor(SOBEL, [6, 1, 3, 3]), null, { padding: 1, groups: 3 }),
    [N, 3, 2, H, W],
  );
  const gx = ops.slice(g, 2, 0, 1), gy = ops.slice(g, 2, 1, 2);
  const jxx = ops.sum(ops.square(gx), 1), jyy = ops.sum(ops.square(gy), 1); // (N, 1, H, W)
  const m = ops.sqrt(ops.add(ops.add(jxx, jyy), 1e-6));
  if (!oriented) return m;
  const jxy = ops.sum(ops.mul(gx, gy), 1);
  return ops.cat([m, ops.div(ops.sub(jxx, jyy), m), ops.div(ops.mul(jxy, 2), m)], 1);
}

/** conv -> GroupNorm -> ReLU. */
class ConvBlock extends Module {
  readonly conv: Conv2d;
  readonly norm: GroupNorm;
  constructor(
    inC: number,
    outC: number,
    kernel: number,
    stride: number,
    groups: number,
    gen: Rng,
  ) {
    super();
    // "same" padding for odd kernels; none for a patchify kernel == stride.
    const padding = kernel === stride ? 0 : (kernel - 1) >> 1;
    this.conv = this.child(
      "conv",
      new Conv2d(inC, outC, kernel, { stride, padding, bias: false, gen }),
    );
    this.norm = this.child("norm", new GroupNorm(groups, outC));
  }
  forward(x: Tensor): Tensor {
    return ops.relu(this.norm.forward(this.conv.forward(x)));
  }
}

/** x + block(x): the grid blocks only widen the receptive field. */
class ResidualBlock extends Module {
  readonly block: ConvBlock;
  constructor(channels: number, groups: number, gen: Rng) {
    super();
    this.block = this.child("block", new ConvBlock(channels, channels, 3, 1, groups, gen));
  }
  forward(x: Tensor): Tensor {
    return ops.add(x, this.block.forward(x));
  }
}

export class SslEncoderNet extends Module {
  readonly stages: ConvBlock[];
  readonly blocks: ResidualBlock[];
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly featureDim: number;

  constructor(readonly cfg: SslModelConfig, gen: Rng) {
    super();
    checkConfig(cfg);
    const w = cfg.widths;
    this.stages = this.list(
      "stages",
      w.map((c, i) =>
        i === 0
          ? new ConvBlock(
            cfg.input === "edges" ? 1 : 3,
            c,
            cfg.stemKernel,
            cfg.stemStride,
            cfg.groups,
            gen,
          )
          : new ConvBlock(w[i - 1], c, 3, 2, cfg.groups, gen)
      ),
    );
    this.featureDim = w[w.length - 1];
    this.blocks = this.list(
      "blocks",
      Array.from({ length: cfg.depth }, () => new ResidualBlock(this.featureDim, cfg.groups, gen)),
    );
    this.fc1 = this.child("fc1", new Linear(this.featureDim, cfg.projHidden, { gen }));
    this.fc2 = this.child("fc2", new Linear(cfg.projHidden, cfg.projDim, { gen }));
  }

  /** (N, 3, S, S) in [-1, 1] -> (N, C, grid, grid): the patch feature map. */
  features(x: Tensor): Tensor {
    let h = this.cfg.input === "rgb" ? x : edgeFeatures(x, this.cfg.input === "oriented");
    for (const m of [...this.stages, ...this.blocks]) h = m.forward(h);
    return h;
  }

  /** Feature map -> (N, projDim) embedding for the contrastive loss. */
  project(fmap: Tensor): Tensor {
    return this.head(ops.mean(fmap, [2, 3]));
  }

  /** Feature map -> (N * grid^2, projDim): every patch through the same head, rows by image then raster. */
  projectPatches(fmap: Tensor): Tensor {
    const [N, C, H, W] = fmap.shape;
    return this.head(ops.reshape(ops.permute(fmap, [0, 2, 3, 1]), [N * H * W, C]));
  }

  head(x: Tensor): Tensor {
    return this.fc2.forward(ops.relu(this.fc1.forward(x)));
  }
}
