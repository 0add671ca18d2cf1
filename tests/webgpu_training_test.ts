/**
 * The same model code trains, saves, loads and samples on WebGPU with no change: the
 * stage-1 GPT through `trainStage1` (the shared `train()` loop: label-smoothed cross
 * entropy, dropout, clipping, AdamW, validation, checkpoints) on the CPU backend and on
 * WebGPU, chosen only with `useDevice`.
 *
 * References: the PyTorch fixture of tests/fixtures/make_core_fixtures.py for one
 * forward/backward on WebGPU, and the CPU backend (itself tested against PyTorch) for
 * the 20-step run, the loaded checkpoint and the sampled tokens. Dropout masks are
 * counter-based, so both backends drop the same units and losses agree to f32 rounding.
 * Measured on llvmpipe: per-step losses within 2.1e-7 relative (tolerance 1e-4), gradient
 * norms 1.5e-7 (1e-4), final weights 6e-7 absolute (1e-5), logits of the loaded CPU
 * checkpoint 5.4e-7 absolute (1e-5); against PyTorch, logits 6.6e-7 (1e-4).
 *
 * Skipped (not passed) when there is no WebGPU adapter at all; a software adapter
 * (llvmpipe/lavapipe) is used when it is the only one.
 */

import { expect, it } from "./lib/test.ts";
import { backward, noGrad } from "../core/autograd.ts";
import type { Backend } from "../core/backend.ts";
import { probeWebGPU, type WebGPUBackend } from "../core/backends/webgpu/mod.ts";
import { validate } from "../core/config.ts";
import { cpuBackend, defaultBackend, setDefaultBackend, useDevice } from "../core/device.ts";
import { loadCheckpoint, modelWeights } from "../core/io/checkpoint.ts";
import { loadStateDict } from "../core/io/state_dict.ts";
import { hostStateDict } from "../core/nn/module.ts";
import * as ops from "../core/ops/mod.ts";
import { Rng } from "../core/random.ts";
import { type Tensor, tidy } from "../core/tensor.ts";
import type { LogRecord } from "../core/train/trainer.ts";
import { stage1ConfigSchema } from "../plugins/stage1/config.ts";
import type { TokenSet } from "../plugins/stage1/data.ts";
import { SPECIALS, Stage1GPT } from "../plugins/stage1/model.ts";
import { sampleStage1 } from "../plugins/stage1/sampler.ts";
import { modelConfigFrom, trainStage1 } from "../plugins/stage1/train.ts";

const probe = await probeWebGPU();
const noGpu = !probe.available;
// The device and its pools outlive single tests (node:test's `it` has no sanitizers).

/** Run `fn` with `name` as the default device; the CPU is the default again afterwards. */
async function onDevice<T>(name: "cpu" | "webgpu", fn: (b: Backend) => Promise<T>): Promise<T> {
  const b = await useDevice(name);
  try {
    return await fn(b);
  } finally {
    setDefaultBackend(cpuBackend());
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length, "lengths differ").toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const relDiff = (a: number, b: number) =>
  Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-12);

// ---------------------------------------------------------------- device selection

it("useDevice: 'webgpu' accepts a software adapter, 'auto' never picks one", async () => {
  try {
    if (!probe.available) {
      await expect(useDevice("webgpu")).rejects.toThrow(/webgpu: no adapter/);
      expect((await useDevice("auto")).name).toBe("cpu");
      return;
    }
    const gpu = (await useDevice("webgpu")) as WebGPUBackend;
    expect(gpu.name).toBe("webgpu");
    expect(defaultBackend(), "useDevice makes the backend the default").toBe(gpu);
    expect(gpu.isFallbackAdapter).toBe(probe.isFallback);
    const auto = await useDevice("auto");
    if (probe.isFallback) {
      expect(auto, `auto must not choose ${probe.description}`).toBe(cpuBackend());
    } else {
      expect(auto, "auto takes the real adapter (one device per process)").toBe(gpu);
    }
    expect(defaultBackend()).toBe(auto);
    await expect(useDevice("tpu" as "cpu")).rejects.toThrow(/unknown device 'tpu'/);
  } finally {
    setDefaultBackend(cpuBackend());
  }
});

// ---------------------------------------------------------------- one pipeline per row count

