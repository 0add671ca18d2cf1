/**
 * fairseq's TransformerDecoder without encoder attention: the network of DiGIT's
 * stage-1 GPT (post-LN) and stage-2 pixel decoders (pre-LN with a final LayerNorm and a
 * second position table for the semantic prefix). Parameter names follow fairseq, so
 * `decoder.*` keys of released checkpoints load unchanged.
 *
 * Reads top to bottom: config, layer, decoder, helpers.
 */

import {
  Embedding,
  KVCache,
  LayerNorm,
  Linear,
  Module,
  MultiheadAttention,
} from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import type { Tensor } from "../../core/tensor.ts";

export interface DecoderConfig {
  layers: number;
  dim: number;
  heads: number;
  ffnDim: number;
  /** Rows of the token-embedding table (dictionary plus class tokens or prefix symbols). */
  vocabSize: number;
  /** Output classes (may be fewer than vocabSize). */
  outputSize: number;
  /** fairseq's max_target_positions; the table has that many rows plus 2. */
  maxPositions: number;
  /** Pre-LN (stage 2) adds a final LayerNorm; post-LN (stage 1) has none. */
  normalizeBefore: boolean;
  /** A second position table (`embed_positions_1`) for a prefix (stage 2). */
  prefixPositions: boolean;
  dropout: number;
  padIndex: number;
}

/** fairseq's learned positions start at padding_idx + 1 (= 2). */
export const POSITION_OFFSET = 2;

export class DecoderLayer extends Module {
  readonly self_attn: MultiheadAttention;
  readonly self_attn_layer_norm: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly final_layer_norm: LayerNorm;

  constructor(readonly cfg: DecoderConfig, gen: Rng) {
    super();
    this.self_attn = this.child("self_attn", new MultiheadAttention(cfg.dim, cfg.heads, gen));
    this.self_attn_layer_norm = this.child("self_attn_layer_norm", new LayerNorm(cfg.dim));
    this.fc1 = this.child("fc1", new Linear(cfg.dim, cfg.ffnDim, { gen }));
    this.fc2 = this.child("fc2", new Linear(cfg.ffnDim, cfg.dim, { gen }));
    this.final_layer_norm = this.child("final_layer_norm", new LayerNorm(cfg.dim));
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const pre = this.cfg.normalizeBefore;
    // attention sub-block
    let h = pre ? this.self_attn_layer_norm.forward(x) : x;
    h = this.self_attn.forward(h, { causal: ctx.causal, cache: ctx.cache });
    h = ops.dropout(h, this.cfg.dropout, ctx.gen, this.training);
    x = ops.add(x, h);
    if (!pre) x = this.self_attn_layer_norm.forward(x);
    // feed-forward sub-block
    h = pre ? this.final_layer_norm.forward(x) : x;
    h = this.fc2.forward(ops.gelu(this.fc1.forward(h)));
    h = ops.dropout(h, this.cfg.dropout, ctx.gen, this.training);
    x = ops.add(x, h);
    if (!pre) x = this.final_layer_norm.forward(x);
    return x;
  }
}

interface LayerContext {
  causal: boolean;
  cache?: KVCache;
  gen: Rng;
}

export interface DecodeOptions {
  causal?: boolean;
  /** One cache per layer, for incremental decoding. */
  caches?: KVCache[];
  /** Position index of the first token (after the offset) — incremental decoding. */
  startPosition?: number;
  /** Length of a prefix that uses `embed_positions_1` (stage 2). */
  prefixLength?: number;
  /** Collect the hidden state after the embedding and after every layer (linear probe). */
  collectStates?: Tensor[];
  /** Return hidden states instead of logits. */
  featuresOnly?: boolean;
  /** Rng for dropout masks. */
  gen?: Rng;
}

