/**
 * VQGAN decoder (MaskGIT/MAGE): 3x3 conv_in from z, two middle blocks, then levels from the
 * deepest to the shallowest, each `numResBlocks` residual blocks followed (except at level
 * 0) by nearest-neighbour x2 upsampling and a 3x3 conv; GroupNorm, swish, 3x3 conv_out to
 * RGB (unfolded from p*p*3 channels when `patch` = p > 1). Parameter names follow taming's `Decoder` (`up.{i}` is indexed by level, so the
 * first level run is `up.{levels-1}`).
 */

import { Conv2d, type GroupNorm, Module } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { consume, MidBlocks } from "./encoder.ts";
import { depthToSpace } from "./patch.ts";
import { normalize, type NormSpec, normSwish, ResnetBlock } from "./resnet_block.ts";
import type { VqganConfig } from "./vqgan.ts";

class Upsample extends Module {
  readonly conv: Conv2d;
  constructor(channels: number, gen: Rng) {
    super();
    this.conv = this.child("conv", new Conv2d(channels, channels, 3, { padding: 1, gen }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.conv.forward(ops.interpolate(x, { scaleFactor: 2, mode: "nearest" })));
  }
}

class UpLevel extends Module {
  readonly block: ResnetBlock[];
  readonly upsample: Upsample | null;
  constructor(blocks: ResnetBlock[], upsample: Upsample | null) {
    super();
    this.block = this.list("block", blocks);
    this.upsample = upsample ? this.child("upsample", upsample) : null;
  }
}

export class VqDecoder extends Module {
  readonly conv_in: Conv2d;
  readonly mid: MidBlocks;
  readonly up: UpLevel[];
  /** null when cfg.outNorm is false. */
  readonly norm_out: GroupNorm | null;
  readonly conv_out: Conv2d;

  constructor(readonly cfg: VqganConfig, norm: NormSpec, gen = new Rng(0)) {
    super();
    const levels = cfg.chMult.length;
    let channels = cfg.ch * cfg.chMult[levels - 1];
    this.conv_in = this.child(
      "conv_in",
      new Conv2d(cfg.zChannels, channels, 3, { padding: 1, gen }),
    );
    this.mid = this.child("mid", new MidBlocks(channels, norm, gen));
    const up: UpLevel[] = new Array(levels);
    for (let i = levels - 1; i >= 0; i--) {
      const out = cfg.ch * cfg.chMult[i];
      const blocks: ResnetBlock[] = [];
      for (let j = 0; j < cfg.numResBlocks; j++) {
        blocks.push(new ResnetBlock(channels, out, norm, gen));
        channels = out;
      }
      up[i] = new UpLevel(blocks, i !== 0 ? new Upsample(channels, gen) : null);
    }
    this.up = this.list("up", up);
    this.norm_out = cfg.outNorm === false || cfg.norm === "none"
      ? null
      : this.child("norm_out", normalize(channels, norm));
    this.conv_out = this.child(
      "conv_out",
      new Conv2d(channels, cfg.outCh * (cfg.patch ?? 1) ** 2, 3, { padding: 1, gen }),
    );
  }

  /** z (B, zChannels, g, g) -> images (B, outCh, g*f, g*f), nominally in [0, 1]. */
  forward(z: Tensor): Tensor {
    let h = this.conv_in.forward(z);
    h = consume(h, this.mid.forward(h));
    for (let i = this.up.length - 1; i >= 0; i--) {
      for (const block of this.up[i].block) h = consume(h, block.forward(h));
      const up = this.up[i].upsample;
      if (up) h = consume(h, up.forward(h));
    }
    const p = this.cfg.patch ?? 1;
    const norm = this.norm_out;
    return consume(
      h,
      tidy(() => depthToSpace(this.conv_out.forward(norm ? normSwish(norm, h) : h), p)),
    );
  }
}
