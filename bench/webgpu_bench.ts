/**
 * WebGPU fp32 square matrix product, GFLOP/s (2n³ per product), tiled kernel and the
 * naive reference kernel, against numpy `a @ b` on the CPU measured in the same run.
 *
 * Deno's mapAsync has a ~10 ms floor, so each measurement enqueues many products and
 * reads back once at the end; the floor (measured and printed) is then a small share.
 * On a software adapter (llvmpipe/lavapipe) sizes drop to 256 and 512 automatically.
 *
 *   deno run -A bench/webgpu_bench.ts [--sizes 1024,4096] [--seconds 2]
 */

import { parseArgs } from "node:util";
import type { Storage } from "../core/backend.ts";
import {
  createWebGPUBackend,
  type MatmulKernel,
  probeWebGPU,
  type WebGPUBackend,
} from "../core/backends/webgpu/mod.ts";
import { ratioLine, runPeer } from "./peer.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    sizes: { type: "string" },
    seconds: { type: "string", default: "2" },
  },
});

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
if (probe.isFallback && !values.sizes) {
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

for (const n of sizes) {
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
g.destroy();
