/** The shared training loop: exact resume, checkpoints, accumulation and abort. */

import assert from "node:assert/strict";
import * as ops from "../core/ops/mod.ts";
import { Generator } from "../core/random.ts";
import { liveStorages } from "../core/tensor.ts";
import { train, type TrainJob, type TrainSettings } from "../core/train/trainer.ts";
import { Stage1GPT } from "../plugins/stage1/model.ts";

const L = 8, V = 16;
const data = (() => {
  const g = new Generator(5);
  return Int32Array.from(
    { length: 12 * (L + 1) },
    (_, i) => (i % (L + 1) === 0 ? 2 : 5 + g.int(V)),
  );
})();

function job(): TrainJob<Int32Array> {
  const model = new Stage1GPT({
    clusters: V,
    classes: 0,
    layers: 1,
    dim: 16,
    heads: 2,
    ffnDim: 32,
    length: L,
    dropout: 0.1,
  }, new Generator(1));
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

const settings: TrainSettings = {
  maxSteps: 8,
  schedule: { kind: "inverse_sqrt", lr: 1e-2, warmup: 3, initLr: 1e-4 },
  betas: [0.9, 0.98],
  weightDecay: 0.01,
  clipNorm: 1,
  accumulate: 2,
  logInterval: 1,
  saveInterval: 100,
  validInterval: 0,
  seed: 3,
};

Deno.test("a resumed run reproduces the uninterrupted run's losses exactly", async () => {
  const before = liveStorages();
  const dirA = await Deno.makeTempDir(), dirB = await Deno.makeTempDir();
  const a = job();
  const full = await train(a, settings, dirA);
  a.model.dispose();
  // Interrupt after 3 updates (the checkpoint is written on abort), then resume.
  const b = job();
  const ctl = new AbortController();
  const first = await train(b, settings, dirB, {
    signal: ctl.signal,
    onProgress: (s) => s === 3 && ctl.abort(),
  });
  b.model.dispose();
  assert.equal(first.interrupted, true);
  assert.equal(first.step, 3);
  const c = job();
  const rest = await train(c, settings, dirB);
  c.model.dispose();
  assert.equal(rest.step, 8);
  assert.deepEqual(rest.losses, full.losses);
  assert.equal(full.losses.length, 8);
  assert.ok(full.losses[7] < full.losses[0], `loss should fall: ${full.losses}`);
  assert.equal(liveStorages(), before);
  await Deno.remove(dirA, { recursive: true });
  await Deno.remove(dirB, { recursive: true });
});
