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
  const topK = opts.topK && opts.topK > 0 ? Math.min(opts.topK, vocab) : vocab;
  const topP = opts.topP && opts.topP < 1 ? opts.topP : 1;
  const isBanned = new Uint8Array(vocab);
  for (const b of banned) isBanned[b] = 1;
  const probs = new Float64Array(vocab);
  const order: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    let max = -Infinity;
    for (let i = 0; i < vocab; i++) max = Math.max(max, row[i]);
    const scaled = (i: number) => (row[i] - max) / t;
    const u = gen.uniform();
    let keep: number;
    if (topK < vocab) {
      // Fills probs only where the selection needs them; later steps read kept ids only.
      keep = mostProbable(scaled, isBanned, topK, probs, order);
    } else {
      for (let i = 0; i < vocab; i++) probs[i] = isBanned[i] ? 0 : Math.exp(scaled(i));
      if (topP === 1) {
        out[r] = drawFrom(probs, null, vocab, u);
        continue;
      }
      keep = rankAll(probs, order);
    }
    if (topP < 1) keep = nucleus(probs, order, keep, topP);
    out[r] = drawFrom(probs, order, keep, u);
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

/** fairseq's top-p: how many of the ranked ids to keep so that their mass reaches p. */
function nucleus(probs: Float64Array, order: number[], keep: number, topP: number): number {
  let total = 0;
  for (let i = 0; i < keep; i++) total += probs[order[i]];
  let acc = 0;
  for (let i = 0; i < keep; i++) {
    acc += probs[order[i]] / total;
    if (acc >= topP) return i + 1;
  }
  return keep;
}

/** Fills `order` with every id of nonzero probability, ranked; returns how many. */
function rankAll(probs: Float64Array, order: number[]): number {
  order.length = 0;
  for (let i = 0; i < probs.length; i++) if (probs[i] > 0) order.push(i);
  // Highest probability first; ties by id for determinism.
  return order.sort((a, b) => probs[b] - probs[a] || a - b).length;
}

/**
 * Fills `order` with the `k` best unbanned ids of nonzero probability, ranked as `rankAll`
 * ranks them (the same prefix), and `probs` with their probabilities exp(scaled(id));
 * returns how many. A min-heap of the best ids so far, whose root is the weakest, means
 * most of the vocabulary costs one comparison with the root, and most ids need no exp:
 * Math.exp (fdlibm's) is within 1 ulp of e^y, so a scaled logit below the root's by the
 * margin (1e-6 relative, some 10^9 times what that error could undo) has a smaller
 * probability than the root's, which the heap would refuse anyway: skipping its exp
 * changes no result.
 */
function mostProbable(
  scaled: (id: number) => number,
  isBanned: Uint8Array,
  k: number,
  probs: Float64Array,
  order: number[],
): number {
  const heap = new Heap(k);
  let skipBelow = -Infinity;
  for (let id = 0; id < isBanned.length; id++) {
    const y = scaled(id);
    if (y < skipBelow || isBanned[id]) continue;
    const p = (probs[id] = Math.exp(y));
    // Ids come in increasing order, so a tie with the root ranks below it.
    if (!(p > heap.floor)) continue;
    heap.push(p, id);
    if (heap.size === k) skipBelow = lowerByMargin(scaled(heap.id[0]));
  }
  order.length = heap.size;
  for (let i = heap.size - 1; i >= 0; i--) order[i] = heap.pop();
  return order.length;
}

/** y less the margin, where e^y is a normal double; -Infinity (skip nothing) elsewhere. */
function lowerByMargin(y: number): number {
  return Math.abs(y) < 700 ? y - 1e-6 * (1 + Math.abs(y)) : -Infinity;
}

/**
 * At most `capacity` (probability, id) pairs, the weakest at the root: lower probability
 * ranks below, and at equal probability the higher id. Keys sit in typed arrays beside the
 * ids so that sifting reads no other array.
 */
class Heap {
  readonly p: Float64Array;
  readonly id: Int32Array;
  size = 0;
  constructor(readonly capacity: number) {
    this.p = new Float64Array(capacity);
    this.id = new Int32Array(capacity);
  }
  /** What a new entry must beat once full (0 before: only nonzero probabilities enter). */
  get floor(): number {
    return this.size < this.capacity ? 0 : this.p[0];
  }
  /** Adds an entry; once full, it must rank above the root, which it evicts. */
  push(p: number, id: number): void {
    if (this.size < this.capacity) {
      let i = this.size++;
      // Sift up: parents move down until the new entry's place is found.
      while (i > 0) {
        const up = (i - 1) >> 1;
        if (!below(p, id, this.p[up], this.id[up])) break;
        this.p[i] = this.p[up];
        this.id[i] = this.id[up];
        i = up;
      }
      this.p[i] = p;
      this.id[i] = id;
    } else this.#sink(p, id);
  }
  /** Removes and returns the weakest id. */
  pop(): number {
    const top = this.id[0];
    const last = --this.size;
    if (last > 0) this.#sink(this.p[last], this.id[last]);
    return top;
  }
  /** Puts (p, id) in place of the root and sifts it down among the first `size` slots. */
  #sink(p: number, id: number): void {
    const n = this.size;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && below(this.p[right], this.id[right], this.p[child], this.id[child])) {
        child = right;
      }
      if (!below(this.p[child], this.id[child], p, id)) break;
      this.p[i] = this.p[child];
      this.id[i] = this.id[child];
      i = child;
    }
    this.p[i] = p;
    this.id[i] = id;
  }
}

/** (pa, a) ranks below (pb, b): lower probability, or the same and a higher id. */
function below(pa: number, a: number, pb: number, b: number): boolean {
  return pa < pb || (pa === pb && a > b);
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
