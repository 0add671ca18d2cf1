/**
 * fp32 square matrix product, GFLOP/s (2*n^3 / best wall time):
 *   - ours, `sgemm` (OpenBLAS through FFI when it loads),
 *   - ours, `sgemmBlocked` (pure TS + WASM SIMD, no native code),
 *   - ours, `sgemmBlockedScalar` (plain TS, sizes <= --scalar-max only: it is slow),
 *   - numpy `a @ b` measured in the same run through /usr/bin/python3 (skipped if absent),
 * and the ratio ours/numpy.
 *
 *   deno run -A bench/matmul_bench.ts [--sizes 1024,2048] [--reps 3] [--scalar-max 1024]
 */

import { parseArgs } from "node:util";
import { blasDescription, openblas } from "../core/native/openblas.ts";
import {
  blockedKernelDescription,
  sgemm,
  sgemmBlocked,
  sgemmBlockedScalar,
  type SgemmFn,
} from "../core/backends/cpu/gemm.ts";

const PYTHON = "/usr/bin/python3";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    sizes: { type: "string", default: "1024,2048" },
    reps: { type: "string", default: "3" },
    "scalar-max": { type: "string", default: "1024" },
  },
});
const sizes = values.sizes.split(",").map(Number);
const reps = Number(values.reps);
const scalarMax = Number(values["scalar-max"]);

function randomMatrix(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n * n);
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 4294967296 - 0.5;
  }
  return out;
}

/** Best-of-reps GFLOP/s after one warm-up call. */
function measure(gemm: SgemmFn, n: number): number {
  const A = randomMatrix(n, 1), B = randomMatrix(n, 2), C = new Float32Array(n * n);
  gemm(false, false, n, n, n, 1, A, 0, n, B, 0, n, 0, C, 0, n);
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    gemm(false, false, n, n, n, 1, A, 0, n, B, 0, n, 0, C, 0, n);
    best = Math.min(best, performance.now() - t0);
  }
  return (2 * n ** 3) / (best * 1e6);
}

const NUMPY_SCRIPT = `
import json, sys, time
import numpy as np
n, reps = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.random((n, n), dtype=np.float32) - 0.5
b = rng.random((n, n), dtype=np.float32) - 0.5
a @ b
best = float("inf")
for _ in range(reps):
    t0 = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - t0)
print(json.dumps({"numpy": np.__version__, "gflops": 2 * n**3 / best / 1e9}))
`;

/** numpy's GFLOP/s at size n, or why it could not be measured. */
async function measureNumpy(n: number): Promise<{ version: string; gflops: number } | string> {
  try {
    await Deno.stat(PYTHON);
  } catch {
    return `${PYTHON} not found`;
  }
  const result = await new Deno.Command(PYTHON, {
    args: ["-c", NUMPY_SCRIPT, String(n), String(reps)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!result.success) {
    return `python failed: ${new TextDecoder().decode(result.stderr).trim().split("\n").pop()}`;
  }
  const parsed = JSON.parse(new TextDecoder().decode(result.stdout));
  return { version: parsed.numpy, gflops: parsed.gflops };
}

console.log(`matmul_bench: fp32 n x n x n, best of ${reps} after a warm-up`);
console.log(`  sgemm:        ${blasDescription()}`);
console.log(`  sgemmBlocked: ${blockedKernelDescription()}`);

const fmt = (x: number | undefined) => (x === undefined ? "-" : x.toFixed(2));
const rows: string[][] = [];
let numpyNote = "";
for (const n of sizes) {
  // numpy runs first at each size (never concurrently), right beside ours in time.
  const numpy = await measureNumpy(n);
  numpyNote = typeof numpy === "string" ? `skipped (${numpy})` : `${numpy.version} (${PYTHON})`;
  const blas = openblas() ? measure(sgemm, n) : undefined;
  const blocked = measure(sgemmBlocked, n);
  const scalar = n <= scalarMax ? measure(sgemmBlockedScalar, n) : undefined;
  const np = typeof numpy === "string" ? undefined : numpy.gflops;
  const ratio = (x: number | undefined) =>
    x === undefined || np === undefined ? "-" : (x / np).toFixed(3);
  rows.push([
    String(n),
    fmt(blas),
    fmt(blocked),
    fmt(scalar),
    fmt(np),
    ratio(blas),
    ratio(blocked),
  ]);
}

const header = [
  "n",
  "ours BLAS",
  "ours TS+SIMD",
  "ours TS scalar",
  "numpy",
  "BLAS/numpy",
  "TS+SIMD/numpy",
];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join("  ");
console.log(`  numpy:        ${numpyNote}`);
console.log("\nGFLOP/s");
console.log(line(header));
for (const r of rows) console.log(line(r));
