/**
 * Vector quantiser (taming's VectorQuantizer2 without remapping): each spatial vector of
 * z (B, d, H, W) is replaced by its nearest codebook row, found as the argmin over
 * |z|^2 + |e|^2 - 2 z.e (the first minimum on ties), flattened in (h, w) raster order.
 *
 * For training, the quantised tensor passes gradients straight through to z, and two
 * losses pull codes and encoder outputs together:
 *   codebook   = mean((e - sg(z))^2)   moves the chosen codes
 *   commitment = mean((sg(e) - z)^2)   keeps z near its code, weighted by beta (0.25)
 * taming's default ("legacy") swaps the weights: codebook*beta + commitment. Both are
 * offered; MAGE's checkpoint has no loss weights, so inference is unaffected.
 *
 * Two options of ViT-VQGAN (Yu et al., 2021), both off by default (MaskGIT/MAGE):
 *   - factorised codes: when the codebook dimension is below z's channel count, z goes
 *     through a 1x1 `proj_in` to the code space and the chosen code back through a 1x1
 *     `proj_out` (z -> u -> e -> decoder input);
 *   - l2 codes: u and the codes are both l2-normalised before the lookup, so the nearest
 *     code is the one of largest cosine similarity, and no code can fall out of reach by
 *     drifting to a large norm. The losses are then taken between unit vectors.
 */

import { noGrad } from "../../core/autograd.ts";
import { Conv2d, Embedding, Module } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";

export interface QuantizerOutput {
  /** z with each vector replaced by its code; gradients flow to z (straight-through). */
  quantized: Tensor;
  /** (B, H*W) i32 code ids, raster order. */
  indices: Tensor;
  codebookLoss: Tensor;
  commitmentLoss: Tensor;
  /** z in the code space (after proj_in and normalisation), (B, dim, H, W): what codes are matched to. */
  latent: Tensor;
}

export interface QuantizerOptions {
  /** Channels of z; a projection to and from the code space when it differs from `dim`. */
  zDim?: number;
  /** l2-normalise z and the codes before the lookup (ViT-VQGAN). */
  l2?: boolean;
}

/** x / max(|x|, eps) along `axis`: the unit vectors of l2-normalised lookup. */
export function l2Normalize(x: Tensor, axis: number, eps = 1e-6): Tensor {
  const norm = ops.sqrt(ops.sum(ops.square(x), axis, true));
  return ops.div(x, ops.maximum(norm, eps));
}

export class VectorQuantizer extends Module {
  readonly embedding: Embedding;
  readonly proj_in: Conv2d | null;
  readonly proj_out: Conv2d | null;
  readonly zDim: number;
  readonly l2: boolean;

  constructor(
    readonly codes: number,
    readonly dim: number,
    readonly beta = 0.25,
    gen = new Rng(0),
    opts: QuantizerOptions = {},
  ) {
    super();
    this.zDim = opts.zDim ?? dim;
    this.l2 = opts.l2 ?? false;
    this.embedding = this.child("embedding", new Embedding(codes, dim, { gen }));
    const factorised = this.zDim !== dim;
    this.proj_in = factorised
      ? this.child("proj_in", new Conv2d(this.zDim, dim, 1, { gen }))
      : null;
    this.proj_out = factorised
      ? this.child("proj_out", new Conv2d(dim, this.zDim, 1, { gen }))
      : null;
    // taming initialises the codebook U(-1/n, 1/n).
    const init = ops.rand([codes, dim], gen, -1 / codes, 1 / codes);
    this.embedding.weight.backend.copyInto(this.embedding.weight.view(), init.view());
    init.dispose();
  }

