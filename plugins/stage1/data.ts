/**
 * Token sets in memory and the stage-1 sequences built from them:
 * input [start, t1+5 .. tL+5] and target [t1+5 .. tL+5, </s>] (fairseq's add_eos_shift).
 */

import * as ops from "../../core/ops/mod.ts";
import type { Tensor } from "../../core/tensor.ts";
import { SPECIALS } from "./model.ts";

/** Semantic tokens of many images, row-major (count, length), ids without offset. */
export interface TokenSet {
  tokens: Int32Array;
  count: number;
  /** Tokens per image (grid height * width). */
  length: number;
  /** Vocabulary (K-Means clusters). */
  clusters: number;
  labels?: Int32Array;
  /** Names of the label ids, when the token file records them (the checkpoint keeps them). */
  classNames?: readonly string[];
}

/**
 * The full training sequence is L+1 tokens ([start, t1..tL] -> [t1..tL, </s>]); this
 * returns device tensors for it: ids (n, L+1) and flat targets (n*(L+1)).
 */
export function stage1Tensors(
  set: TokenSet,
  rows: ArrayLike<number>,
  startToken: (row: number) => number,
): { ids: Tensor; targets: Tensor } {
  const L = set.length;
  const n = rows.length;
  const ids = new Int32Array(n * (L + 1));
  const targets = new Int32Array(n * (L + 1));
  for (let b = 0; b < n; b++) {
    const r = rows[b];
    if (r < 0 || r >= set.count) {
      throw new Error(`stage1: row ${r} outside the token set of ${set.count} images`);
    }
    ids[b * (L + 1)] = startToken(r);
    for (let t = 0; t < L; t++) {
      const tok = set.tokens[r * L + t];
      if (tok < 0 || tok >= set.clusters) {
        throw new Error(`stage1: token ${tok} of image ${r} is outside 0..${set.clusters - 1}`);
      }
      ids[b * (L + 1) + t + 1] = tok + SPECIALS.count;
      targets[b * (L + 1) + t] = tok + SPECIALS.count;
    }
    targets[b * (L + 1) + L] = SPECIALS.eos;
  }
  return {
    ids: ops.tensor(ids, [n, L + 1], { dtype: "i32" }),
    targets: ops.tensor(targets, [n * (L + 1)], { dtype: "i32" }),
  };
}

/** Entropy (nats) of the token frequencies: the loss of a model that ignores context. */
export function unigramEntropy(set: TokenSet): number {
  const counts = new Float64Array(set.clusters + 1);
  for (const t of set.tokens) counts[t]++;
  counts[set.clusters] = set.count; // the closing </s>
  const total = set.tokens.length + set.count;
  let h = 0;
  for (const c of counts) if (c > 0) h -= (c / total) * Math.log(c / total);
  return h;
}
