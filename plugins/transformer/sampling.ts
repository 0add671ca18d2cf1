/**
 * Picking the next token from logits on the host: temperature, banned ids, top-k,
 * top-p (fairseq's rule: keep the smallest prefix of sorted tokens whose mass reaches
 * p, including the token that crosses it), then a multinomial draw from a seeded
 * stream. Shared by every autoregressive sampler.
 */

import type { Rng } from "../../core/random.ts";

export interface TokenSampling {
  temperature?: number;
  topK?: number;
  topP?: number;
}

/**
 * One draw per row of logits (rows, vocab). `banned` ids get probability 0. Returns the
 * chosen ids. Every row consumes exactly one number from `gen`, so results do not depend
 * on how the rows were batched.
 */
export function sampleRows(
  logits: Float32Array,
  rows: number,
  vocab: number,
  opts: TokenSampling,
  banned: readonly number[],
  gen: Rng,
): Int32Array {
  const out = new Int32Array(rows);
  const t = opts.temperature ?? 1;
  const probs = new Float64Array(vocab);
  const order: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    let max = -Infinity;
    for (let i = 0; i < vocab; i++) max = Math.max(max, row[i]);
    for (let i = 0; i < vocab; i++) probs[i] = Math.exp((row[i] - max) / t);
    for (const b of banned) probs[b] = 0;
    out[r] = drawFiltered(probs, opts, order, gen);
  }
  return out;
}

/** Greedy choice per row (ties: lowest id). */
export function argmaxRows(
  logits: Float32Array,
  rows: number,
  vocab: number,
  banned: readonly number[],
): Int32Array {
  const out = new Int32Array(rows);
  const ban = new Set(banned);
  for (let r = 0; r < rows; r++) {
    let best = -Infinity, arg = 0;
    for (let i = 0; i < vocab; i++) {
      const v = logits[r * vocab + i];
      if (!ban.has(i) && v > best) {
        best = v;
        arg = i;
      }
    }
    out[r] = arg;
  }
  return out;
}

function drawFiltered(
  probs: Float64Array,
  opts: TokenSampling,
  order: number[],
  gen: Rng,
): number {
  const vocab = probs.length;
  const topK = opts.topK && opts.topK > 0 ? Math.min(opts.topK, vocab) : vocab;
  const topP = opts.topP && opts.topP < 1 ? opts.topP : 1;
  const u = gen.uniform();
  if (topK === vocab && topP === 1) return drawFrom(probs, null, vocab, u);
  order.length = 0;
  for (let i = 0; i < vocab; i++) if (probs[i] > 0) order.push(i);
  // Sort by probability, highest first; ties by id for determinism.
  order.sort((a, b) => probs[b] - probs[a] || a - b);
  let keep = Math.min(topK, order.length);
  if (topP < 1) {
    let total = 0;
    for (let i = 0; i < keep; i++) total += probs[order[i]];
    let acc = 0;
    for (let i = 0; i < keep; i++) {
      acc += probs[order[i]] / total;
      if (acc >= topP) {
        keep = i + 1;
        break;
      }
    }
  }
  return drawFrom(probs, order, keep, u);
}

function drawFrom(probs: Float64Array, order: number[] | null, count: number, u: number): number {
  let total = 0;
  for (let i = 0; i < count; i++) total += probs[order ? order[i] : i];
  let target = u * total;
  let last = -1;
  for (let i = 0; i < count; i++) {
    const id = order ? order[i] : i;
    const p = probs[id];
    if (p <= 0) continue;
    last = id;
    target -= p;
    if (target < 0) return id;
  }
  if (last < 0) throw new Error("sampling: every token was banned or had zero probability");
  return last;
}