it.skipIf(noGpu)(
  "webgpu: one tiled matmul pipeline serves every row count (uncached decoding, last batches)",
  async () => {
    const gpu = (await useDevice("webgpu")) as WebGPUBackend;
    setDefaultBackend(cpuBackend());
    const cpu = cpuBackend();
    const K = 24, N = 40;
    const host = (n: number, seed: number) => new Rng(seed).fillNormal(new Float32Array(n));
    const w = host(N * K, 1), bias = host(N, 2);
    const before = gpu.ctx.pipelineCount;
    // Row counts with and without a ragged last tile; x @ w^T + bias like a Linear layer.
    for (const M of [5, 17, 3, 70, 33]) {
      const x = host(M * K, 10 + M);
      const args = { batch: 1, M, N, K, transA: false, transB: true, strideA: 0, strideB: 0 };
      const run = async (b: Backend) => {
        const [xs, ws, bs] = [b.fromHost(x), b.fromHost(w), b.fromHost(bias)];
        const y = b.matmul(xs, ws, { ...args, bias: bs });
        const out = await b.read(y);
        for (const s of [xs, ws, bs, y]) b.release(s);
        return out;
      };
      const d = maxAbsDiff(await run(gpu), await run(cpu));
      expect(d, `M ${M}: webgpu vs cpu ${d} (1e-5)`).toBeLessThan(1e-5);
    }
    // fromHost/read compile nothing; the five products share one pipeline.
    expect(gpu.ctx.pipelineCount - before, "pipelines compiled for five row counts").toBe(1);
  },
);

// ---------------------------------------------------------------- PyTorch fixture on WebGPU

it.skipIf(noGpu)(
  "webgpu: fixture GPT logits, label-smoothed loss and gradients match PyTorch",
  () =>
    onDevice("webgpu", async (gpu) => {
      const dir = new URL("./fixtures/core/", import.meta.url).pathname;
      const meta = JSON.parse(await Deno.readTextFile(dir + "tiny_gpt.json"));
      const fx = await loadStateDict(dir + "tiny_gpt.safetensors");
      const start = gpu.liveStorages();
      const m = new Stage1GPT({
        clusters: meta.vocab - SPECIALS.count,
        classes: 0,
        layers: meta.layers,
        dim: meta.dim,
        heads: meta.heads,
        ffnDim: meta.ffn,
        length: meta.length,
        dropout: 0,
      });
      expect(m.parameters()[0].backend, "parameters are made on the default backend").toBe(gpu);
      // The fixture's position table is shorter than ours: load its rows into the top.
      const pos = "decoder.embed_positions.weight";
      m.loadStateDict(new Map([...fx].filter(([k]) => k.startsWith("decoder.") && k !== pos)), {
        strict: false,
      });
      const table = m.decoder.embed_positions.weight;
      const rows = ops.tensor(fx.get(pos)!.data, fx.get(pos)!.shape);
      gpu.copyInto({ ...table.view(), shape: rows.shape }, rows.view());
      rows.dispose();

      const tokens = ops.tensor(fx.get("tokens")!.data, fx.get("tokens")!.shape, { dtype: "i32" });
      const targets = ops.tensor(fx.get("targets")!.data, [meta.batch * meta.length], {
        dtype: "i32",
      });
      const [logits, loss] = tidy(() => {
        const z = m.forward(tokens);
        const l = ops.crossEntropy(z.reshape(-1, meta.vocab), targets, {
          labelSmoothing: meta.label_smoothing,
        });
        backward(l);
        return [z, l];
      });
      expect(maxAbsDiff(await logits.data(), fx.get("logits")!.data), "logits (1e-4)").toBeLessThan(
        1e-4,
      );
      const want = fx.get("loss")!.data[0];
      const got = await loss.item();
      expect(Math.abs(got - want), `loss ${got} vs PyTorch ${want} (1e-5)`).toBeLessThan(1e-5);
      const params = new Map(m.namedParameters());
      let checked = 0;
      for (const [k, t] of fx) {
        if (!k.startsWith("grad.")) continue;
        const g = params.get(k.slice(5))!.grad;
        expect(g, `no gradient for ${k.slice(5)}`).toBeTruthy();
        const host = await g!.data();
        const n = k.slice(5) === pos ? t.data.length : host.length;
        expect(maxAbsDiff(host.subarray(0, n), t.data), `${k} (1e-4)`).toBeLessThan(1e-4);
        checked++;
      }
      expect(checked, `only ${checked} gradients in the fixture`).toBeGreaterThanOrEqual(6);
      for (const t of [logits, loss, tokens, targets]) t.dispose();
      for (const p of m.parameters()) p.grad?.dispose();
      m.dispose();
      expect(gpu.liveStorages(), "storages left on the device").toBe(start);
    }),
);

// ---------------------------------------------------------------- 20 training steps, both backends

