/**
 * Multi-head self-attention with separate q/k/v/out projections (fairseq's layout:
 * q_proj, k_proj, v_proj, out_proj) and an optional KV cache for decoding.
 */

import { isGradEnabled } from "../autograd.ts";
import { ShapeError, type View } from "../backend.ts";
import * as ops from "../ops/mod.ts";
import { Rng } from "../random.ts";
import { shapeStr, type Tensor } from "../tensor.ts";
import { Linear } from "./layers.ts";
import { Module } from "./module.ts";

/**
 * Keys and values of past positions, (B, H, T, D) each, for incremental decoding. Each
 * append writes only the new positions, in place, into spare room at the end of a buffer
 * (B, H, capacity, D) that doubles when full, instead of copying the whole cache every
 * step. Inference only: the in-place writes record no gradient.
 */
export class KVCache {
  /** Cached keys (B, H, T, D), a window onto the buffer; null before the first append. */
  k: Tensor | null = null;
  /** Cached values (B, H, T, D), a window onto the buffer; null before the first append. */
  v: Tensor | null = null;
  #keys: Tensor | null = null;
  #values: Tensor | null = null;

  /** `reserve`: positions to make room for at the first append (a decoder's full length). */
  constructor(readonly reserve = 0) {}

  /** Number of cached positions. */
  get length(): number {
    return this.k?.shape[2] ?? 0;
  }

  /** Add new positions (B, H, T, D); returns all keys and values so far (the cache's own). */
  append(k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    if (isGradEnabled() && (k.requiresGrad || v.requiresGrad)) {
      throw new Error("KVCache.append: the cache records no gradient; decode under noGrad()");
    }
    const [B, H, T, D] = k.shape;
    const old = this.length;
    const fits = this.#keys ? sameHeads(this.#keys, k) : k.ndim === 4;
    if (!fits || v.shape.some((n, i) => n !== k.shape[i]) || v.dtype !== k.dtype) {
      throw new ShapeError(
        "KVCache.append",
        `keys ${shapeStr(k.shape)} and values ${shapeStr(v.shape)} do not fit the cache ` +
          (this.#keys ? shapeStr(this.#keys.shape) : "(B, H, T, D)"),
      );
    }
    if (!this.#keys || old + T > this.#keys.shape[2]) this.#grow(k, old + T);
    const keys = this.#keys!, values = this.#values!;
    keys.backend.copyInto(positions(keys, old, T), k.view());
    values.backend.copyInto(positions(values, old, T), v.view());
    this.k?.dispose();
    this.v?.dispose();
    this.k = keys.alias([B, H, old + T, D]).keep();
    this.v = values.alias([B, H, old + T, D]).keep();
    return { k: this.k, v: this.v };
  }

  /** New buffers with room for at least `needed` positions, holding what is cached. */
  #grow(like: Tensor, needed: number): void {
    const [B, H, , D] = like.shape;
    const capacity = Math.max(needed, this.reserve, 2 * (this.#keys?.shape[2] ?? 0));
    const opts = { backend: like.backend, dtype: like.dtype };
    const keys = ops.zeros([B, H, capacity, D], opts).keep();
    const values = ops.zeros([B, H, capacity, D], opts).keep();
    if (this.k && this.v) {
      keys.backend.copyInto(positions(keys, 0, this.length), this.k.view());
      values.backend.copyInto(positions(values, 0, this.length), this.v.view());
    }
    this.#keys?.dispose();
    this.#values?.dispose();
    this.#keys = keys;
    this.#values = values;
  }

  /** Free the cached tensors and empty the cache. */
  dispose(): void {
    for (const t of [this.k, this.v, this.#keys, this.#values]) t?.dispose();
    this.k = this.v = null;
    this.#keys = this.#values = null;
  }
}

/** `count` positions of a (B, H, capacity, D) buffer from `start`, as a strided window. */
function positions(buffer: Tensor, start: number, count: number): View {
  const [B, H, , D] = buffer.shape;
  return {
    storage: buffer.shared.storage,
    shape: [B, H, count, D],
    strides: buffer.strides,
    offset: start * buffer.strides[2],
  };
}

/** Same batch, heads, head size, dtype and backend: new positions fit the buffer. */
function sameHeads(buffer: Tensor, x: Tensor): boolean {
  const [B, H, , D] = buffer.shape;
  return x.ndim === 4 && x.shape[0] === B && x.shape[1] === H && x.shape[3] === D &&
    x.dtype === buffer.dtype && x.backend === buffer.backend;
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
