/**
 * How many OpenBLAS threads a product should get (the policy in core/native/openblas.ts).
 *
 * 1. GEMM shapes of the demo (M = 129 attention rows, 2048..4128 token rows, K, N = 16..512)
 *    and of the big models (M, N, K >= 1024), each timed on one thread and on OpenBLAS's full
 *    count, with a little TypeScript work between calls as in a training step (so workers
 *    sleep and wake as they do there, rather than spinning in a tight GEMM loop).
 * 2. The stage-2 `tiny` / `small` training steps of bench/tiny_train_bench.ts in child
 *    processes under several policies, run in interleaved rounds (A B C A B C ...), median
 *    per policy: OPENBLAS_NUM_THREADS=1, all threads always (the old behaviour), and the
 *    per-call threshold at a few values.
 *
 * --thread-timeouts adds the last threshold with OPENBLAS_THREAD_TIMEOUT=n (workers spin
 * 2^n cycles after a call before they sleep; OpenBLAS's default is 28, about 0.1 s).
 *
 *   deno run -A bench/blas_threads_bench.ts [--rounds 3] [--skip-shapes] [--skip-train]
 *     [--thresholds 1e6,8e6,64e6] [--thread-timeouts 4,20]
 */

import { parseArgs } from "node:util";
import { blasDescription, openblas } from "../core/native/openblas.ts";
import { median } from "./peer.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "3" },
    thresholds: { type: "string", default: "1e6,8e6,64e6" },
    "thread-timeouts": { type: "string", default: "" },
    "skip-shapes": { type: "boolean", default: false },
    "skip-train": { type: "boolean", default: false },
  },
});
const rounds = Number(values.rounds);
const blas = openblas();
console.log(`blas_threads_bench ${new Date().toISOString().slice(0, 10)}; ${blasDescription()}`);
if (!blas) {
  console.log("no OpenBLAS: nothing to measure");
  Deno.exit(0);
}
const maxThreads = blas.threadPolicy().max;

// ---------------------------------------------------------------- 1. shapes

const gap = new Float32Array(1 << 18);
/** About what an elementwise op on a (4128, 64) activation costs between two products. */
function jsWork() {
  for (let i = 0; i < gap.length; i++) gap[i] = gap[i] * 0.5 + 1;
}

function timeShape(M: number, N: number, K: number, threads: number): number {
  const A = new Float32Array(M * K).fill(0.5), B = new Float32Array(K * N).fill(0.25);
  const C = new Float32Array(M * N);
  blas!.setThreadPolicy({ singleBelowFlops: threads === 1 ? Infinity : 0 });
  const flops = 2 * M * N * K;
  const reps = Math.max(2, Math.min(100, Math.round(2e8 / flops)));
  const call = () => blas!.sgemm(false, false, M, N, K, 1, A, K, B, N, 0, C, N);
  call();
  const times: number[] = [];
  for (let r = 0; r < 5; r++) {
    let t = 0;
    for (let i = 0; i < reps; i++) {
      jsWork();
      const t0 = performance.now();
      call();
      t += performance.now() - t0;
    }
    times.push(t / reps);
  }
  return median(times);
}

if (!values["skip-shapes"] && maxThreads > 1) {
  const shapes: [number, number, number][] = [
    [129, 129, 16],
    [129, 16, 129],
    [129, 129, 32],
    [512, 64, 64],
    [2048, 64, 64],
    [4128, 64, 64],
    [4128, 192, 64],
    [4128, 256, 64],
    [4128, 64, 256],
    [64, 64, 4128],
    [4128, 128, 128],
    [4128, 512, 128],
    [4128, 512, 512],
    [1024, 1024, 1024],
    [2048, 2048, 2048],
  ];
  console.log(`\nGEMM (M x N x K), median ms per call; 1 thread vs ${maxThreads}`);
  console.log("     M      N      K    MFLOP   1 thread  all threads  speed-up");
  const before = blas.threadPolicy();
  for (const [M, N, K] of shapes) {
    const one = timeShape(M, N, K, 1), all = timeShape(M, N, K, maxThreads);
    console.log(
      `${String(M).padStart(6)} ${String(N).padStart(6)} ${String(K).padStart(6)} ` +
        `${(2 * M * N * K / 1e6).toFixed(1).padStart(8)} ${one.toFixed(3).padStart(10)} ` +
        `${all.toFixed(3).padStart(12)} ${(one / all).toFixed(2).padStart(9)}`,
    );
  }
  blas.setThreadPolicy(before);
}

// ---------------------------------------------------------------- 2. training steps

if (!values["skip-train"]) {
  const thresholds = values.thresholds.split(",");
  const last = thresholds[thresholds.length - 1];
  const policies: { name: string; env: Record<string, string> }[] = [
    { name: "OPENBLAS_NUM_THREADS=1", env: { OPENBLAS_NUM_THREADS: "1" } },
    { name: "all threads always (old)", env: { DIGIT_BLAS_SINGLE_BELOW: "0" } },
    ...thresholds.map((t) => ({
      name: `1 thread below ${Number(t) / 1e6} MFLOP`,
      env: { DIGIT_BLAS_SINGLE_BELOW: t },
    })),
    ...values["thread-timeouts"].split(",").filter(Boolean).map((n) => ({
      name: `${Number(last) / 1e6} MFLOP, THREAD_TIMEOUT=${n}`,
      env: { DIGIT_BLAS_SINGLE_BELOW: last, OPENBLAS_THREAD_TIMEOUT: n },
    })),
  ];
  const script = new URL("tiny_train_bench.ts", import.meta.url).pathname;
  const results = policies.map(() => ({} as Record<string, number[]>));
  for (let r = 0; r < rounds; r++) {
    for (const [i, p] of policies.entries()) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", script, "--json", "--steps", "5"],
        env: p.env,
        stdout: "piped",
        stderr: "inherit",
      }).output();
      if (!out.success) throw new Error(`${p.name}: tiny_train_bench failed`);
      const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
      for (const [k, v] of Object.entries(JSON.parse(lines[lines.length - 1]))) {
        (results[i][k] ??= []).push(v as number);
      }
    }
  }
  console.log(
    `\nstage-2 training step (batch 32, 129 tokens), ms: median [min, max] over ${rounds} ` +
      `interleaved rounds, each the median of 5 steps`,
  );
  for (const [i, p] of policies.entries()) {
    const cells = Object.entries(results[i]).map(([k, v]) =>
      `${k} ${(median(v) * 1000).toFixed(1)} [${(Math.min(...v) * 1000).toFixed(1)}, ${
        (Math.max(...v) * 1000).toFixed(1)
      }]`
    );
    console.log(`  ${p.name.padEnd(30)} ${cells.join("   ")}`);
  }
}
