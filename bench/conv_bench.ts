/**
 * CPU conv2d at the MAGE VQGAN decoder's shapes (3x3, stride 1, pad 1, batch 1): forward,
 * input gradient and weight gradient, ours (core/backends/cpu/conv.ts) against PyTorch's
 * CPU convolution (F.conv2d and aten.convolution_backward) on the same thread count, in
 * the same run. Prints best-of-n milliseconds and the ratio torch_ms / ours_ms (> 1: we
 * are faster), plus our GFLOP/s.
 *
 *   deno run -A bench/conv_bench.ts [--repeats 3] [--threads 2] [--only 512x16,128x256]
 *                                   [--forward-only]
 *   deno run -A bench/conv_bench.ts --small [--repeats 5] [--threads 2] [--ts-columns]
 *
 * --small times the small-map shapes instead: the demo VQGAN training step's convs
 * (batch 32 of 8x8 maps: 3x3 pad 1 at 48->64, 64->64, 16->64 and 64->48, the 1x1 64->16),
 * plus 16x16 maps and a stride-2 3x3, each forward / dx / dw. Ours and PyTorch alternate
 * (one round of every shape on our side, then on the peer's, --repeats rounds, each
 * side's time per shape the best of a few calls), and the ratios ours / torch (below 1:
 * we are faster) print as median [min, max] over the rounds. --ts-columns adds a third
 * side to each round, ours with the SIMD column kernels off (im2col_wasm.ts's
 * useIm2colWasm(false): im2col.ts builds the columns), and prints SIMD / TS ratios.
 *
 * Our GEMM is OpenBLAS when it loads (its thread count comes from OPENBLAS_NUM_THREADS,
 * set here to --threads for the child when unset); the peer is skipped with a note when
 * /usr/bin/python3 with torch is missing.
 */

import { parseArgs } from "node:util";
import type { Conv2dArgs } from "../core/backend.ts";
import { conv2d, conv2dBackwardInput, conv2dBackwardWeight } from "../core/backends/cpu/conv.ts";
import { useIm2colWasm } from "../core/backends/cpu/im2col_wasm.ts";
import { blasDescription } from "../core/native/openblas.ts";
import { uniformAt } from "../core/random.ts";
import { bestOf, median, PeerProcess, runPeer } from "./peer.ts";

