/**
 * DiGIT stage 2, the pixel decoder: a pre-LN fairseq TransformerDecoder that reads the
 * semantic tokens of an image as a prefix and predicts its VQGAN codes.
 *
 * One embedding table holds the VQ dictionary (specials 0..4, code v at v+5) followed by
 * the semantic dictionary shifted past it (cluster c at (V+5)+5+c, i.e. 1034+c for MAGE's
 * 1024 codes); the output head covers the VQ dictionary only. The sequence is
 *
 *   [s1 .. sP | </s>, x1 .. xL]      prefix positions from embed_positions_1,
 *                                    the rest from embed_positions, both from index 2,
 *
 * with x = the codes (AR, causal over everything) or codes with some replaced by <unk>
 * (NAR/MaskGIT, bidirectional). Logits are kept for the L+1 positions after the prefix.
 *
 * `semanticInput: "aligned"` (ours, for small models trained briefly) drops the prefix and
 * adds the embedding of semantic token j+1 to the input at VQ position j, the position
 * that predicts code j+1. Why: a prefix LM must first learn to attend from VQ position j
 * to prefix position j+1 through two unrelated position tables. Measured on 32x32 shapes
 * with semantic tokens that do determine the codes (K-Means of the VQ codebook, 2.1 nats
 * of code entropy left of 6.1), a 2-layer prefix model was still at 3.6 nats after 300
 * updates and its images unrecognizable (9% class accuracy).
 *
 * `semanticContext: k` (aligned only) adds a k x k convolution over the grid of semantic
 * embeddings, so that position j also reads the tokens around token j+1, including later
 * ones (the whole grid is known before decoding starts). Why: the SSL tokens say which
 * shape a patch belongs to, not where its edge falls; the neighbours do. Decoding the real
 * tokens of 256 held-out shapes through the demo's 2-layer stage 2 (1000 updates): class
 * accuracy 73% alone, 92% with k = 3, 95% with k = 5 (domain FD 29 -> 12).
 */

import { Conv2d, Module, zeroFill } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import type { Tensor } from "../../core/tensor.ts";
import { TransformerDecoder } from "../transformer/decoder.ts";
import { DECODER_PRESETS, SPECIALS } from "../transformer/vocab.ts";

export { SPECIALS };

export type Stage2Variant = "ar" | "nar";

export interface Stage2Config {
  /** "ar" (st2vtlm: causal, KV-cached sampling) or "nar" (st2vtlm_nar: MaskGIT). */
  variant: Stage2Variant;
  /** Semantic vocabulary (K-Means clusters, 8192 in DiGIT). */
  clusters: number;
  /** VQGAN codebook size (1024 for MAGE's VQGAN). */
  codebookSize: number;
  /** Semantic tokens per image (16x16 = 256). */
  prefixLength: number;
  /** VQ tokens per image (16x16 = 256). */
  length: number;
  layers: number;
  dim: number;
  heads: number;
  ffnDim: number;
  dropout: number;
  /** "prefix" (DiGIT, default) or "aligned" (semantic token added at its VQ position). */
  semanticInput?: "prefix" | "aligned";
  /** Aligned only: side of the semantic neighbourhood each position reads (1: the token alone). */
  semanticContext?: number;
}

/** Sizes shared with stage 1 (`base` is the paper's 16 x 1024). */
export const STAGE2_PRESETS = DECODER_PRESETS;

export class Stage2Model extends Module {
  readonly decoder: TransformerDecoder;
  /** VQ dictionary size: the output classes (1029 for 1024 codes). */
  readonly vqDictSize: number;
  /** Aligned with a context > 1: mixes each semantic embedding with its grid neighbours. */
  readonly semantic_context: Conv2d | null;

  constructor(readonly cfg: Stage2Config, gen = new Rng(0)) {
    super();
    this.vqDictSize = cfg.codebookSize + SPECIALS.count;
    this.decoder = this.child(
      "decoder",
      new TransformerDecoder({
        layers: cfg.layers,
        dim: cfg.dim,
        heads: cfg.heads,
        ffnDim: cfg.ffnDim,
        vocabSize: this.vqDictSize + cfg.clusters + SPECIALS.count,
        outputSize: this.vqDictSize,
        maxPositions: Math.max(1024, cfg.prefixLength, cfg.length + 1),
        normalizeBefore: true,
        prefixPositions: cfg.semanticInput !== "aligned",
        dropout: cfg.dropout,
        padIndex: SPECIALS.pad,
      }, gen),
    );
    const context = semanticContextConv(cfg, gen);
    this.semantic_context = context ? this.child("semantic_context", context) : null;
  }

  get causal(): boolean {
    return this.cfg.variant === "ar";
  }

  get aligned(): boolean {
    return this.cfg.semanticInput === "aligned";
  }

