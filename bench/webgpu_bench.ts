/**
 * WebGPU benchmarks, each against a peer measured in the same run:
 *  - fp32 square matrix product, GFLOP/s (2n³ per product), tiled kernel and the naive
 *    reference kernel, against numpy `a @ b` on the CPU;
 *  - one GPT training step (forward, label-smoothed cross entropy, backward, AdamW) of
 *    the stage-1 model code, unchanged, with width 512, 8 layers, 8 heads, vocab 8192,
 *    sequence 256, batch 4, against PyTorch (CUDA when it sees a GPU, else CPU with 2
 *    threads) and against our own CPU backend.
 *
 * Deno's mapAsync has a ~10 ms floor, so each measurement enqueues many products (or
 * steps) and reads back once at the end; the floor (measured and printed) is then a
 * small share. On a software adapter (llvmpipe/lavapipe), which runs on the CPU, matmul
 * sizes drop to 256 and 512 and the GPT to a tiny one (printed as such).
 *
 *   deno run -A bench/webgpu_bench.ts [--sizes 1024,4096] [--seconds 2] [--only matmul|gpt]
 *                                     [--full]   (the full GPT even on a software adapter)
 */

import { parseArgs } from "node:util";
import { backward } from "../core/autograd.ts";
import type { Backend, Storage } from "../core/backend.ts";
import {
  createWebGPUBackend,
  type MatmulKernel,
  probeWebGPU,
  type WebGPUBackend,
} from "../core/backends/webgpu/mod.ts";
import { cpuBackend, setDefaultBackend } from "../core/device.ts";
import * as ops from "../core/ops/mod.ts";
import { AdamW } from "../core/optim/mod.ts";
import { Rng } from "../core/random.ts";
import { type Tensor, tidy } from "../core/tensor.ts";
import { Stage1GPT } from "../plugins/stage1/model.ts";
import { ratioLine, runPeer } from "./peer.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    sizes: { type: "string" },
    seconds: { type: "string", default: "2" },
    only: { type: "string" },
    full: { type: "boolean", default: false },
  },
});
const only = values.only;
if (only !== undefined && only !== "matmul" && only !== "gpt") {
  console.error(`webgpu bench: --only must be 'matmul' or 'gpt', got '${only}'`);
  Deno.exit(2);
}

const probe = await probeWebGPU();
if (!probe.available) {
  console.log(`webgpu bench: skipped (${probe.description})`);
  Deno.exit(0);
}
const g = await createWebGPUBackend({ allowFallbackAdapter: true });
console.log(`adapter: ${probe.description}; isFallbackAdapter=${probe.isFallback}`);
const sizes = values.sizes
  ? values.sizes.split(",").map(Number)
  : probe.isFallback
  ? [256, 512]
  : [1024, 4096];
if (probe.isFallback && !values.sizes && only !== "gpt") {
  console.log(
    "software adapter: using sizes 256 and 512 instead of 1024 and 4096 (it runs on the CPU)",
  );
}
const targetSeconds = Number(values.seconds);

function randomMatrix(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n * n);
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 4294967296 - 0.5;
  }
  return out;
}

/** Seconds for `iters` products enqueued back to back, ended by one small readback. */
async function timeBatch(
  backend: WebGPUBackend,
  kind: MatmulKernel,
  a: Storage,
  b: Storage,
  n: number,
  iters: number,
) {
  const args = { batch: 1, M: n, N: n, K: n, transA: false, transB: false, strideA: 0, strideB: 0 };
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) backend.release(backend.matmulWith(kind, a, b, args));
  const done = backend.fill("f32", 1, 1);
  await backend.read(done); // resolves after everything queued before it has run
  backend.release(done);
  return (performance.now() - t0) / 1000;
}

// The readback floor: a 4-byte read of work already done.
const tiny = g.fill("f32", 1, 0);
await g.read(tiny);
let floor = Infinity;
for (let i = 0; i < 5; i++) {
  const t = performance.now();
  await g.read(tiny);
  floor = Math.min(floor, performance.now() - t);
}
g.release(tiny);
console.log(`readback floor (4-byte read, best of 5): ${floor.toFixed(1)} ms`);

