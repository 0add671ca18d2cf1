/**
 * Paired token sets (semantic ids, VQ ids per image) and the stage-2 training sequences:
 *
 *   AR   input [s | </s>, v1..vL]            target [v1..vL, </s>]        all L+1 scored
 *   NAR  input [s | </s>, x1..xL]            target v_i where x_i = <unk> only
 *        with n = min(L, floor(L*cos(pi/2*u)) + 1) of the L codes masked, u ~ U(0, 1),
 *        the masked set uniform among all n-subsets (DiGIT's `random_mask`).
 */

import type { TokenGrid } from "../../core/interfaces.ts";
import { readTokenFile } from "../../core/io/tokens.ts";
import * as ops from "../../core/ops/mod.ts";
import type { Rng } from "../../core/random.ts";
import type { Tensor } from "../../core/tensor.ts";
import { SPECIALS, type Stage2Model } from "./model.ts";

/** Semantic and VQ tokens of the same images, row-major, ids without offsets. */
export interface PairSet {
  semantic: Int32Array;
  vq: Int32Array;
  count: number;
  prefixLength: number;
  length: number;
}

/** Ignored target (no loss). */
export const IGNORE = -100;

export function checkPairSet(set: PairSet, model: Stage2Model): void {
  const c = model.cfg;
  if (set.prefixLength !== c.prefixLength || set.length !== c.length) {
    throw new Error(
      `stage2: token set has ${set.prefixLength} semantic / ${set.length} VQ tokens per image, the model expects ${c.prefixLength} / ${c.length}`,
    );
  }
  if (
    set.semantic.length !== set.count * set.prefixLength || set.vq.length !== set.count * set.length
  ) {
    throw new Error(
      `stage2: token arrays (${set.semantic.length}, ${set.vq.length}) do not fill ${set.count} images`,
    );
  }
}

/** The sequence prefix for one image: its semantic ids (offset) then </s>. */
function writePrefix(
  model: Stage2Model,
  set: PairSet,
  row: number,
  out: Int32Array,
  at: number,
): void {
  const P = set.prefixLength;
  for (let t = 0; t < P; t++) out[at + t] = model.semanticId(set.semantic[row * P + t]);
  out[at + P] = SPECIALS.eos;
}

/** AR teacher forcing: ids (n, P+L+1), targets (n*(L+1)). */
export function arBatch(
  model: Stage2Model,
  set: PairSet,
  rows: ArrayLike<number>,
): { ids: Tensor; targets: Tensor } {
  const P = set.prefixLength, L = set.length, T = P + L + 1;
  const n = rows.length;
  const ids = new Int32Array(n * T);
  const targets = new Int32Array(n * (L + 1));
  for (let b = 0; b < n; b++) {
    const r = rows[b];
    writePrefix(model, set, r, ids, b * T);
    for (let t = 0; t < L; t++) {
      const v = model.vqId(set.vq[r * L + t]);
      ids[b * T + P + 1 + t] = v;
      targets[b * (L + 1) + t] = v;
    }
    targets[b * (L + 1) + L] = SPECIALS.eos;
  }
  return {
    ids: ops.tensor(ids, [n, T], { dtype: "i32" }),
    targets: ops.tensor(targets, [n * (L + 1)], { dtype: "i32" }),
  };
}

/** How many of L codes DiGIT masks for a uniform draw u: floor(L*cos(pi/2*u)) + 1, at most L. */
export function narMaskCount(L: number, u: number): number {
  return Math.min(L, Math.floor(L * Math.cos((Math.PI / 2) * u)) + 1);
}

/** MaskGIT training: ids with masked codes as <unk>, targets IGNORE except at masked slots. */
export function narBatch(
  model: Stage2Model,
  set: PairSet,
  rows: ArrayLike<number>,
  gen: Rng,
): { ids: Tensor; targets: Tensor; masked: number } {
  const P = set.prefixLength, L = set.length, T = P + L + 1;
  const n = rows.length;
  const ids = new Int32Array(n * T);
  const targets = new Int32Array(n * (L + 1)).fill(IGNORE);
  let masked = 0;
  for (let b = 0; b < n; b++) {
    const r = rows[b];
    writePrefix(model, set, r, ids, b * T);
    for (let t = 0; t < L; t++) ids[b * T + P + 1 + t] = model.vqId(set.vq[r * L + t]);
    const count = narMaskCount(L, gen.uniform());
    const order = gen.permutation(L);
    for (let k = 0; k < count; k++) {
      const t = order[k];
      targets[b * (L + 1) + 1 + t] = ids[b * T + P + 1 + t];
      ids[b * T + P + 1 + t] = SPECIALS.unk;
    }
    masked += count;
  }
  return {
    ids: ops.tensor(ids, [n, T], { dtype: "i32" }),
    targets: ops.tensor(targets, [n * (L + 1)], { dtype: "i32" }),
    masked,
  };
}

/**
 * Entropy (nats) of the VQ code frequencies: the loss of a model that ignores both the
 * semantic prefix and the other codes. With `withEos` the closing </s> of AR targets counts.
 */
export function vqUnigramEntropy(set: PairSet, codebookSize: number, withEos = false): number {
  const counts = new Float64Array(codebookSize + 1);
  for (const v of set.vq) counts[v]++;
  if (withEos) counts[codebookSize] = set.count;
  const total = set.vq.length + (withEos ? set.count : 0);
  let h = 0;
  for (const c of counts) if (c > 0) h -= (c / total) * Math.log(c / total);
  return h;
}

/** Pair semantic and VQ token grids of the same images (same order). */
export function pairSet(semantic: TokenGrid, vq: TokenGrid): PairSet {
  if (semantic.count !== vq.count) {
    throw new Error(`stage2: ${semantic.count} semantic grids but ${vq.count} VQ grids`);
  }
  return {
    semantic: semantic.tokens,
    vq: vq.tokens,
    count: semantic.count,
    prefixLength: semantic.height * semantic.width,
    length: vq.height * vq.width,
  };
}

/**
 * A semantic token file (from the tokenizer) and a VQ token file (VQGAN codes, e.g. from
 * `encodeImages`) of the same images in the same order, as one training set.
 */
export async function readPairSet(
  semanticPath: string,
  vqPath: string,
): Promise<PairSet & { clusters: number; codebookSize: number }> {
  const [s, v] = await Promise.all([readTokenFile(semanticPath), readTokenFile(vqPath)]);
  if (s.count !== v.count) {
    throw new Error(
      `stage2: ${semanticPath} has ${s.count} images but ${vqPath} has ${v.count}; they must list the same images`,
    );
  }
  return {
    semantic: s.tokens,
    vq: v.tokens,
    count: s.count,
    prefixLength: s.height * s.width,
    length: v.height * v.width,
    clusters: s.vocab,
    codebookSize: v.vocab,
  };
}
