/**
 * sampleRows (plugins/transformer/sampling.ts) against a reference written straight from
 * the rule it implements: probabilities from the temperature-scaled logits, banned ids at
 * 0, every id ranked by probability (ties: lower id first) with one full sort, top-k then
 * top-p (fairseq's prefix that reaches p), and a draw from the kept mass (in id order when
 * neither cuts anything). The fast path
 * finds the top k without sorting the vocabulary; it must pick the very same tokens.
 */

import { expect, it } from "./lib/test.ts";
import { Rng } from "../core/random.ts";
import { sampleRows, type TokenSampling } from "../plugins/transformer/sampling.ts";

/** One draw for one row, the slow and obvious way. */
function referenceDraw(
  row: Float32Array,
  opts: TokenSampling,
  banned: readonly number[],
  u: number,
): number {
  const V = row.length, t = opts.temperature ?? 1;
  let max = -Infinity;
  for (let i = 0; i < V; i++) max = Math.max(max, row[i]);
  const probs = Array.from(row, (x) => Math.exp((x - max) / t));
  for (const b of banned) probs[b] = 0;
  const ids = [...probs.keys()].filter((i) => probs[i] > 0);
  const cuts = (opts.topK && opts.topK > 0 && opts.topK < V) || (opts.topP && opts.topP < 1);
  // With nothing to cut, the draw walks the ids in order; else in rank order.
  const ranked = cuts ? ids.sort((a, b) => probs[b] - probs[a] || a - b) : ids;
  let kept = opts.topK && opts.topK > 0 ? ranked.slice(0, opts.topK) : ranked;
  if (opts.topP && opts.topP < 1) {
    const total = kept.reduce((s, i) => s + probs[i], 0);
    let acc = 0;
    const end = kept.findIndex((i) => (acc += probs[i] / total) >= opts.topP!);
    if (end >= 0) kept = kept.slice(0, end + 1);
  }
  let target = u * kept.reduce((s, i) => s + probs[i], 0);
  for (const i of kept) if ((target -= probs[i]) < 0) return i;
  return kept[kept.length - 1];
}

/** Logits with many exact ties (few distinct values) or all distinct. */
function logits(rows: number, vocab: number, gen: Rng, levels: number): Float32Array {
  return Float32Array.from(
    { length: rows * vocab },
    () => levels ? Math.floor(gen.uniform() * levels) * 0.5 : gen.normal() * 2,
  );
}

const CASES: [string, TokenSampling][] = [
  ["top-k 200", { topK: 200 }],
  ["top-k 1", { topK: 1 }],
  ["top-k 7 at temperature 0.6", { topK: 7, temperature: 0.6 }],
  ["top-k 50 then top-p 0.7", { topK: 50, topP: 0.7 }],
  ["top-p 0.9 alone", { topP: 0.9, temperature: 1.3 }],
  ["top-k larger than the vocabulary", { topK: 5000 }],
];

for (const [name, opts] of CASES) {
  it(`sampleRows (${name}) draws the reference's tokens, with and without ties`, () => {
    const rows = 6, vocab = 1031, banned = [0, 3, 4, 700];
    for (const levels of [0, 4, 40]) {
      const x = logits(rows, vocab, new Rng(levels + 1), levels);
      for (let seed = 0; seed < 5; seed++) {
        const got = sampleRows(x, rows, vocab, opts, banned, new Rng(seed));
        const draws = new Rng(seed);
        const want = Array.from(
          { length: rows },
          (_, r) =>
            referenceDraw(x.subarray(r * vocab, (r + 1) * vocab), opts, banned, draws.uniform()),
        );
        expect(Array.from(got), `levels ${levels}, seed ${seed}`).toEqual(want);
      }
    }
  });
}

it("sampleRows with top-k keeps only the k most probable ids, lower id first on ties", () => {
  // Ids 2, 5 and 9 share the best logit; top-2 keeps 2 and 5, so 9 is never drawn.
  const row = new Float32Array(12).fill(-50);
  row[2] = row[5] = row[9] = 3;
  const seen = new Set<number>();
  const gen = new Rng(1);
  for (let i = 0; i < 200; i++) seen.add(sampleRows(row, 1, 12, { topK: 2 }, [], gen)[0]);
  expect([...seen].sort((a, b) => a - b)).toEqual([2, 5]);
});

it("sampleRows with every id banned names the problem", () => {
  const row = new Float32Array([1, 2, 3]);
  expect(() => sampleRows(row, 1, 3, { topK: 2 }, [0, 1, 2], new Rng(0))).toThrow(
    /every token was banned/,
  );
});
