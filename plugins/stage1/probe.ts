/**
 * Linear probe (DiGIT §8): the frozen stage-1 model reads [</s>, t1..tL]; the hidden
 * state after the embedding and after each layer except the last is mean-pooled over
 * all positions, and one linear classifier per depth is trained with SGD (momentum
 * 0.9) and a cosine schedule. Features are computed once (the model is frozen), then
 * the classifiers train on them.
 */

import { backward, noGrad } from "../../core/autograd.ts";
import { Linear } from "../../core/nn/mod.ts";
import * as ops from "../../core/ops/mod.ts";
import { cosine, SGD } from "../../core/optim/mod.ts";
import { Rng } from "../../core/random.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { stage1Tensors, type TokenSet } from "./data.ts";
import { SPECIALS, type Stage1GPT } from "./model.ts";

export interface ProbeOptions {
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  onProgress?: (done: number, total: number) => void;
}

/** Mean-pooled features per depth: features[d] is (count, dim). */
export async function pooledFeatures(
  model: Stage1GPT,
  set: TokenSet,
  batchSize = 16,
): Promise<Float32Array[]> {
  const depths = model.cfg.layers; // embedding + layers 1..L-1
  const D = model.cfg.dim;
  const out = Array.from({ length: depths }, () => new Float32Array(set.count * D));
  model.eval();
  for (let i = 0; i < set.count; i += batchSize) {
    const rows = Array.from({ length: Math.min(batchSize, set.count - i) }, (_, j) => i + j);
    const pooled = tidy(() =>
      noGrad(() => {
        const { ids } = stage1Tensors(set, rows, () => SPECIALS.eos);
        const states: Tensor[] = [];
        model.decoder.forward(ids, { causal: true, collectStates: states, featuresOnly: true });
        return ops.stack(states.slice(0, depths).map((s) => ops.mean(s, 1)), 0);
      })
    );
    const host = (await pooled.data()) as Float32Array;
    pooled.dispose();
    const n = rows.length;
    for (let d = 0; d < depths; d++) out[d].set(host.subarray(d * n * D, (d + 1) * n * D), i * D);
  }
  return out;
}

export interface ProbeResult {
  /** Top-1 accuracy per depth on the evaluation set (0 = embedding). */
  accuracy: number[];
  best: { depth: number; accuracy: number };
}

/** Train one classifier per depth on train features, report accuracy on eval features. */
export async function linearProbe(
  trainFeats: Float32Array[],
  trainLabels: Int32Array,
  evalFeats: Float32Array[],
  evalLabels: Int32Array,
  classes: number,
  opts: ProbeOptions,
): Promise<ProbeResult> {
  const depths = trainFeats.length;
  const n = trainLabels.length;
  const D = trainFeats[0].length / n;
  const gen = new Rng(opts.seed);
  const heads = trainFeats.map(() => {
    const h = new Linear(D, classes, { gen });
    // DiGIT: weight N(0, 0.01), bias 0.
    tidy(() => {
      const w = ops.randn([classes, D], gen, 0.01);
      h.weight.backend.copyInto(h.weight.view(), w.view());
      const z = ops.zeros([classes]);
      h.bias!.backend.copyInto(h.bias!.view(), z.view());
    });
    return h;
  });
  const opt = new SGD(heads.flatMap((h) => h.parameters()), { lr: opts.lr, momentum: 0.9 });
  const steps = opts.epochs * Math.ceil(n / opts.batchSize);
  let step = 0;
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    const perm = gen.permutation(n);
    for (let i = 0; i < n; i += opts.batchSize) {
      const rows = perm.subarray(i, Math.min(n, i + opts.batchSize));
      opt.lr = cosine(step, { lr: opts.lr, total: steps });
      tidy(() => {
        const y = ops.tensor(Int32Array.from(rows, (r) => trainLabels[r]), [rows.length], {
          dtype: "i32",
        });
        // The per-depth losses are summed, as DiGIT does.
        let total: Tensor | null = null;
        for (let d = 0; d < depths; d++) {
          const x = ops.tensor(gatherRows(trainFeats[d], rows, D), [rows.length, D]);
          const l = ops.crossEntropy(heads[d].forward(x), y);
          total = total ? ops.add(total, l) : l;
        }
        backward(total!);
      });
      opt.update();
      opt.zeroGrad();
      step++;
      opts.onProgress?.(step, steps);
    }
  }
  const accuracy: number[] = [];
  const m = evalLabels.length;
  for (let d = 0; d < depths; d++) {
    const predT = tidy(() =>
      noGrad(() => ops.argmax(heads[d].forward(ops.tensor(evalFeats[d], [m, D])), 1))
    );
    const pred = await predT.data();
    predT.dispose();
    let ok = 0;
    for (let i = 0; i < m; i++) if (pred[i] === evalLabels[i]) ok++;
    accuracy.push(ok / m);
  }
  opt.dispose();
  heads.forEach((h) => h.dispose());
  const bestDepth = accuracy.indexOf(Math.max(...accuracy));
  return { accuracy, best: { depth: bestDepth, accuracy: accuracy[bestDepth] } };
}

function gatherRows(src: Float32Array, rows: ArrayLike<number>, D: number): Float32Array {
  const out = new Float32Array(rows.length * D);
  for (let i = 0; i < rows.length; i++) out.set(src.subarray(rows[i] * D, rows[i] * D + D), i * D);
  return out;
}