/** Token chains whose stride depends on the class: learnable in a few steps. */
function markovSet(count: number, seed: number, K: number, L: number, classes: number): TokenSet {
  const g = new Rng(seed);
  const tokens = new Int32Array(count * L);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const c = g.int(classes);
    labels[i] = c;
    let t = g.int(K);
    for (let j = 0; j < L; j++) {
      tokens[i * L + j] = t;
      t = (t + 1 + c + (g.uniform() < 0.1 ? g.int(3) : 0)) % K;
    }
  }
  return { tokens, count, length: L, clusters: K, labels };
}

// 2 layers, width 32, 4 heads, vocabulary 32 + 5 specials, 16 tokens per image, batch 4.
const CLUSTERS = 32, LENGTH = 16, CLASSES = 4, STEPS = 20, CLIP = 0.5;
const trainSet = markovSet(32, 1, CLUSTERS, LENGTH, CLASSES);
const validSet = markovSet(8, 2, CLUSTERS, LENGTH, CLASSES);
const trainConfig = validate(stage1ConfigSchema, {
  common: { seed: 3, log_interval: 1 },
  task: { tokens: "(memory)", target_vocab_size: CLUSTERS },
  dataset: { batch_size: 4 },
  optimization: { max_update: STEPS, lr: 3e-3, clip_norm: CLIP },
  lr_scheduler: { warmup_updates: 5 },
  checkpoint: { save_interval_updates: 10 },
  model: {
    decoder_layers: 2,
    decoder_embed_dim: 32,
    decoder_attention_heads: 4,
    decoder_ffn_embed_dim: 64,
    dropout: 0.1,
    class_conditional: true,
    num_classes: CLASSES,
  },
}, "webgpu_training_test");

interface Run {
  logs: LogRecord[];
  dir: string;
  model: Stage1GPT;
  /** Live storages before training, and after it less the model's own. */
  before: number;
  after: number;
}

function trainOn(device: "cpu" | "webgpu"): Promise<Run> {
  return onDevice(device, async (b) => {
    const dir = await Deno.makeTempDir({ prefix: `webgpu_training_${device}_` });
    const logs: LogRecord[] = [];
    const before = b.liveStorages();
    const { model, result } = await trainStage1(trainConfig, trainSet, validSet, dir, {
      onLog: (r) => logs.push(r),
    });
    expect(result.step).toBe(STEPS);
    expect(model.parameters()[0].backend, `${device}: the model lives on ${b.name}`).toBe(b);
    return { logs, dir, model, before, after: b.liveStorages() - model.stateDict().size };
  });
}

let cpuRun: Run | null = null;
let gpuRun: Run | null = null;

it.skipIf(noGpu)(
  "webgpu: 20 steps of trainStage1 give the CPU backend's losses (relative 1e-4) and weights",
  async () => {
    cpuRun = await trainOn("cpu");
    gpuRun = await trainOn("webgpu");
    const c = cpuRun.logs, g = gpuRun.logs;
    expect(c.length).toBe(STEPS);
    expect(g.length).toBe(STEPS);
    // The tokens are learnable: the run must move (a frozen model would also "match").
    expect(c[STEPS - 1].loss, `cpu loss ${c[0].loss} -> ${c[STEPS - 1].loss}`).toBeLessThan(
      c[0].loss - 0.3,
    );
    // Clipping is active, so the on-device clip path is exercised on WebGPU.
    expect(c.filter((r) => r.gradNorm > CLIP).length, "clipping should be active")
      .toBeGreaterThanOrEqual(5);
    for (let i = 0; i < STEPS; i++) {
      expect(
        relDiff(c[i].loss, g[i].loss),
        `step ${i + 1}: loss cpu ${c[i].loss} webgpu ${g[i].loss}`,
      ).toBeLessThan(1e-4);
      expect(
        relDiff(c[i].gradNorm, g[i].gradNorm),
        `step ${i + 1}: grad norm cpu ${c[i].gradNorm} webgpu ${g[i].gradNorm}`,
      ).toBeLessThan(1e-4);
      expect(c[i].lr).toBe(g[i].lr);
    }
    const vc = c[STEPS - 1].validLoss!, vg = g[STEPS - 1].validLoss!;
    expect(relDiff(vc, vg), `validation loss cpu ${vc} webgpu ${vg}`).toBeLessThan(1e-4);
    // Final weights, read back from each run's checkpoint. A key bias gets no gradient
    // (softmax ignores a constant added to every score of a row), only rounding noise,
    // which Adam's normalisation turns into lr-sized steps: those biases are left out.
    const wc = modelWeights((await loadCheckpoint(`${cpuRun.dir}/checkpoints/last`)).weights);
    const wg = modelWeights((await loadCheckpoint(`${gpuRun.dir}/checkpoints/last`)).weights);
    expect([...wg.keys()]).toEqual([...wc.keys()]);
    let worst = 0, compared = 0;
    for (const [k, t] of wc) {
      if (k.endsWith("k_proj.bias")) continue;
      worst = Math.max(worst, maxAbsDiff(t.data, wg.get(k)!.data));
      compared++;
    }
    expect(compared).toBe(wc.size - trainConfig.model.decoder_layers!);
    expect(worst, `final weights differ by ${worst} (1e-5)`).toBeLessThan(1e-5);
    // No leak: the loop (optimiser state, pending losses, graphs) freed everything.
    expect(gpuRun.after, "webgpu storages after training, model excluded").toBe(gpuRun.before);
    expect(cpuRun.after, "cpu storages after training, model excluded").toBe(cpuRun.before);
  },
);