  /** (B, d, H, W) -> (B*H*W, d): one row per spatial position, raster order. */
  #rows(u: Tensor): Tensor {
    const [B, d, H, W] = u.shape;
    return ops.reshape(ops.permute(u, [0, 2, 3, 1]), [B * H * W, d]);
  }

  /** z (B, zDim, H, W) -> u (B, dim, H, W), the vectors compared with the codes. */
  toCodeSpace(z: Tensor): Tensor {
    if (z.shape[1] !== this.zDim) {
      throw new Error(
        `vqgan quantizer: z has ${
          z.shape[1]
        } channels, expected ${this.zDim} (codebook ${this.codes}x${this.dim}): z [${z.shape}]`,
      );
    }
    const u = this.proj_in ? this.proj_in.forward(z) : z;
    return this.l2 ? l2Normalize(u, 1) : u;
  }

  /** The codebook as it is compared and looked up: (codes, dim), unit rows when l2. */
  table(): Tensor {
    const e = this.embedding.weight;
    return this.l2 ? l2Normalize(e, 1) : e;
  }

  /** Nearest code per position: (B, H*W) i32. Not differentiable. */
  indices(z: Tensor): Tensor {
    return noGrad(() => tidy(() => this.#nearest(this.toCodeSpace(z))));
  }

  #nearest(u: Tensor): Tensor {
    const [B, , H, W] = u.shape;
    const rows = this.#rows(u);
    const e = this.table();
    const zz = ops.sum(ops.square(rows), 1, true); // (N, 1)
    const ee = ops.sum(ops.square(e), 1); // (n)
    const ze = ops.matmul(rows, ops.transpose(e, 0, 1)); // (N, n)
    const d = ops.sub(ops.add(zz, ee), ops.mul(ze, 2));
    const idx = ops.argmin(d, 1);
    for (const t of [rows, zz, ee, ze, d]) t.dispose();
    const out = ops.reshape(idx, [B, H * W]);
    idx.dispose();
    return out;
  }

  /** Codes for ids in the code space, (B, dim, H, W) (unit vectors when l2). */
  #codes(ids: Tensor, height: number, width: number): Tensor {
    const B = ids.shape[0];
    if (ids.size !== B * height * width) {
      throw new Error(`vqgan quantizer: ${ids.size} ids do not fill ${B}x${height}x${width}`);
    }
    const flat = ops.reshape(ids, [B * height * width]);
    const rows = ops.embedding(this.table(), flat);
    return ops.contiguous(
      ops.permute(ops.reshape(rows, [B, height, width, this.dim]), [0, 3, 1, 2]),
    );
  }

  /** Decoder input for ids (B, H*W) or (B, H, W): (B, zDim, H, W) (get_codebook_entry). */
  lookup(ids: Tensor, height: number, width: number): Tensor {
    const e = this.#codes(ids, height, width);
    return this.proj_out ? this.proj_out.forward(e) : e;
  }

  /** Quantise with the straight-through estimator and both losses (training). */
  forward(z: Tensor): QuantizerOutput {
    const [, , H, W] = z.shape;
    const u = this.toCodeSpace(z);
    const indices = noGrad(() => this.#nearest(u));
    const e = this.#codes(indices, H, W);
    const uStop = u.detach();
    const eStop = e.detach();
    const codebookLoss = ops.mean(ops.square(ops.sub(e, uStop)));
    const commitmentLoss = ops.mean(ops.square(ops.sub(eStop, u)));
    // u + sg(e - u): the value of e, the gradient of u.
    const straight = ops.add(u, ops.sub(eStop, uStop));
    uStop.dispose();
    eStop.dispose();
    const quantized = this.proj_out ? this.proj_out.forward(straight) : straight;
    return { quantized, indices, codebookLoss, commitmentLoss, latent: u };
  }

  /**
   * The decoder input without quantising: the code-space vector itself, through the same
   * projection back. A warm-up phase trains encoder and decoder this way (a plain
   * autoencoder, which learns colour and shape in a few hundred steps) before the codebook
   * is fitted to its outputs, so the decoder sees the same kind of input before and after.
   */
  bypass(z: Tensor): Tensor {
    const u = this.toCodeSpace(z);
    return this.proj_out ? this.proj_out.forward(u) : u;
  }

  /** The weighted VQ loss: codebook + beta*commitment, or taming's legacy beta*codebook + commitment. */
  loss(out: QuantizerOutput, legacy = false): Tensor {
    return legacy
      ? ops.add(ops.mul(out.codebookLoss, this.beta), out.commitmentLoss)
      : ops.add(out.codebookLoss, ops.mul(out.commitmentLoss, this.beta));
  }
}
