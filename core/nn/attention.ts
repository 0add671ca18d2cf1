/**
 * Multi-head self-attention with separate q/k/v/out projections (fairseq's layout:
 * q_proj, k_proj, v_proj, out_proj) and an optional KV cache for decoding.
 */

import * as ops from "../ops/mod.ts";
import { Rng } from "../random.ts";
import type { Tensor } from "../tensor.ts";
import { Linear } from "./layers.ts";
import { Module } from "./module.ts";

/** Keys and values of past positions, (B, H, T, D) each, grown one step at a time. */
export class KVCache {
  /** Cached keys (B, H, T, D); null before the first append. */
  k: Tensor | null = null;
  /** Cached values (B, H, T, D); null before the first append. */
  v: Tensor | null = null;
  /** Number of cached positions. */
  get length(): number {
    return this.k?.shape[2] ?? 0;
  }
  /** Add new positions; returns all keys and values so far. The cache keeps its own copies. */
  append(k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const nk = this.k ? ops.cat([this.k, k], 2) : k.alias();
    const nv = this.v ? ops.cat([this.v, v], 2) : v.alias();
    this.k?.dispose();
    this.v?.dispose();
    this.k = nk.keep();
    this.v = nv.keep();
    return { k: nk, v: nv };
  }
  /** Free the cached tensors and empty the cache. */
  dispose(): void {
    this.k?.dispose();
    this.v?.dispose();
    this.k = this.v = null;
  }
}

/** Multi-head self-attention over (B, T, dim) input. */
export class MultiheadAttention extends Module {
  /** Query projection. */
  readonly q_proj: Linear;
  /** Key projection. */
  readonly k_proj: Linear;
  /** Value projection. */
  readonly v_proj: Linear;
  /** Output projection. */
  readonly out_proj: Linear;
  /** Channels per head (dim / heads). */
  readonly headDim: number;
  /** `dim` must be divisible by `heads`; `gen` draws the initial weights. */
  constructor(readonly dim: number, readonly heads: number, gen: Rng = new Rng(0)) {
    super();
    if (dim % heads !== 0) {
      throw new Error(`MultiheadAttention: dim ${dim} is not divisible by ${heads} heads`);
    }
    this.headDim = dim / heads;
    this.q_proj = this.child("q_proj", new Linear(dim, dim, { gen }));
    this.k_proj = this.child("k_proj", new Linear(dim, dim, { gen }));
    this.v_proj = this.child("v_proj", new Linear(dim, dim, { gen }));
    this.out_proj = this.child("out_proj", new Linear(dim, dim, { gen }));
  }

  /** (B, T, C) -> (B, H, T, D) */
  #split(x: Tensor): Tensor {
    const [B, T] = x.shape;
    return ops.permute(ops.reshape(x, [B, T, this.heads, this.headDim]), [0, 2, 1, 3]);
  }

  /** x (B, T, C); with a cache, T new positions attend to all cached ones too. */
  forward(x: Tensor, opts: { causal?: boolean; cache?: KVCache } = {}): Tensor {
    const [B, T, C] = x.shape;
    const q = this.#split(this.q_proj.forward(x));
    let k = this.#split(this.k_proj.forward(x));
    let v = this.#split(this.v_proj.forward(x));
    if (opts.cache) ({ k, v } = opts.cache.append(k, v));
    const o = ops.attention(q, k, v, { causal: opts.causal ?? false, queryOffset: k.shape[2] - T });
    const merged = ops.reshape(ops.permute(o, [0, 2, 1, 3]), [B, T, C]);
    return this.out_proj.forward(merged);
  }
}