// ---------------------------------------------------------------- checkpoint -> GPU buffers

it.skipIf(noGpu)(
  "webgpu: a CPU-trained checkpoint loads into GPU buffers and gives the CPU logits (1e-5)",
  async () => {
    expect(cpuRun, "needs the training test above").toBeTruthy();
    const ck = await loadCheckpoint(`${cpuRun!.dir}/checkpoints/last`);
    const mc = modelConfigFrom(trainConfig, trainSet);
    const batch = Int32Array.from(
      { length: 3 * LENGTH },
      (_, i) => SPECIALS.count + ((i * 7) % CLUSTERS),
    );
    for (let r = 0; r < 3; r++) batch[r * LENGTH] = cpuRun!.model.startToken(r);
    const logitsOf = async (m: Stage1GPT) => {
      m.eval();
      const z: Tensor = tidy(() =>
        noGrad(() => m.forward(ops.tensor(batch, [3, LENGTH], { dtype: "i32" })))
      );
      const host = await z.data();
      z.dispose();
      return host;
    };
    const want = await logitsOf(cpuRun!.model);
    await onDevice("webgpu", async (gpu) => {
      const start = gpu.liveStorages();
      // A different initialisation, so only the loaded weights can make it agree.
      const m = new Stage1GPT(mc, new Rng(99));
      const report = m.loadStateDict(modelWeights(ck.weights), {
        strict: true,
        what: "cpu checkpoint",
      });
      expect(report.missing.length + report.unexpected.length).toBe(0);
      // Every tensor arrives bit for bit.
      const back = await hostStateDict(m);
      for (const [k, t] of ck.weights) {
        if (k.startsWith("__")) continue;
        expect(back.get(k)!.data, `${k} after loadStateDict on webgpu`).toEqual(t.data);
      }
      const got = await logitsOf(m);
      const d = maxAbsDiff(got, want);
      expect(d, `logits differ by ${d} (1e-5)`).toBeLessThan(1e-5);
      m.dispose();
      expect(gpu.liveStorages()).toBe(start);
    });
  },
);

// ---------------------------------------------------------------- sampling

it.skipIf(noGpu)(
  "webgpu: KV-cached and uncached sampling give the CPU's tokens and leave nothing live",
  async () => {
    expect(cpuRun && gpuRun, "needs the training test above").toBeTruthy();
    const sampleOpts = {
      count: 2,
      seed: 5,
      topK: 8,
      classes: Int32Array.from([1, 3]),
      guidance: 1.5,
    };
    const onCpu = await sampleStage1(cpuRun!.model, sampleOpts);
    await onDevice("webgpu", async (gpu) => {
      const start = gpu.liveStorages();
      const cached = await sampleStage1(gpuRun!.model, sampleOpts);
      expect(gpu.liveStorages(), "storages after cached sampling (KV caches freed)").toBe(start);
      const uncached = await sampleStage1(gpuRun!.model, { ...sampleOpts, cache: false });
      expect(gpu.liveStorages(), "storages after uncached sampling").toBe(start);
      expect(Array.from(cached.tokens), "cached vs uncached").toEqual(Array.from(uncached.tokens));
      // The two models were trained apart (weights within 1e-5): the same draws still win.
      expect(Array.from(cached.tokens), "webgpu vs cpu").toEqual(Array.from(onCpu.tokens));
      expect(cached.tokens.length).toBe(2 * LENGTH);
      expect(cached.tokens.every((t) => t >= 0 && t < CLUSTERS), "only cluster ids").toBeTruthy();
      gpuRun!.model.dispose();
      expect(gpu.liveStorages(), "webgpu storages back to the start").toBe(gpuRun!.before);
    });
    cpuRun!.model.dispose();
    await Deno.remove(cpuRun!.dir, { recursive: true });
    await Deno.remove(gpuRun!.dir, { recursive: true });
  },
);
