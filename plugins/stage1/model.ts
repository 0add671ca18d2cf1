/**
 * DiGIT stage 1: a GPT over semantic tokens (fairseq `stlm`).
 *
 * Token ids follow fairseq's dictionary: <s>=0, <pad>=1, </s>=2, <unk>=3, <n>=4, then
 * cluster c has id c+5. The sequence is [</s>, t1..t256] -> [t1..t256, </s>]. In
 * class-conditional mode the class token (K+5+y) replaces the leading </s>.
 */

import { Module } from "../../core/nn/mod.ts";
import { Rng } from "../../core/random.ts";
import type { Tensor } from "../../core/tensor.ts";
import { TransformerDecoder } from "../transformer/decoder.ts";
import { DECODER_PRESETS, SPECIALS } from "../transformer/vocab.ts";

export { SPECIALS };

export interface Stage1Config {
  /** Number of K-Means clusters (semantic vocabulary). */
  clusters: number;
  /** Classes for class-conditional mode; 0 for unconditional. */
  classes: number;
  layers: number;
  dim: number;
  heads: number;
  ffnDim: number;
  /** Tokens per image (16x16 = 256). */
  length: number;
  dropout: number;
}

export class Stage1GPT extends Module {
  readonly decoder: TransformerDecoder;

  constructor(readonly cfg: Stage1Config, gen = new Rng(0)) {
    super();
    const dictSize = cfg.clusters + SPECIALS.count;
    this.decoder = this.child(
      "decoder",
      new TransformerDecoder({
        layers: cfg.layers,
        dim: cfg.dim,
        heads: cfg.heads,
        ffnDim: cfg.ffnDim,
        vocabSize: dictSize + cfg.classes,
        outputSize: dictSize,
        maxPositions: Math.max(1024, cfg.length + 1),
        normalizeBefore: false,
        prefixPositions: false,
        dropout: cfg.dropout,
        padIndex: SPECIALS.pad,
      }, gen),
    );
  }

  /** Id of the token that starts a sequence: </s>, or the class token. */
  startToken(cls?: number): number {
    if (cls === undefined || this.cfg.classes === 0) return SPECIALS.eos;
    if (cls < 0 || cls >= this.cfg.classes) {
      throw new Error(`Stage1GPT: class ${cls} is outside 0..${this.cfg.classes - 1}`);
    }
    return this.cfg.clusters + SPECIALS.count + cls;
  }

  /** tokens (B, T) i32 -> logits (B, T, K+5). */
  forward(tokens: Tensor, gen?: Rng): Tensor {
    return this.decoder.forward(tokens, { causal: true, gen });
  }
}

/** Stage 1 comes in the shared GPT sizes (plugins/transformer/vocab.ts). */
export const STAGE1_PRESETS = DECODER_PRESETS;
