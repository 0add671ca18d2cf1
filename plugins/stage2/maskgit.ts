/**
 * NAR stage-2 decoding (DiGIT's `forward_decoder`, from MAGE/MaskGIT): start with all L
 * codes masked (<unk>); at step s of T, with ratio r = (s+1)/T,
 *   1. run the whole sequence bidirectionally, ban the five special ids;
 *   2. draw every masked slot from softmax(logits / temperature) (no top-k/top-p);
 *   3. confidence = log p(drawn code) + g * Gumbel, g = choiceTemperature * (1 - r);
 *      codes fixed earlier have confidence +inf;
 *   4. unless s is the last step, re-mask the mask_len least confident slots, where
 *      mask_len = max(1, min(masked_before - 1, floor(L * cos(pi/2 * r)))).
 * For L = 256 and T = 8 this reveals 5, 15, 24, 31, 39, 45, 48, 49 codes per step.
 * DiGIT re-masks every slot whose confidence is <= the mask_len-th smallest, so exact
 * ties could re-mask more; here ties are broken by position, so the counts are exact.
 */

import { noGrad } from "../../core/autograd.ts";
import type { TokenGrid } from "../../core/interfaces.ts";
import * as ops from "../../core/ops/mod.ts";
import type { Rng } from "../../core/random.ts";
import { tidy } from "../../core/tensor.ts";
import { gridShape, SPECIALS, type Stage2Model } from "./model.ts";
import { imageStreams, prefixIds, type Stage2SampleOptions } from "./sample_ar.ts";

/** Codes left masked after step `step` (0-based) of `steps`, given `masked` before it. */
export function maskLength(L: number, step: number, steps: number, masked: number): number {
  if (step === steps - 1) return 0;
  const ratio = (step + 1) / steps;
  return Math.max(1, Math.min(masked - 1, Math.floor(L * Math.cos((Math.PI / 2) * ratio))));
}

/** Codes revealed at each step: [5, 15, 24, 31, 39, 45, 48, 49] for L=256, T=8. */
export function maskgitSchedule(L: number, steps: number): number[] {
  const out: number[] = [];
  let masked = L;
  for (let s = 0; s < steps; s++) {
    const next = maskLength(L, s, steps, masked);
    out.push(masked - next);
    masked = next;
  }
  return out;
}

/** Standard Gumbel from a uniform in [0, 1) (the +tiny keeps log finite). */
function gumbel(gen: Rng): number {
  return -Math.log(-Math.log(gen.uniform() + 1e-20) + 1e-20);
}

export interface MaskgitStep {
  step: number;
  /** Codes still masked after this step. */
  masked: number[];
}

export async function sampleNAR(
  model: Stage2Model,
  semantic: TokenGrid,
  opts: Stage2SampleOptions & { onStep?: (s: MaskgitStep) => void },
): Promise<TokenGrid> {
  if (model.cfg.variant !== "nar") {
    throw new Error(`stage2: sampleNAR needs a NAR model, this one is '${model.cfg.variant}'`);
  }
  const B = semantic.count, P = model.cfg.prefixLength, L = model.cfg.length, V = model.vqDictSize;
  const T = opts.steps ?? 8;
  if (!(T >= 1)) throw new Error(`stage2: MaskGIT needs at least one step, got ${T}`);
  const temperature = opts.temperature ?? 1;
  const choice = opts.choiceTemperature ?? 4.5;
  const gens = imageStreams(opts.seed, opts.firstIndex ?? 0, B);
  const prefixes = prefixIds(model, semantic);
  // codes[b*L + j]: dictionary id of slot j, or <unk> while masked.
  const codes = new Int32Array(B * L).fill(SPECIALS.unk);
  const maskedCount = new Array<number>(B).fill(L);
  const probs = new Float64Array(V);
  const wasTraining = model.training;
  model.eval();
  try {
    for (let s = 0; s < T; s++) {
      const ids = new Int32Array(B * (P + 1 + L));
      for (let b = 0; b < B; b++) {
        ids.set(prefixes[b], b * (P + 1 + L));
        ids.set(codes.subarray(b * L, (b + 1) * L), b * (P + 1 + L) + P + 1);
      }
      const out = tidy(() =>
        noGrad(() =>
          ops.contiguous(
            ops.slice(
              model.forward(ops.tensor(ids, [B, P + 1 + L], { dtype: "i32" })),
              1,
              1,
              L + 1,
            ),
          )
        )
      );
      const logits = (await out.data()) as Float32Array;
      out.dispose();
      const g = choice * (1 - (s + 1) / T);
      for (let b = 0; b < B; b++) {
        const confidence: { slot: number; c: number }[] = [];
        for (let j = 0; j < L; j++) {
          if (codes[b * L + j] !== SPECIALS.unk) continue;
          const row = logits.subarray((b * L + j) * V, (b * L + j + 1) * V);
          const drawn = drawCode(row, temperature, probs, gens[b]);
          codes[b * L + j] = drawn.id;
          confidence.push({ slot: j, c: drawn.logp + g * gumbel(gens[b]) });
        }
        const keepMasked = maskLength(L, s, T, maskedCount[b]);
        confidence.sort((x, y) => x.c - y.c || x.slot - y.slot);
        for (let k = 0; k < keepMasked; k++) codes[b * L + confidence[k].slot] = SPECIALS.unk;
        maskedCount[b] = keepMasked;
      }
      opts.onStep?.({ step: s, masked: [...maskedCount] });
      opts.onProgress?.(s + 1, T);
    }
  } finally {
    model.train(wasTraining);
  }
  const tokens = new Int32Array(B * L);
  for (let i = 0; i < B * L; i++) tokens[i] = codes[i] - SPECIALS.count;
  return { tokens, count: B, ...gridShape(L) };
}

/**
 * One draw from softmax(row / temperature) with the special ids banned; also returns the
 * log-probability of the drawn code under softmax(row) with specials banned (DiGIT's score).
 */
function drawCode(
  row: Float32Array,
  temperature: number,
  probs: Float64Array,
  gen: Rng,
): { id: number; logp: number } {
  const V = row.length;
  let max = -Infinity;
  for (let i = SPECIALS.count; i < V; i++) max = Math.max(max, row[i]);
  let total = 0;
  for (let i = 0; i < V; i++) {
    probs[i] = i < SPECIALS.count ? 0 : Math.exp((row[i] - max) / temperature);
    total += probs[i];
  }
  let target = gen.uniform() * total;
  let id = V - 1;
  for (let i = SPECIALS.count; i < V; i++) {
    target -= probs[i];
    if (target < 0) {
      id = i;
      break;
    }
  }
  // The confidence uses temperature 1, as DiGIT's softmax(logits).
  let z = 0;
  for (let i = SPECIALS.count; i < V; i++) z += Math.exp(row[i] - max);
  return { id, logp: row[id] - max - Math.log(z) };
}