for (const n of only === "gpt" ? [] : sizes) {
  const a = g.fromHost(randomMatrix(n, 1));
  const b = g.fromHost(randomMatrix(n, 2));
  const flop = 2 * n ** 3;
  const results: Record<string, number> = {};
  for (const kind of ["tiled", "naive"] as MatmulKernel[]) {
    await timeBatch(g, kind, a, b, n, 1); // compile and warm up
    const one = await timeBatch(g, kind, a, b, n, 2) / 2;
    const iters = Math.max(2, Math.min(1000, Math.round(targetSeconds / one)));
    const seconds = await timeBatch(g, kind, a, b, n, iters);
    results[kind] = (iters * flop) / seconds / 1e9;
    console.log(
      `matmul ${n}x${n}x${n} ${kind.padEnd(5)}: ${results[kind].toFixed(2)} GFLOP/s ` +
        `(${iters} products, ${(seconds * 1000).toFixed(0)} ms incl. one readback)`,
    );
  }
  const peer = await runPeer(
    "numpy",
    `
import json, time
import numpy as np
n = ${n}
rng = np.random.default_rng(0)
a = rng.random((n, n), dtype=np.float32) - 0.5
b = rng.random((n, n), dtype=np.float32) - 0.5
a @ b
best = float("inf")
for _ in range(5):
    t0 = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t0)
print(json.dumps({"gflops": 2 * n**3 / best / 1e9}))
`,
  );
  ratioLine(`matmul ${n}^3 tiled vs numpy (cpu)`, results.tiled, peer?.gflops, "GFLOP/s", true);
  console.log(`matmul ${n}^3 tiled / naive: ${(results.tiled / results.naive).toFixed(2)}x`);
  g.release(a);
  g.release(b);
}

if (only !== "matmul") await gptTrainStep(g, probe.isFallback && !values.full);
g.destroy();

// ---------------------------------------------------------------- GPT training step

interface GptShape {
  D: number;
  L: number;
  H: number;
  V: number;
  T: number;
  B: number;
}

/** Seconds per training step on `backend`: `steps` steps enqueued, one readback at the end. */
async function timeSteps(backend: Backend, s: GptShape, steps: number): Promise<number> {
  setDefaultBackend(backend); // the model creates its parameters on the default backend
  const model = new Stage1GPT({
    clusters: s.V - 5,
    classes: 0,
    layers: s.L,
    dim: s.D,
    heads: s.H,
    ffnDim: 4 * s.D,
    length: s.T,
    dropout: 0.1,
  }, new Rng(0));
  const opt = new AdamW(model.parameters(), { lr: 1e-4, betas: [0.9, 0.98] });
  const data = new Rng(1);
  const ids = Int32Array.from({ length: s.B * s.T }, () => 5 + data.int(s.V - 5));
  const targets = Int32Array.from({ length: s.B * s.T }, () => 5 + data.int(s.V - 5));
  const dropout = new Rng(2);
  const step = (): Tensor => {
    const loss = tidy(() => {
      const tokens = ops.tensor(ids, [s.B, s.T], { dtype: "i32" });
      const logits = model.decoder.forward(tokens, { causal: true, gen: dropout });
      const l = ops.crossEntropy(
        ops.reshape(logits, [s.B * s.T, s.V]),
        ops.tensor(targets, [s.B * s.T], { dtype: "i32" }),
        { labelSmoothing: 0.1 },
      );
      backward(l);
      return l;
    });
    opt.update();
    opt.zeroGrad();
    return loss;
  };
  const run = async (n: number) => {
    const t0 = performance.now();
    let last: Tensor | null = null;
    for (let i = 0; i < n; i++) {
      last?.dispose();
      last = step();
    }
    const loss = await last!.item(); // waits for every step queued before it
    last!.dispose();
    if (!Number.isFinite(loss)) throw new Error(`gpt bench: loss is ${loss} on ${backend.name}`);
    return (performance.now() - t0) / 1000 / n;
  };
  try {
    await run(1); // compile pipelines, fill the buffer pool
    return await run(steps);
  } finally {
    model.dispose();
    opt.dispose();
    setDefaultBackend(cpuBackend());
  }
}