export class TransformerDecoder extends Module {
  readonly embed_tokens: Embedding;
  readonly embed_positions: Embedding;
  readonly embed_positions_1: Embedding | null;
  readonly layers: DecoderLayer[];
  readonly layer_norm: LayerNorm | null;
  readonly output_projection: Linear;
  readonly embedScale: number;

  constructor(readonly cfg: DecoderConfig, gen = new Rng(0)) {
    super();
    const std = cfg.dim ** -0.5;
    this.embedScale = Math.sqrt(cfg.dim);
    this.embed_tokens = this.child(
      "embed_tokens",
      new Embedding(cfg.vocabSize, cfg.dim, { gen, std }),
    );
    const rows = cfg.maxPositions + POSITION_OFFSET;
    this.embed_positions = this.child(
      "embed_positions",
      new Embedding(rows, cfg.dim, { gen, std }),
    );
    this.embed_positions_1 = cfg.prefixPositions
      ? this.child("embed_positions_1", new Embedding(rows, cfg.dim, { gen, std }))
      : null;
    this.layers = this.list(
      "layers",
      Array.from({ length: cfg.layers }, () => new DecoderLayer(cfg, gen)),
    );
    this.layer_norm = cfg.normalizeBefore ? this.child("layer_norm", new LayerNorm(cfg.dim)) : null;
    this.output_projection = this.child(
      "output_projection",
      new Linear(cfg.dim, cfg.outputSize, { bias: false, gen }),
    );
  }

  /** Position ids for `length` tokens starting at `start` (0-based), as an i32 tensor. */
  #positions(start: number, length: number, table: Embedding): Tensor {
    if (start + length + POSITION_OFFSET > table.count) {
      throw new Error(
        `TransformerDecoder: position ${
          start + length
        } exceeds max_positions ${this.cfg.maxPositions}`,
      );
    }
    const ids = ops.arange(length, { start: start + POSITION_OFFSET });
    return table.forward(ids);
  }

  /** Token embedding * sqrt(d) + position embedding, then dropout. */
  embed(tokens: Tensor, opts: DecodeOptions): Tensor {
    const T = tokens.shape[1];
    const start = opts.startPosition ?? 0;
    const prefix = opts.prefixLength ?? 0;
    const tok = ops.mul(this.embed_tokens.forward(tokens), this.embedScale);
    let pos: Tensor;
    if (prefix > 0 && this.embed_positions_1) {
      // Stage 2: the semantic prefix and the VQ part each count positions from 0.
      const a = this.#positions(0, prefix, this.embed_positions_1);
      const b = this.#positions(0, T - prefix, this.embed_positions);
      pos = ops.cat([a, b], 0);
    } else {
      pos = this.#positions(start, T, this.embed_positions);
    }
    return ops.dropout(
      ops.add(tok, pos),
      this.cfg.dropout,
      opts.gen ?? new Rng(0),
      this.training,
    );
  }

  /** tokens (B, T) i32 -> logits (B, T, outputSize), or features with featuresOnly. */
  forward(tokens: Tensor, opts: DecodeOptions = {}): Tensor {
    const gen = opts.gen ?? new Rng(0);
    const x = this.embed(tokens, { ...opts, gen });
    return this.run(x, { ...opts, gen });
  }

  /** The layer stack on already-embedded input. */
  run(x: Tensor, opts: DecodeOptions): Tensor {
    const gen = opts.gen ?? new Rng(0);
    opts.collectStates?.push(x);
    this.layers.forEach((layer, i) => {
      x = layer.forward(x, { causal: opts.causal ?? true, cache: opts.caches?.[i], gen });
      opts.collectStates?.push(x);
    });
    if (this.layer_norm) x = this.layer_norm.forward(x);
    return opts.featuresOnly ? x : this.output_projection.forward(x);
  }

  /** One KV cache per layer; `reserve` positions are allocated up front (more on demand). */
  newCaches(reserve = 0): KVCache[] {
    return this.layers.map(() => new KVCache(reserve));
  }
}
