/**
 * Space-to-depth and back (torch's pixel_unshuffle / pixel_shuffle): a p x p block of
 * pixels becomes p*p channels at one position, channel order c*p*p + dy*p + dx. The
 * `patch` option of a VQGAN folds the image this way before conv_in and unfolds the
 * decoder's conv_out, so no convolution runs at full resolution: on a CPU the thin
 * full-resolution convs of a small VQGAN cost the most and learn the least.
 */

import * as ops from "../../core/ops/mod.ts";
import type { Tensor } from "../../core/tensor.ts";

/** (B, C, H, W) -> (B, C*p*p, H/p, W/p). */
export function spaceToDepth(x: Tensor, p: number): Tensor {
  if (p === 1) return x;
  const [B, C, H, W] = x.shape;
  if (H % p !== 0 || W % p !== 0) {
    throw new Error(`vqgan patch: ${H}x${W} is not divisible by the patch size ${p}`);
  }
  const blocks = ops.reshape(x, [B, C, H / p, p, W / p, p]);
  return ops.reshape(ops.permute(blocks, [0, 1, 3, 5, 2, 4]), [B, C * p * p, H / p, W / p]);
}

/** (B, C*p*p, h, w) -> (B, C, h*p, w*p): the inverse of spaceToDepth. */
export function depthToSpace(x: Tensor, p: number): Tensor {
  if (p === 1) return x;
  const [B, Cpp, h, w] = x.shape;
  if (Cpp % (p * p) !== 0) {
    throw new Error(`vqgan patch: ${Cpp} channels do not split into ${p}x${p} blocks`);
  }
  const blocks = ops.reshape(x, [B, Cpp / (p * p), p, p, h, w]);
  return ops.reshape(ops.permute(blocks, [0, 1, 4, 2, 5, 3]), [B, Cpp / (p * p), h * p, w * p]);
}