async function gptTrainStep(gpu: WebGPUBackend, software: boolean): Promise<void> {
  const full: GptShape = { D: 512, L: 8, H: 8, V: 8192, T: 256, B: 4 };
  const s: GptShape = software ? { D: 64, L: 2, H: 4, V: 512, T: 64, B: 2 } : full;
  const label = `GPT train step (width ${s.D}, ${s.L} layers, ${s.H} heads, vocab ${s.V}, ` +
    `seq ${s.T}, batch ${s.B}; ratio < 1: webgpu faster)`;
  if (software) {
    console.log(
      `software adapter (${probe.description}): a tiny GPT instead of width 512, 8 layers, ` +
        "vocab 8192, seq 256, batch 4; it runs on the CPU, so this checks the path, not GPU speed",
    );
  } else {
    console.log(`GPT training on ${probe.description}${probe.isFallback ? " (--full)" : ""}`);
  }
  const steps = 3;
  const ours = await timeSteps(gpu, s, steps);
  const onCpu = await timeSteps(cpuBackend(), s, software ? steps : 1);
  const peer = await runPeer("torch", torchGptStep(s, steps));
  const tokens = s.B * s.T;
  console.log(
    `${label} on webgpu: ${(ours * 1000).toFixed(1)} ms/step, ${
      (tokens / ours).toFixed(0)
    } tokens/s`,
  );
  ratioLine(`${label} webgpu vs our cpu backend`, ours, onCpu, "s/step", false);
  if (peer) {
    ratioLine(
      `${label} webgpu vs PyTorch (${peer.cuda ? "cuda" : "cpu, 2 threads"})`,
      ours,
      peer.seconds,
      "s/step",
      false,
    );
  }
}

/** The same network in PyTorch: post-LN decoder layers, GELU, dropout 0.1, AdamW. */
function torchGptStep(s: GptShape, steps: number): string {
  return `
import json, math, time, torch
torch.set_num_threads(2); torch.manual_seed(0)
dev = "cuda" if torch.cuda.is_available() else "cpu"
D, L, H, V, T, B = ${s.D}, ${s.L}, ${s.H}, ${s.V}, ${s.T}, ${s.B}
class Layer(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.q, s.k, s.v, s.o = (torch.nn.Linear(D, D) for _ in range(4))
        s.ln1, s.ln2 = torch.nn.LayerNorm(D), torch.nn.LayerNorm(D)
        s.fc1, s.fc2 = torch.nn.Linear(D, 4 * D), torch.nn.Linear(4 * D, D)
        s.drop = torch.nn.Dropout(0.1)
    def forward(s, x, mask):
        heads = lambda t: t.view(B, T, H, D // H).transpose(1, 2)
        att = torch.softmax(heads(s.q(x)) @ heads(s.k(x)).transpose(-1, -2) / math.sqrt(D // H) + mask, -1)
        a = (att @ heads(s.v(x))).transpose(1, 2).reshape(B, T, D)
        x = s.ln1(x + s.drop(s.o(a)))
        return s.ln2(x + s.drop(s.fc2(torch.nn.functional.gelu(s.fc1(x)))))
class GPT(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.emb, s.pos = torch.nn.Embedding(V, D), torch.nn.Embedding(T + 2, D)
        s.layers = torch.nn.ModuleList([Layer() for _ in range(L)])
        s.out, s.drop = torch.nn.Linear(D, V, bias=False), torch.nn.Dropout(0.1)
    def forward(s, t):
        mask = torch.triu(torch.full((T, T), float("-inf"), device=dev), 1)
        x = s.drop(s.emb(t) * math.sqrt(D) + s.pos(torch.arange(T, device=dev) + 2))
        for layer in s.layers: x = layer(x, mask)
        return s.out(x)
m = GPT().to(dev)
opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.98))
ids = torch.randint(5, V, (B, T), device=dev); tgt = torch.randint(5, V, (B * T,), device=dev)
def step():
    loss = torch.nn.functional.cross_entropy(m(ids).view(-1, V), tgt, label_smoothing=0.1)
    opt.zero_grad(); loss.backward(); opt.step()
    return loss
step().item()
t0 = time.perf_counter()
for _ in range(${steps}): loss = step()
loss.item()
print(json.dumps({"seconds": (time.perf_counter() - t0) / ${steps}, "cuda": dev == "cuda"}))
`;
}
