/**
 * A one-layer GPT on 12 fixed token sequences as a training job: small enough to train in
 * milliseconds, with dropout so that exact resume must restore the random stream too.
 * Shared by the trainer tests.
 */

import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import type { TrainJob } from "../../core/train/trainer.ts";
import { Stage1GPT } from "../../plugins/stage1/model.ts";

/** Tokens per sequence (each micro-batch scores 2 * L of them). */
export const L = 8;
const V = 16;
const data = (() => {
  const g = new Rng(5);
  return Int32Array.from(
    { length: 12 * (L + 1) },
    (_, i) => (i % (L + 1) === 0 ? 2 : 5 + g.int(V)),
  );
})();

/** A fresh model (same initial weights every call) and its job: 6 micro-batches of 2 per epoch. */
export function tinyGptJob(): TrainJob<Int32Array> {
  const model = new Stage1GPT({
    clusters: V,
    classes: 0,
    layers: 1,
    dim: 16,
    heads: 2,
    ffnDim: 32,
    length: L,
    dropout: 0.1,
  }, new Rng(1));
  return {
    model,
    batchesPerEpoch: 6,
    batch: (_e, i, order) => data.subarray(order[i] * 2 * (L + 1), (order[i] + 1) * 2 * (L + 1)),
    loss(batch, gen) {
      const all = ops.tensor(batch, [2, L + 1], { dtype: "i32" });
      const inp = ops.contiguous(ops.slice(all, 1, 0, L));
      const tgt = ops.reshape(ops.contiguous(ops.slice(all, 1, 1, L + 1)), [2 * L]);
      const logits = model.decoder.forward(inp, { causal: true, gen });
      return ops.crossEntropy(ops.reshape(logits, [2 * L, V + 5]), tgt, { labelSmoothing: 0.1 });
    },
    itemsPerBatch: () => 2 * L,
  };
}
