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
 */

import { noGrad } from "../../core/autograd.ts";
import { Embedding, Module } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import { Generator } from "../../core/random.ts";
import type { Tensor } from "../../core/tensor.ts";

export interface QuantizerOutput {
  /** z with each vector replaced by its code; gradients flow to z (straight-through). */
  quantized: Tensor;
  /** (B, H*W) i32 code ids, raster order. */
  indices: Tensor;
  codebookLoss: Tensor;
  commitmentLoss: Tensor;
}

export class VectorQuantizer extends Module {
  readonly embedding: Embedding;

  constructor(readonly codes: number, readonly dim: number, readonly beta = 0.25, gen = new Generator(0)) {
    super();
    this.embedding = this.child("embedding", new Embedding(codes, dim, { gen }));
    // taming initialises the codebook U(-1/n, 1/n).
    const init = ops.rand([codes, dim], gen, -1 / codes, 1 / codes);
    this.embedding.weight.backend.copyInto(this.embedding.weight.view(), init.view());
    init.dispose();
  }

  /** (B, d, H, W) -> (B*H*W, d): one row per spatial position, raster order. */
  #rows(z: Tensor): Tensor {
    const [B, d, H, W] = z.shape;
    if (d !== this.dim) throw new Error(`vqgan quantizer: z has ${d} channels, the codebook is ${this.codes}x${this.dim}: z [${z.shape}]`);
    return ops.reshape(ops.permute(z, [0, 2, 3, 1]), [B * H * W, d]);
  }

  /** Nearest code per position: (B, H*W) i32. Not differentiable. */
  indices(z: Tensor): Tensor {
    return noGrad(() => this.#nearest(z));
  }

  #nearest(z: Tensor): Tensor {
    const [B, , H, W] = z.shape;
    const rows = this.#rows(z);
    const e = this.embedding.weight;
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

  /** Codes for ids (B, H*W) or (B, H, W) as a (B, d, H, W) tensor (get_codebook_entry). */
  lookup(ids: Tensor, height: number, width: number): Tensor {
    const B = ids.shape[0];
    if (ids.size !== B * height * width) {
      throw new Error(`vqgan quantizer: ${ids.size} ids do not fill ${B}x${height}x${width}`);
    }
    const e = this.embedding.forward(ops.reshape(ids, [B, height, width]));
    return ops.permute(e, [0, 3, 1, 2]);
  }

  /** Quantise with the straight-through estimator and both losses (training). */
  forward(z: Tensor): QuantizerOutput {
    const [, , H, W] = z.shape;
    const indices = this.indices(z);
    const e = ops.contiguous(this.lookup(indices, H, W));
    const zStop = z.detach();
    const eStop = e.detach();
    const codebookLoss = ops.mean(ops.square(ops.sub(e, zStop)));
    const commitmentLoss = ops.mean(ops.square(ops.sub(eStop, z)));
    // z + sg(e - z): the value of e, the gradient of z.
    const quantized = ops.add(z, ops.sub(eStop, zStop));
    zStop.dispose();
    eStop.dispose();
    return { quantized, indices, codebookLoss, commitmentLoss };
  }

  /** The weighted VQ loss: codebook + beta*commitment, or taming's legacy beta*codebook + commitment. */
  loss(out: QuantizerOutput, legacy = false): Tensor {
    return legacy
      ? ops.add(ops.mul(out.codebookLoss, this.beta), out.commitmentLoss)
      : ops.add(out.codebookLoss, ops.mul(out.commitmentLoss, this.beta));
  }
}
