/**
 * AR stage-2 sampling (DiGIT's PrefixSequenceGenerator with fairseq --sampling): the
 * semantic prefix and </s> are run once to fill the KV cache (prepare_incremental_state),
 * then L codes are drawn one at a time with top-p 0.8 and temperature 1 by default. All
 * five special ids are banned (</s> is also banned by --min-len until the image is
 * complete), so exactly L codes come out.
 *
 * Each image draws from its own stream, Rng(seed).fork(firstIndex + i), so an
 * image's codes do not depend on which batch it was decoded in.
 */

import { noGrad } from "../../core/autograd.ts";
import type { TokenGrid } from "../../core/interfaces.ts";
import type { KVCache } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { sampleRows, type TokenSampling } from "../transformer/sampling.ts";
import { gridShape, SPECIALS, type Stage2Model } from "./model.ts";

export const SPECIAL_IDS = [
  SPECIALS.bos,
  SPECIALS.pad,
  SPECIALS.eos,
  SPECIALS.unk,
  SPECIALS.newline,
];

export interface Stage2SampleOptions extends TokenSampling {
  seed: number;
  /** Index of the first image in the whole run (selects the per-image random streams). */
  firstIndex?: number;
  /** AR only: use the KV cache (default). Uncached decoding re-runs the sequence each step. */
  cache?: boolean;
  /** NAR only: MaskGIT iterations (DiGIT: 8). */
  steps?: number;
  /** NAR only: Gumbel scale at the first step, decaying linearly to 0 (MaskGIT: 4.5). */
  choiceTemperature?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Per-image random streams. */
export function imageStreams(seed: number, first: number, count: number): Rng[] {
  const root = new Rng(seed);
  return Array.from({ length: count }, (_, i) => root.fork(first + i));
}

/** The prefix of every row: semantic ids (offset into the shared table) then </s>. */
export function prefixIds(model: Stage2Model, semantic: TokenGrid): Int32Array[] {
  const P = model.cfg.prefixLength;
  if (semantic.height * semantic.width !== P || semantic.tokens.length !== semantic.count * P) {
    throw new Error(
      `stage2: semantic grids of ${semantic.height}x${semantic.width} (${semantic.tokens.length} tokens for ${semantic.count} images) do not give the model's ${P}-token prefix`,
    );
  }
  return Array.from({ length: semantic.count }, (_, i) => {
    const row = new Int32Array(P + 1);
    for (let t = 0; t < P; t++) row[t] = model.semanticId(semantic.tokens[i * P + t]);
    row[P] = SPECIALS.eos;
    return row;
  });
}

/** Logits of the last position of every row, (B, V+5) on the host. */
async function lastLogits(model: Stage2Model, run: () => Tensor): Promise<Float32Array> {
  const out = tidy(() =>
    noGrad(() => {
      const h = run();
      const last = ops.slice(h, 1, h.shape[1] - 1, h.shape[1]);
      return ops.reshape(model.decoder.output_projection.forward(last), [h.shape[0], -1]);
    })
  );
  const host = ((await out.data()) as Float32Array).slice();
  out.dispose();
  return host;
}

export async function sampleAR(
  model: Stage2Model,
  semantic: TokenGrid,
  opts: Stage2SampleOptions,
): Promise<TokenGrid> {
  if (model.cfg.variant !== "ar") {
    throw new Error(`stage2: sampleAR needs an AR model, this one is '${model.cfg.variant}'`);
  }
  const B = semantic.count, P = model.cfg.prefixLength, L = model.cfg.length, V = model.vqDictSize;
  const seqs = prefixIds(model, semantic).map((p) => Array.from(p));
  const gens = imageStreams(opts.seed, opts.firstIndex ?? 0, B);
  const sampling: TokenSampling = {
    temperature: opts.temperature ?? 1,
    topP: opts.topP ?? 0.8,
    topK: opts.topK,
  };
  const wasTraining = model.training;
  model.eval();
  const caches = opts.cache === false ? null : model.decoder.newCaches();
  let semanticInput: Tensor | null = null;
  try {
    // Aligned: the semantic input of every position, computed once for all L steps.
    if (model.aligned) {
      const prefix = seqs.flatMap((s) => s.slice(0, P));
      semanticInput = tidy(() =>
        noGrad(() => model.semanticEmbedding(ops.tensor(prefix, [B, P], { dtype: "i32" })))
      );
    }
    for (let t = 0; t < L; t++) {
      const logits = await lastLogits(model, () => {
        if (model.aligned) {
          // No prefix to cache: position t reads code t (</s> at 0) plus semantic token t+1.
          const first = caches ? t : 0;
          const ids = ops.tensor(seqs.flatMap((s) => s.slice(P + first, P + t + 1)), [
            B,
            t + 1 - first,
          ], { dtype: "i32" });
          const x = model.alignedInput(semanticInput!, ids, first, new Rng(0));
          return model.decoder.run(x, {
            causal: true,
            caches: caches ?? undefined,
            featuresOnly: true,
          });
        }
        if (caches && t === 0) {
          const ids = ops.tensor(seqs.flat(), [B, P + 1], { dtype: "i32" });
          return model.decoder.forward(ids, {
            causal: true,
            caches,
            prefixLength: P,
            featuresOnly: true,
          });
        }
        if (caches) {
          const ids = ops.tensor(seqs.map((s) => s[P + t]), [B, 1], { dtype: "i32" });
          return model.decoder.forward(ids, {
            causal: true,
            caches,
            startPosition: t,
            featuresOnly: true,
          });
        }
        const ids = ops.tensor(seqs.flat(), [B, P + 1 + t], { dtype: "i32" });
        return model.decoder.forward(ids, { causal: true, prefixLength: P, featuresOnly: true });
      });
      for (let b = 0; b < B; b++) {
        const row = logits.subarray(b * V, (b + 1) * V);
        seqs[b].push(sampleRows(row, 1, V, sampling, SPECIAL_IDS, gens[b])[0]);
      }
      opts.onProgress?.(t + 1, L);
    }
  } finally {
    semanticInput?.dispose();
    caches?.forEach((c: KVCache) => c.dispose());
    model.train(wasTraining);
  }
  const tokens = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) tokens[b * L + t] = seqs[b][P + 1 + t] - SPECIALS.count;
  }
  return { tokens, count: B, ...gridShape(L) };
}