const { values } = parseArgs({
  options: {
    repeats: { type: "string", default: "3" },
    threads: { type: "string", default: "2" },
    only: { type: "string", default: "" },
    "forward-only": { type: "boolean", default: false },
    small: { type: "boolean", default: false },
    "ts-columns": { type: "boolean", default: false },
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

if (values.small) {
  await smallBench();
  Deno.exit(0);
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

// ---------------------------------------------------------------- --small

interface SmallShape {
  name: string;
  args: Conv2dArgs;
  bias: boolean;
}

function smallShape(
  batch: number,
  inC: number,
  outC: number,
  size: number,
  k: number,
  stride: number,
  bias: boolean,
): SmallShape {
  const pad = (k - 1) >> 1, out = Math.floor((size + 2 * pad - k) / stride) + 1;
  return {
    name: `${inC}->${outC} ${k}x${k}${stride > 1 ? ` s${stride}` : ""} ${size}x${size} b${batch}`,
    bias,
    args: {
      batch,
      inC,
      inH: size,
      inW: size,
      outC,
      kH: k,
      kW: k,
      strideH: stride,
      strideW: stride,
      padH: pad,
      padW: pad,
      groups: 1,
      outH: out,
      outW: out,
    },
  };
}

/** The demo VQGAN train step's convs (8x8, batch 32), then 16x16 and stride 2. */
function smallShapes(): SmallShape[] {
  return [
    smallShape(32, 64, 64, 8, 3, 1, false),
    smallShape(32, 48, 64, 8, 3, 1, false),
    smallShape(32, 16, 64, 8, 3, 1, true),
    smallShape(32, 64, 48, 8, 3, 1, true),
    smallShape(32, 64, 16, 8, 1, 1, true),
    smallShape(16, 64, 64, 16, 3, 1, false),
    smallShape(32, 128, 128, 8, 3, 1, false),
    smallShape(32, 64, 128, 16, 3, 2, false),
  ];
}

async function smallBench() {
  /** Calls per shape and direction in one round; a side's time is the best of them. */
  const SMALL_CALLS = 3;
  const SMALL = smallShapes();
  const rounds = Math.max(3, repeats);
  const keys: string[] = [];
  const runs: (() => unknown)[] = [];
  for (const { name, args: a, bias } of SMALL) {
    const x = filled(a.batch * a.inC * a.inH * a.inW, 1, 1);
    const dy = filled(a.batch * a.outC * a.outH * a.outW, 2, 1);
    const w = filled(a.outC * a.inC * a.kH * a.kW, 3, 1 / Math.sqrt(a.inC * a.kH * a.kW));
    const b = bias ? filled(a.outC, 4, 0.1) : null;
    keys.push(`${name} forward`, `${name} dx`, `${name} dw`);
    runs.push(
      () => conv2d(x, w, b, a),
      () => conv2dBackwardInput(dy, w, a),
      () => conv2dBackwardWeight(dy, x, a),
    );
  }
  const peerCode = `
import json, time, torch
import torch.nn.functional as F
torch.set_num_threads(${threads})
shapes, calls = json.loads(${JSON.stringify(JSON.stringify(SMALL))}), ${SMALL_CALLS}
runs = {}
for s in shapes:
    a, name = s["args"], s["name"]
    x = torch.randn(a["batch"], a["inC"], a["inH"], a["inW"])
    dy = torch.randn(a["batch"], a["outC"], a["outH"], a["outW"])
    w = torch.randn(a["outC"], a["inC"], a["kH"], a["kW"])
    b = torch.randn(a["outC"]) if s["bias"] else None
    st, pd = [a["strideH"], a["strideW"]], [a["padH"], a["padW"]]
    def bw(mask, x=x, dy=dy, w=w, st=st, pd=pd):
        return torch.ops.aten.convolution_backward(
            dy, x, w, None, st, pd, [1, 1], False, [0, 0], 1, mask)
    runs[name + " forward"] = lambda x=x, w=w, b=b, st=st, pd=pd: F.conv2d(x, w, b, st, pd)
    runs[name + " dx"] = lambda bw=bw: bw([True, False, False])
    runs[name + " dw"] = lambda bw=bw: bw([False, True, False])
@torch.no_grad()
def measure():
    out = {}
    for k, fn in runs.items():
        t = float("inf")
        for _ in range(calls):
            t0 = time.perf_counter(); fn(); t = min(t, time.perf_counter() - t0)
        out[k] = t
    return out
`;
  const measureOurs = () => {
    const out: Record<string, number> = {};
    keys.forEach((k, i) => {
      let t = Infinity;
      for (let c = 0; c < SMALL_CALLS; c++) {
        const t0 = performance.now();
        runs[i]();
        t = Math.min(t, (performance.now() - t0) / 1000);
      }
      out[k] = t;
    });
    return out;
  };
  console.log(
    `conv bench --small: ${rounds} interleaved rounds, best of ${SMALL_CALLS} calls per ` +
      `round; gemm: ${blasDescription()}`,
  );
  const withTs = values["ts-columns"];
  const measureTs = () => {
    useIm2colWasm(false);
    try {
      return measureOurs();
    } finally {
      useIm2colWasm(true);
    }
  };
  measureOurs(); // warm-up: JIT and scratch buffers (and OpenBLAS loads, reading its env)
  if (withTs) measureTs();
  // OPENBLAS_CORETYPE (if set) is a choice for our OpenBLAS; the peer keeps its default.
  Deno.env.delete("OPENBLAS_CORETYPE");
  const peer = await PeerProcess.start("torch", peerCode);
  if (peer) await peer.measure();
  const o: Record<string, number>[] = [], p: Record<string, number>[] = [];
  const ts: Record<string, number>[] = [];
  // A pause before each side lets the other side's idle BLAS / OpenMP threads stop
  // spinning (OpenBLAS and OpenMP busy-wait a while after their last call).
  const pause = () => new Promise((resolve) => setTimeout(resolve, 300));
  for (let r = 0; r < rounds; r++) {
    await pause();
    // With --ts-columns the two of ours swap order every round (A B, B A, ...).
    if (withTs && r % 2) ts.push(measureTs());
    o.push(measureOurs());
    if (withTs && !(r % 2)) ts.push(measureTs());
    await pause();
    if (peer) p.push(await peer.measure());
  }
  await peer?.close();
  const mm = (xs: number[], digits: number) =>
    `${median(xs).toFixed(digits)} [${Math.min(...xs).toFixed(digits)}, ${
      Math.max(...xs).toFixed(digits)
    }]`;
  const ratios: number[] = [];
  for (const k of keys) {
    const ours = o.map((d) => 1000 * d[k]);
    let line = `${k.padEnd(32)}: ours ${median(ours).toFixed(2).padStart(6)} ms`;
    if (peer) {
      const theirs = p.map((d) => 1000 * d[k]);
      const r = o.map((d, i) => d[k] / p[i][k]);
      ratios.push(median(r));
      line += `, torch ${median(theirs).toFixed(2).padStart(6)} ms, ours/torch ${mm(r, 2)}`;
    }
    if (withTs) {
      const old = ts.map((d) => 1000 * d[k]), r = o.map((d, i) => d[k] / ts[i][k]);
      line += `; TS columns ${median(old).toFixed(2).padStart(6)} ms, SIMD/TS ${mm(r, 2)}`;
      if (peer) line += `, TS/torch ${median(ts.map((d, i) => d[k] / p[i][k])).toFixed(2)}`;
    }
    console.log(line);
  }
  if (peer) {
    const geo = Math.exp(ratios.reduce((s, r) => s + Math.log(r), 0) / ratios.length);
    console.log(`geometric mean of the median ratios ours/torch: ${geo.toFixed(2)}`);
  } else console.log("  (torch peer skipped)");
}
