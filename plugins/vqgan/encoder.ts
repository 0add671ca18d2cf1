/**
 * VQGAN encoder (MaskGIT/MAGE): conv_in, then per level `numResBlocks` residual blocks
 * and a 2x2 average pool (all levels but the last), two middle blocks, GroupNorm, swish
 * and a 1x1 conv_out to z. Images (B, 3, R, R) in [0, 1] become z (B, zChannels, R/f, R/f)
 * with f = 2^(levels-1), times `patch` when the image is first folded into channels
 * (space-to-depth). Parameter names follow taming's `Encoder`.
 */

import { Conv2d, type GroupNorm, Module } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { spaceToDepth } from "./patch.ts";
import { normalize, type NormSpec, normSwish, ResnetBlock } from "./resnet_block.ts";
import type { VqganConfig } from "./vqgan.ts";

/** One resolution level: a list of blocks (pooling has no parameters). */
class DownLevel extends Module {
  readonly block: ResnetBlock[];
  constructor(blocks: ResnetBlock[]) {
    super();
    this.block = this.list("block", blocks);
  }
}

/** The two residual blocks at the lowest resolution. */
export class MidBlocks extends Module {
  readonly block_1: ResnetBlock;
  readonly block_2: ResnetBlock;
  constructor(channels: number, norm: NormSpec, gen: Rng) {
    super();
    this.block_1 = this.child("block_1", new ResnetBlock(channels, channels, norm, gen));
    this.block_2 = this.child("block_2", new ResnetBlock(channels, channels, norm, gen));
  }
  forward(x: Tensor): Tensor {
    const h = this.block_1.forward(x);
    return consume(h, this.block_2.forward(h));
  }
}

/**
 * Free an intermediate as soon as the next one exists, so inference at 256x256 holds
 * one activation per level instead of all of them. Tensors in a recorded graph stay for
 * the enclosing tidy scope (some backward closures read their inputs).
 */
export function consume(used: Tensor, next: Tensor): Tensor {
  if (!used.requiresGrad) used.dispose();
  return next;
}

export class VqEncoder extends Module {
  readonly conv_in: Conv2d;
  readonly down: DownLevel[];
  readonly mid: MidBlocks;
  /** null when cfg.outNorm is false. */
  readonly norm_out: GroupNorm | null;
  readonly conv_out: Conv2d;

  constructor(readonly cfg: VqganConfig, norm: NormSpec, gen = new Rng(0)) {
    super();
    this.conv_in = this.child(
      "conv_in",
      new Conv2d(cfg.inChannels * (cfg.patch ?? 1) ** 2, cfg.ch, 3, {
        padding: 1,
        bias: false,
        gen,
      }),
    );
    let channels = cfg.ch;
    const levels: DownLevel[] = [];
    for (const mult of cfg.chMult) {
      const out = cfg.ch * mult;
      const blocks: ResnetBlock[] = [];
      for (let j = 0; j < cfg.numResBlocks; j++) {
        blocks.push(new ResnetBlock(channels, out, norm, gen));
        channels = out;
      }
      levels.push(new DownLevel(blocks));
    }
    this.down = this.list("down", levels);
    this.mid = this.child("mid", new MidBlocks(channels, norm, gen));
    this.norm_out = cfg.outNorm === false || cfg.norm === "none"
      ? null
      : this.child("norm_out", normalize(channels, norm));
    this.conv_out = this.child("conv_out", new Conv2d(channels, cfg.zChannels, 1, { gen }));
  }

  /** x (B, inChannels, R, R) in [0, 1] -> z (B, zChannels, R/f, R/f). */
  forward(x: Tensor): Tensor {
    let h = this.conv_in.forward(spaceToDepth(x, this.cfg.patch ?? 1));
    this.down.forEach((level, i) => {
      for (const block of level.block) h = consume(h, block.forward(h));
      if (i !== this.down.length - 1) h = consume(h, ops.avgPool2d(h, { kernel: 2, stride: 2 }));
    });
    h = consume(h, this.mid.forward(h));
    const norm = this.norm_out;
    return consume(h, tidy(() => this.conv_out.forward(norm ? normSwish(norm, h) : h)));
  }
}
