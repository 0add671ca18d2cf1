/**
 * Training steps of the small transformers the demo trains (forward, backward, AdamW):
 * stage 2's `tiny` (2 layers x 64) and `small` (4 x 128) decoders, batch 32, a 64-token
 * semantic prefix + </s> + 64 VQ tokens (129 positions, so the GEMMs are 4128 rows by
 * 64..512), 64 clusters, 512 codes. These are the many-small-GEMMs workloads that
 * OpenBLAS's thread count matters most for (see `core/native/openblas.ts`).
 *
 *   deno run -A bench/tiny_train_bench.ts [--steps 5] [--presets tiny,small] [--json]
 *
 * With --json it prints one line `{"tiny": seconds, "tiny cpu": cpu seconds, ...}` (used by
 * blas_threads_bench.ts); CPU seconds count every thread, so OpenBLAS workers spinning show.
 */

import { parseArgs } from "node:util";
import { backward } from "../core/autograd.ts";
import { blasDescription } from "../core/native/openblas.ts";
import * as ops from "../core/ops/mod.ts";
import { AdamW } from "../core/optim/mod.ts";
import { Rng } from "../core/random.ts";
import { tidy } from "../core/tensor.ts";
import { STAGE2_PRESETS, Stage2Model } from "../plugins/stage2/model.ts";
import { median } from "./peer.ts";

const B = 32, P = 64, L = 64, CLUSTERS = 64, CODES = 512;

/** CPU seconds (user + system, all threads) this process has used; NaN off Linux. */
export function cpuSeconds(): number {
  try {
    const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in USER_HZ (100)
  } catch {
    return NaN;
  }
}

/** Median wall seconds per training step of one preset, and CPU seconds per step. */
export function trainStep(preset: string, count: number): { wall: number; cpu: number } {
  const size = STAGE2_PRESETS[preset];
  const model = new Stage2Model({
    variant: "ar",
    clusters: CLUSTERS,
    codebookSize: CODES,
    prefixLength: P,
    length: L,
    ...size,
    dropout: 0.1,
  }, new Rng(0));
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const g = new Rng(1);
  const ids = new Int32Array(B * (P + 1 + L));
  const tgt = new Int32Array(B * (L + 1));
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < P; i++) ids[b * (P + 1 + L) + i] = model.semanticId(g.int(CLUSTERS));
    ids[b * (P + 1 + L) + P] = 2;
    for (let i = 0; i < L; i++) ids[b * (P + 1 + L) + P + 1 + i] = model.vqId(g.int(CODES));
    for (let i = 0; i <= L; i++) tgt[b * (L + 1) + i] = model.vqId(g.int(CODES));
  }
  const dropout = new Rng(2);
  const V = model.vqDictSize;
  const step = () => {
    tidy(() => {
      const logits = model.forward(ops.tensor(ids, [B, P + 1 + L], { dtype: "i32" }), dropout);
      const loss = ops.crossEntropy(
        ops.reshape(logits, [B * (L + 1), V]),
        ops.tensor(tgt, [B * (L + 1)], { dtype: "i32" }),
      );
      backward(loss);
    });
    opt.update();
    opt.zeroGrad();
  };
  step(); // warm-up
  const times: number[] = [];
  const cpu0 = cpuSeconds();
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    step();
    times.push((performance.now() - t) / 1000);
  }
  const cpu = (cpuSeconds() - cpu0) / count;
  model.dispose();
  opt.dispose();
  return { wall: median(times), cpu };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      steps: { type: "string", default: "5" },
      presets: { type: "string", default: "tiny,small" },
      json: { type: "boolean", default: false },
    },
  });
  const steps = Number(values.steps);
  const presets = values.presets.split(",");
  const out: Record<string, number> = {};
  if (!values.json) console.log(`tiny_train_bench; BLAS: ${blasDescription()}`);
  for (const p of presets) {
    const { wall, cpu } = trainStep(p, steps);
    out[p] = wall;
    out[`${p} cpu`] = cpu;
    if (!values.json) {
      const s = STAGE2_PRESETS[p];
      console.log(
        `stage-2 ${p} (${s.layers} x ${s.dim}) train step, batch ${B}, ${P + 1 + L} tokens: ` +
          `${(wall * 1000).toFixed(1)} ms (median of ${steps}), ${(cpu * 1000).toFixed(0)} ms CPU`,
      );
    }
  }
  if (values.json) console.log(JSON.stringify(out));
}
