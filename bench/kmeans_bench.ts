/**
 * K-Means, 20000 x 384 float32 rows, K = 256, 20 Lloyd iterations, random init (faiss's):
 *   - ours: fitKMeans (distances through the runtime's matmul, statistics on the host),
 *   - faiss.Kmeans(d, K, niter=20) on the same rows, measured in the same run through
 *     /usr/bin/python3 (skipped if absent),
 * wall time, the ratio faiss/ours (> 1: we are faster), and both final objectives.
 *
 *   deno run -A bench/kmeans_bench.ts [--rows 20000] [--dim 384] [--k 256] [--iters 20]
 */

import { parseArgs } from "node:util";
import { uniformAt } from "../core/random.ts";
import { blasDescription } from "../core/native/openblas.ts";
import { fitKMeans, memorySource, writeNpyMatrix } from "../plugins/kmeans/mod.ts";

const PYTHON = "/usr/bin/python3";
const { values } = parseArgs({
  args: Deno.args,
  options: {
    rows: { type: "string", default: "20000" },
    dim: { type: "string", default: "384" },
    k: { type: "string", default: "256" },
    iters: { type: "string", default: "20" },
  },
});
const N = Number(values.rows),
  D = Number(values.dim),
  K = Number(values.k),
  iters = Number(values.iters);

/** 1000 blobs with uniform noise, from the counter hash (no Math.random). */
function data(): Float32Array {
  const x = new Float32Array(N * D);
  for (let i = 0; i < N; i++) {
    const b = i % 1000;
    for (let j = 0; j < D; j++) {
      x[i * D + j] = 4 * (uniformAt(1, b * D + j) - 0.5) + (uniformAt(2, i * D + j) - 0.5);
    }
  }
  return x;
}

const x = data();
const t0 = performance.now();
const fit = await fitKMeans(memorySource(x, D), {
  k: K,
  iterations: iters,
  init: "random",
  seed: 1234,
});
const ours = (performance.now() - t0) / 1000;
console.log(`K-Means ${N} x ${D}, K=${K}, ${iters} iterations (BLAS: ${blasDescription()})`);
console.log(
  `  ours : ${ours.toFixed(2)} s (${(1000 * ours / iters).toFixed(0)} ms/iteration), objective ${
    fit.stats.at(-1)!.inertia.toPrecision(7)
  }`,
);

const FAISS_SCRIPT = `
import json, sys, time
import numpy as np, faiss
x = np.load(sys.argv[1]); k, iters = int(sys.argv[2]), int(sys.argv[3])
km = faiss.Kmeans(x.shape[1], k, niter=iters, seed=1234)
t0 = time.perf_counter(); km.train(x); t = time.perf_counter() - t0
print(json.dumps({"faiss": faiss.__version__, "threads": faiss.omp_get_max_threads(), "seconds": t, "obj": float(km.obj[-1])}))
`;

async function faissPeer(): Promise<
  { faiss: string; threads: number; seconds: number; obj: number } | string
> {
  try {
    await Deno.stat(PYTHON);
  } catch {
    return `${PYTHON} not found`;
  }
  const path = await Deno.makeTempFile({ suffix: ".npy" });
  try {
    writeNpyMatrix(path, x, N, D);
    const r = await new Deno.Command(PYTHON, {
      args: ["-c", FAISS_SCRIPT, path, String(K), String(iters)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!r.success) {
      return `python failed: ${new TextDecoder().decode(r.stderr).trim().split("\n").pop()}`;
    }
    return JSON.parse(new TextDecoder().decode(r.stdout));
  } finally {
    await Deno.remove(path);
  }
}

const peer = await faissPeer();
if (typeof peer === "string") {
  console.log(`  faiss: skipped (${peer})`);
} else {
  console.log(
    `  faiss ${peer.faiss} (${peer.threads} threads): ${peer.seconds.toFixed(2)} s, objective ${
      peer.obj.toPrecision(7)
    }`,
  );
  console.log(
    `  ratio faiss/ours (time): ${(peer.seconds / ours).toFixed(2)}x; objective ours/faiss ${
      (fit.stats.at(-1)!.inertia / peer.obj).toFixed(4)
    }`,
  );
}
