/**
 * CPU conv2d at the MAGE VQGAN decoder's shapes (3x3, stride 1, pad 1, batch 1): forward,
 * input gradient and weight gradient, ours (core/backends/cpu/conv.ts) against PyTorch's
 * CPU convolution (F.conv2d and aten.convolution_backward) on the same thread count, in
 * the same run. Prints best-of-n milliseconds and the ratio torch_ms / ours_ms (> 1: we
 * are faster), plus our GFLOP/s.
 *
 *   deno run -A bench/conv_bench.ts [--repeats 3] [--threads 2] [--only 512x16,128x256]
 *                                   [--forward-only]
 *
 * Our GEMM is OpenBLAS when it loads (its thread count comes from OPENBLAS_NUM_THREADS,
 * set here to --threads for the child when unset); the peer is skipped with a note when
 * /usr/bin/python3 with torch is missing.
 */

import { parseArgs } from "node:util";
import type { Conv2dArgs } from "../core/backend.ts";
import { conv2d, conv2dBackwardInput, conv2dBackwardWeight } from "../core/backends/cpu/conv.ts";
import { blasDescription } from "../core/native/openblas.ts";
import { uniformAt } from "../core/random.ts";
import { bestOf, runPeer } from "./peer.ts";

const { values } = parseArgs({
  options: {
    repeats: { type: "string", default: "3" },
    threads: { type: "string", default: "2" },
    only: { type: "string", default: "" },
    "forward-only": { type: "boolean", default: false },
    child: { type: "boolean", default: false },
  },
});
const repeats = Number(values.repeats), threads = Number(values.threads);

// OpenBLAS reads its thread count when it loads: run the measurement in a child process
// with OPENBLAS_NUM_THREADS set, unless the caller set it already.
if (!values.child && Deno.env.get("OPENBLAS_NUM_THREADS") === undefined) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, ...Deno.args, "--child"],
    env: { OPENBLAS_NUM_THREADS: String(threads) },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(out.code);
}

/** [channels, size]: the decoder's 3x3 convs from the 16x16 latent up to 256x256. */
const SHAPES: [number, number][] = [[512, 16], [512, 32], [256, 64], [128, 128], [128, 256]];
const only = values.only ? values.only.split(",") : null;
const shapes = SHAPES.filter(([c, s]) => !only || only.includes(`${c}x${s}`));
const directions = values["forward-only"] ? ["forward"] : ["forward", "dx", "dw"];

function args(channels: number, size: number): Conv2dArgs {
  return {
    batch: 1,
    inC: channels,
    inH: size,
    inW: size,
    outC: channels,
    kH: 3,
    kW: 3,
    strideH: 1,
    strideW: 1,
    padH: 1,
    padW: 1,
    groups: 1,
    outH: size,
    outW: size,
  };
}

function filled(n: number, seed: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (uniformAt(seed, i) * 2 - 1) * scale;
  return a;
}

async function ours(): Promise<Record<string, number>> {
  const result: Record<string, number> = {};
  for (const [c, s] of shapes) {
    const a = args(c, s);
    const x = filled(c * s * s, 1, 1), dy = filled(c * s * s, 2, 1);
    const w = filled(c * c * 9, 3, 1 / Math.sqrt(9 * c)), bias = filled(c, 4, 0.1);
    const run: Record<string, () => unknown> = {
      forward: () => conv2d(x, w, bias, a),
      dx: () => conv2dBackwardInput(dy, w, a),
      dw: () => conv2dBackwardWeight(dy, x, a),
    };
    for (const d of directions) {
      run[d](); // warm-up: JIT and scratch buffers
      result[`${c}x${s} ${d}`] = 1000 * await bestOf(repeats, run[d]);
    }
  }
  return result;
}

const PEER = `
import json, time, torch
import torch.nn.functional as F
torch.set_num_threads(${threads})
shapes, directions, repeats = ${JSON.stringify(shapes)}, ${JSON.stringify(directions)}, ${repeats}
out = {}
def best(fn):
    fn()
    t = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); t = min(t, time.perf_counter() - t0)
    return 1000 * t
def backward(g, x, w, mask):
    return torch.ops.aten.convolution_backward(
        g, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)
with torch.no_grad():
    for c, s in shapes:
        x, dy = torch.randn(1, c, s, s), torch.randn(1, c, s, s)
        w, b = torch.randn(c, c, 3, 3) / (9 * c) ** 0.5, torch.randn(c) * 0.1
        run = {
            "forward": lambda: F.conv2d(x, w, b, padding=1),
            "dx": lambda: backward(dy, x, w, [True, False, False]),
            "dw": lambda: backward(dy, x, w, [False, True, False]),
        }
        for d in directions:
            out[f"{c}x{s} {d}"] = best(run[d])
print(json.dumps(out))
`;

console.log(
  `conv bench: 3x3 stride 1 pad 1, batch 1, best of ${repeats}; gemm: ${blasDescription()}`,
);
const mine = await ours();
const peer = await runPeer("torch", PEER);
if (!peer) console.log("  (torch peer skipped)");
for (const [c, s] of shapes) {
  for (const d of directions) {
    const key = `${c}x${s} ${d}`;
    const gflops = (2 * c * c * 9 * s * s) / (mine[key] * 1e6);
    const theirs = peer?.[key];
    console.log(
      `${c}->${c} at ${s}x${s} ${d.padEnd(7)}: ours ${mine[key].toFixed(1).padStart(7)} ms ` +
        `(${gflops.toFixed(1)} GFLOP/s), torch ` +
        (theirs === undefined
          ? "skipped"
          : `${theirs.toFixed(1).padStart(7)} ms, ratio torch/ours ${
            (theirs / mine[key]).toFixed(2)
          }`),
    );
  }
}
