/**
 * Stage-1 sampling (fairseq-generate with --sampling, as DiGIT runs it): start from
 * </s> (or the class token), ban <s>/<pad>/<unk>/<n> always and </s> until the image's
 * tokens are complete, top-k from the temperature-scaled distribution. Optional
 * classifier-free guidance mixes class-conditional and unconditional (</s>-start) logits.
 */

import { noGrad } from "../../core/autograd.ts";
import type { SampleOptions, TokenGrid } from "../../core/interfaces.ts";
import type { KVCache } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { sampleRows } from "../transformer/sampling.ts";
import { SPECIALS, type Stage1GPT } from "./model.ts";

export interface Stage1SampleOptions extends SampleOptions {
  /** Use the KV cache (default). Uncached decoding re-runs the whole prefix each step. */
  cache?: boolean;
}

const ALWAYS_BANNED = [SPECIALS.bos, SPECIALS.pad, SPECIALS.unk, SPECIALS.newline];

export async function sampleStage1(
  model: Stage1GPT,
  opts: Stage1SampleOptions,
): Promise<TokenGrid> {
  const n = opts.count;
  const L = model.cfg.length;
  const side = Math.round(Math.sqrt(L));
  const V = model.cfg.clusters + SPECIALS.count;
  const guidance = opts.guidance ?? 1;
  const useCfg = guidance !== 1 && model.cfg.classes > 0;
  const starts = Array.from({ length: n }, (_, i) => model.startToken(opts.classes?.[i]));
  // With guidance the batch holds the conditional rows, then unconditional ones.
  const rowsStart = useCfg ? [...starts, ...starts.map(() => SPECIALS.eos)] : starts;
  const B = rowsStart.length;
  const gen = new Rng(opts.seed);
  const seqs = rowsStart.map((s) => [s]);
  const banned = [...ALWAYS_BANNED, SPECIALS.eos];
  const wasTraining = model.training;
  model.eval();
  const caches = opts.cache === false ? null : model.decoder.newCaches(L);
  try {
    for (let t = 0; t < L; t++) {
      const logits = await lastLogits(model, seqs, t, caches);
      const rows = useCfg ? mixGuidance(logits, n, V, guidance) : logits;
      const next = sampleRows(rows, n, V, opts, banned, gen);
      for (let i = 0; i < B; i++) seqs[i].push(next[i % n]);
      opts.onProgress?.(t + 1, L);
    }
  } finally {
    caches?.forEach((c: KVCache) => c.dispose());
    model.train(wasTraining);
  }
  const tokens = new Int32Array(n * L);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < L; t++) tokens[i * L + t] = seqs[i][t + 1] - SPECIALS.count;
  }
  return { tokens, count: n, height: side, width: L / side };
}

/** Logits of the newest position for every row, (rows, V) on the host. */
async function lastLogits(
  model: Stage1GPT,
  seqs: number[][],
  t: number,
  caches: KVCache[] | null,
): Promise<Float32Array> {
  const B = seqs.length;
  const out: Tensor = tidy(() =>
    noGrad(() => {
      if (caches) {
        const ids = ops.tensor(seqs.map((s) => s[t]), [B, 1], { dtype: "i32" });
        const logits = model.decoder.forward(ids, { causal: true, caches, startPosition: t });
        return ops.reshape(logits, [B, -1]);
      }
      const ids = ops.tensor(seqs.flat(), [B, t + 1], { dtype: "i32" });
      const logits = model.decoder.forward(ids, { causal: true });
      return ops.reshape(ops.slice(logits, 1, t, t + 1), [B, -1]);
    })
  );
  const host = (await out.data()) as Float32Array;
  const copy = host.slice();
  out.dispose();
  return copy;
}

/** uncond + s*(cond - uncond), row by row. */
function mixGuidance(logits: Float32Array, n: number, V: number, s: number): Float32Array {
  const out = new Float32Array(n * V);
  for (let i = 0; i < n * V; i++) {
    const c = logits[i], u = logits[n * V + i];
    out[i] = u + s * (c - u);
  }
  return out;
}