  /** Embedding-table id of semantic cluster c (1034+c in DiGIT). */
  semanticId(c: number): number {
    if (!(c >= 0 && c < this.cfg.clusters)) {
      throw new Error(`stage2: semantic token ${c} is outside 0..${this.cfg.clusters - 1}`);
    }
    return this.vqDictSize + SPECIALS.count + c;
  }

  /** Dictionary id of VQ code v (v+5). */
  vqId(v: number): number {
    if (!(v >= 0 && v < this.cfg.codebookSize)) {
      throw new Error(`stage2: VQ token ${v} is outside 0..${this.cfg.codebookSize - 1}`);
    }
    return v + SPECIALS.count;
  }

  /**
   * ids (B, P+L+1) = [semantic prefix | </s>, x1..xL] -> logits (B, L+1, V+5) for the
   * positions after the prefix (as DiGIT's `logits[:, sem.shape[1]:]`).
   */
  forward(ids: Tensor, gen?: Rng): Tensor {
    const P = this.cfg.prefixLength;
    if (ids.ndim !== 2 || ids.shape[1] <= P) {
      throw new Error(
        `stage2: expected ids (B, ${P}+L+1) with a ${P}-token prefix, got [${ids.shape}]`,
      );
    }
    if (this.aligned) {
      const g = gen ?? new Rng(0);
      const x = this.alignedInput(
        this.semanticEmbedding(ops.slice(ids, 1, 0, P)),
        ops.slice(ids, 1, P, ids.shape[1]),
        0,
        g,
      );
      const h = this.decoder.run(x, { causal: this.causal, featuresOnly: true, gen: g });
      return this.decoder.output_projection.forward(h);
    }
    const h = this.decoder.forward(ids, {
      causal: this.causal,
      prefixLength: P,
      featuresOnly: true,
      gen,
    });
    return this.decoder.output_projection.forward(ops.slice(h, 1, P, ids.shape[1]));
  }

  /**
   * Aligned input for VQ positions [start, start+T): the embedded ids x (B, T), plus at
   * position j (which holds code j, or </s> at 0, and predicts code j+1) the semantic input
   * of code j+1, semantic[:, j] (`semanticEmbedding` of the whole prefix, (B, P, dim); a
   * sampler computes it once, not at every step). Position P, after the last code, gets none.
   */
  alignedInput(semantic: Tensor, x: Tensor, start: number, gen: Rng): Tensor {
    const P = this.cfg.prefixLength, T = x.shape[1];
    const h = this.decoder.embed(x, { startPosition: start, gen });
    const from = Math.min(P, start), to = Math.min(P, start + T);
    let cond = ops.slice(semantic, 1, from, to);
    if (to - from < T) {
      cond = ops.cat([cond, ops.zeros([x.shape[0], T - (to - from), this.cfg.dim])], 1);
    }
    return ops.add(h, cond);
  }

  /**
   * sem (B, P) ids -> (B, P, dim): each semantic token's embedding, plus, with a context,
   * a convolution over its neighbours on the grid. The whole grid is known before any code
   * is drawn, so position j may read tokens after j+1: where a shape's edge falls inside a
   * patch depends on the tokens around it, which causal reading would hide until later.
   */
  semanticEmbedding(sem: Tensor): Tensor {
    const e = ops.mul(this.decoder.embed_tokens.forward(sem), this.decoder.embedScale);
    if (!this.semantic_context) return e;
    const [B, P, D] = e.shape;
    const { height, width } = gridShape(P);
    const grid = ops.permute(ops.reshape(e, [B, height, width, D]), [0, 3, 1, 2]);
    const ctx = ops.permute(this.semantic_context.forward(grid), [0, 2, 3, 1]);
    return ops.add(e, ops.reshape(ctx, [B, P, D]));
  }
}

/**
 * The neighbourhood conv of `semanticContext` > 1, or null. Zero at the start (and no bias,
 * which the position table already provides): the model begins as plain aligned input and
 * learns what the neighbours add.
 */
function semanticContextConv(cfg: Stage2Config, gen: Rng): Conv2d | null {
  const k = cfg.semanticContext ?? 1;
  if (k === 1) return null;
  const { height, width } = gridShape(cfg.prefixLength);
  if (cfg.semanticInput !== "aligned" || !(k > 1 && k % 2 === 1) || height !== width) {
    throw new Error(
      `stage2: semantic_context ${k} needs semantic_input aligned, an odd side and a square semantic grid`,
    );
  }
  const conv = new Conv2d(cfg.dim, cfg.dim, k, { padding: (k - 1) >> 1, bias: false, gen });
  zeroFill(conv.weight);
  return conv;
}

/** Grid shape for L raster-order tokens: square when L is a square, else one row. */
export function gridShape(L: number): { height: number; width: number } {
  const side = Math.round(Math.sqrt(L));
  return side * side === L ? { height: side, width: side } : { height: 1, width: L };
}
