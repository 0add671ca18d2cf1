/**
 * The residual block of MaskGIT's VQGAN (as converted to PyTorch by MAGE, no attention,
 * no timestep input):
 *
 *   h = conv1(swish(norm1(x)))          3x3, no bias
 *   h = conv2(swish(norm2(h)))          3x3, no bias (dropout is 0 in every config)
 *   out = x + h                         when the channel count is unchanged
 *   out = h + nin_shortcut(h)           when it changes
 *
 * The second form is the MaskGIT quirk: the 1x1 shortcut reads the block's own output,
 * not its input, copying the original JAX code. Checkpoints depend on it.
 */

import { Conv2d, GroupNorm, Module, zeroFill } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";

/** GroupNorm settings shared by every block of one model. */
export interface NormSpec {
  /** Groups per GroupNorm (MaskGIT: 32). */
  groups: number;
  eps: number;
  /** "none": no GroupNorm anywhere, blocks start as the identity (VqganConfig.norm). */
  kind?: "group" | "none";
}

/** taming's Normalize(): GroupNorm with affine parameters. */
export function normalize(channels: number, norm: NormSpec): GroupNorm {
  if (channels % norm.groups !== 0) {
    throw new Error(
      `vqgan: GroupNorm with ${norm.groups} groups cannot split ${channels} channels (set normGroups to a divisor)`,
    );
  }
  return new GroupNorm(norm.groups, channels, norm.eps);
}

/** x * sigmoid(x) after a GroupNorm (when there is one): the pre-activation used before every conv. */
export function normSwish(norm: GroupNorm | null, x: Tensor): Tensor {
  return ops.silu(norm ? norm.forward(x) : x);
}

export class ResnetBlock extends Module {
  readonly norm1: GroupNorm | null;
  readonly conv1: Conv2d;
  readonly norm2: GroupNorm | null;
  readonly conv2: Conv2d;
  readonly nin_shortcut: Conv2d | null;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    norm: NormSpec,
    gen = new Rng(0),
  ) {
    super();
    const grouped = norm.kind !== "none";
    this.norm1 = grouped ? this.child("norm1", normalize(inChannels, norm)) : null;
    this.conv1 = this.child(
      "conv1",
      new Conv2d(inChannels, outChannels, 3, { padding: 1, bias: false, gen }),
    );
    this.norm2 = grouped ? this.child("norm2", normalize(outChannels, norm)) : null;
    this.conv2 = this.child(
      "conv2",
      new Conv2d(outChannels, outChannels, 3, { padding: 1, bias: false, gen }),
    );
    // Without a norm to tame it, a block starts as the identity (its branch's last conv at zero).
    if (!grouped) zeroFill(this.conv2.weight);
    this.nin_shortcut = inChannels !== outChannels
      ? this.child("nin_shortcut", new Conv2d(outChannels, outChannels, 1, { bias: false, gen }))
      : null;
  }

  forward(x: Tensor): Tensor {
    if (x.shape[1] !== this.inChannels) {
      throw new Error(
        `vqgan ResnetBlock: expected ${this.inChannels} input channels, got [${x.shape}]`,
      );
    }
    // A scope per block frees its intermediates at once (large at 256x256).
    return tidy(() => {
      const h = this.conv2.forward(
        normSwish(this.norm2, this.conv1.forward(normSwish(this.norm1, x))),
      );
      return this.nin_shortcut ? ops.add(h, this.nin_shortcut.forward(h)) : ops.add(x, h);
    });
  }
}
