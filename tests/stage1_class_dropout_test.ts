/**
 * Class dropout (model.class_dropout_prob): with it, stage 1 learns the unconditional
 * (</s>-start) path that classifier-free guidance mixes in; without it that path is never
 * trained. Also the bad-input errors of train-stage1.
 */

import { expect, it } from "./lib/test.ts";
import { noGrad } from "../core/autograd.ts";
import { validate } from "../core/config.ts";
import * as ops from "../core/ops/mod.ts";
import { Rng } from "../core/random.ts";
import { stage1ConfigSchema } from "../plugins/stage1/config.ts";
import type { TokenSet } from "../plugins/stage1/data.ts";
import { SPECIALS, type Stage1GPT } from "../plugins/stage1/model.ts";
import { trainStage1 } from "../plugins/stage1/train.ts";

const K = 16, L = 8, CLASSES = 4;

/** Class c starts with token c, then walks the vocabulary with stride c + 1. */
function classSet(count: number, seed: number, classes = CLASSES): TokenSet {
  const g = new Rng(seed);
  const tokens = new Int32Array(count * L);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const c = i % classes;
    labels[i] = c;
    let t = c;
    for (let j = 0; j < L; j++) {
      tokens[i * L + j] = t;
      t = (t + 1 + c + (g.uniform() < 0.1 ? 1 : 0)) % K;
    }
  }
  return { tokens, count, length: L, clusters: K, labels };
}

function config(classDropout: number, batch = 16) {
  return validate(stage1ConfigSchema, {
    task: { tokens: "(memory)", target_vocab_size: K },
    dataset: { batch_size: batch },
    optimization: { max_update: 150, lr: 3e-3 },
    lr_scheduler: { warmup_updates: 10 },
    checkpoint: { save_interval_updates: 150 },
    model: {
      preset: "tiny",
      dropout: 0,
      class_conditional: true,
      num_classes: CLASSES,
      class_dropout_prob: classDropout,
    },
  }, "test");
}

/** Probabilities of the first semantic token after a given start token. */
function firstTokenProbs(model: Stage1GPT, start: number): Float32Array {
  model.eval();
  return noGrad(() => {
    const logits = model.forward(ops.tensor([start], [1, 1], { dtype: "i32" }));
    const p = ops.softmax(ops.reshape(logits, [-1]), 0);
    const out = (p.dataSync() as Float32Array).slice(SPECIALS.count, SPECIALS.count + K);
    logits.dispose();
    p.dispose();
    return out;
  });
}

async function trained(classDropout: number) {
  const dir = await Deno.makeTempDir();
  const { model } = await trainStage1(config(classDropout), classSet(256, 1), null, dir);
  await Deno.remove(dir, { recursive: true });
  return model;
}

it("class dropout teaches the unconditional path the class mixture; without it that path is not learned", async () => {
  const withDropout = await trained(0.25);
  const without = await trained(0);
  const mass = (m: Stage1GPT) => firstTokenProbs(m, SPECIALS.eos).slice(0, CLASSES);
  const learned = mass(withDropout);
  // The data's unconditional first token is uniform over the 4 class tokens (0.25 each).
  const total = learned.reduce((a, b) => a + b, 0);
  expect(total, `unconditional mass on the class tokens ${total} (expected >= 0.85)`)
    .toBeGreaterThanOrEqual(0.85);
  for (const p of learned) {
    expect(p > 0.1 && p < 0.45, `unconditional class-token probabilities ${learned}`).toBeTruthy();
  }
  // Conditional prediction still works with dropout on.
  for (let c = 0; c < CLASSES; c++) {
    const p = firstTokenProbs(withDropout, withDropout.startToken(c))[c];
    expect(p, `P(first token = ${c} | class ${c}) = ${p}`).toBeGreaterThanOrEqual(0.8);
  }
  // Without dropout the </s> start never appears as an input: its prediction is far from the
  // mixture (measured: total variation 0.63 without dropout, 0.12 with it).
  const untrainedMass = mass(without);
  const tv = untrainedMass.reduce((s, p) => s + Math.abs(p - 0.25), 0) / 2 +
    (1 - untrainedMass.reduce((a, b) => a + b, 0)) / 2;
  const tvLearned = learned.reduce((s, p) => s + Math.abs(p - 0.25), 0) / 2 + (1 - total) / 2;
  expect(tv, `distance to the mixture: no dropout ${tv}, dropout ${tvLearned}`).toBeGreaterThan(
    2 * tvLearned,
  );
  withDropout.dispose();
  without.dispose();
});

it("train-stage1 refuses fewer images than a batch, and a class-conditional set with one class", async () => {
  const dir = await Deno.makeTempDir();
  await expect(() => trainStage1(config(0, 64), classSet(32, 1), null, dir)).rejects.toThrow(
    /32 images, fewer than one batch of dataset.batch_size = 64/,
  );
  await expect(() => trainStage1(config(0), classSet(64, 1, 1), null, dir)).rejects.toThrow(
    /every image has class 0; a class-conditional model needs at least two classes/,
  );
  await Deno.remove(dir, { recursive: true });
});
