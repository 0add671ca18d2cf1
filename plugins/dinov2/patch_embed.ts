/** Image to patch tokens: a stride-14 convolution (`patch_embed.proj`), then flatten. */

import { Conv2d, Module } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import type { Tensor } from "../../core/tensor.ts";

export class PatchEmbed extends Module {
  readonly proj: Conv2d;
  constructor(readonly patchSize: number, readonly embedDim: number, inChannels = 3) {
    super();
    this.proj = this.child(
      "proj",
      new Conv2d(inChannels, embedDim, patchSize, { stride: patchSize }),
    );
  }

  /** (B, 3, H, W) -> (B, (H/p)*(W/p), D), patches in raster order. */
  forward(x: Tensor): Tensor {
    const [B, , H, W] = x.shape;
    const p = this.patchSize;
    if (x.ndim !== 4 || H % p !== 0 || W % p !== 0) {
      throw new Error(
        `dinov2 patch_embed: input [${x.shape}] must be (B, 3, H, W) with H and W multiples of ${p}`,
      );
    }
    const y = this.proj.forward(x); // (B, D, H/p, W/p)
    const flat = ops.reshape(y, [B, this.embedDim, (H / p) * (W / p)]);
    return ops.transpose(flat, 1, 2);
  }
}
