/**
 * FID statistics + Frechet distance at Inception size: two sets of 5000 x 2048 float32
 * features, timed here and with numpy/scipy (pytorch-fid's `np.cov` + `scipy.linalg.sqrtm`)
 * in the same run on the same bytes. Prints both times, the ratio ours / scipy, and the
 * two FIDs.
 *
 *   deno run -A bench/fid_bench.ts [--rows 5000] [--dim 2048] [--repeats 2]
 *
 * The peer is skipped (with a note) when /usr/bin/python3 with numpy and scipy is missing.
 */

import { parseArgs } from "node:util";
import { blasDescription } from "../core/native/openblas.ts";
import { nativeLapack } from "../core/linalg/native.ts";
import { frechetDistance } from "../plugins/metrics/frechet.ts";
import { FeatureStats } from "../plugins/metrics/stats.ts";
import { syntheticFeatures } from "../tests/fixtures/metrics/synthetic.ts";

const PYTHON = "/usr/bin/python3";

const { values } = parseArgs({
  options: {
    rows: { type: "string", default: "5000" },
    dim: { type: "string", default: "2048" },
    repeats: { type: "string", default: "2" },
  },
});
const rows = Number(values.rows), dim = Number(values.dim), repeats = Number(values.repeats);

const recipe = (seed: number, noiseScale: number) => ({
  seed,
  rows,
  dim,
  rank: 16,
  meanScale: 0.5,
  noiseScale,
  lowRankScale: 0.5,
  decay: false,
  relu: false,
});
const setA = syntheticFeatures(recipe(1, 1.0));
const setB = syntheticFeatures(recipe(2, 1.2));

function ours(): { seconds: number; fid: number } {
  const t0 = performance.now();
  const a = new FeatureStats(dim), b = new FeatureStats(dim);
  for (let r = 0; r < rows; r += 64) {
    a.update(setA.subarray(r * dim, Math.min(rows, r + 64) * dim));
    b.update(setB.subarray(r * dim, Math.min(rows, r + 64) * dim));
  }
  const sa = a.finalize(), sb = b.finalize();
  const fid = frechetDistance(sa.mu, sa.sigma, sb.mu, sb.sigma);
  return { seconds: (performance.now() - t0) / 1000, fid };
}

const PEER_SCRIPT = `
import sys, time, numpy as np, scipy.linalg
rows, dim, repeats = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
a = np.fromfile(sys.argv[1], dtype=np.float32).reshape(rows, dim)
b = np.fromfile(sys.argv[2], dtype=np.float32).reshape(rows, dim)
best = float("inf")
for _ in range(repeats):
    t0 = time.perf_counter()
    mu1, s1 = np.mean(a.astype(np.float64), axis=0), np.cov(a, rowvar=False)
    mu2, s2 = np.mean(b.astype(np.float64), axis=0), np.cov(b, rowvar=False)
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    diff = mu1 - mu2
    fid = diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real)
    best = min(best, time.perf_counter() - t0)
print(best, float(fid))
`;

async function peer(): Promise<{ seconds: number; fid: number } | string> {
  const dir = await Deno.makeTempDir({ prefix: "fid_bench_" });
  try {
    await Deno.writeFile(`${dir}/a.f32`, new Uint8Array(setA.buffer));
    await Deno.writeFile(`${dir}/b.f32`, new Uint8Array(setB.buffer));
    const out = await new Deno.Command(PYTHON, {
      args: ["-c", PEER_SCRIPT, `${dir}/a.f32`, `${dir}/b.f32`, `${rows}`, `${dim}`, `${repeats}`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) return `python failed: ${new TextDecoder().decode(out.stderr).trim()}`;
    const [seconds, fid] = new TextDecoder().decode(out.stdout).trim().split(/\s+/).map(Number);
    return { seconds, fid };
  } catch (e) {
    return `${PYTHON} not runnable (${e instanceof Error ? e.message : e})`;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

console.log(
  `FID bench: 2 x (${rows}, ${dim}) float32 features; linalg: ${blasDescription()}` +
    (nativeLapack() ? "" : " (no LAPACK: TypeScript eigensolver, expect minutes at d=2048)"),
);
let best = { seconds: Infinity, fid: NaN };
for (let i = 0; i < repeats; i++) {
  const r = ours();
  if (r.seconds < best.seconds) best = r;
}
console.log(
  `ours  (FeatureStats + frechetDistance): ${best.seconds.toFixed(3)} s, FID ${best.fid}`,
);
const p = await peer();
if (typeof p === "string") {
  console.log(`peer skipped: ${p}`);
} else {
  console.log(`scipy (np.cov + scipy.linalg.sqrtm):    ${p.seconds.toFixed(3)} s, FID ${p.fid}`);
  console.log(
    `ratio ours / scipy: ${(best.seconds / p.seconds).toFixed(3)}x ` +
      `(relative FID difference ${
        (Math.abs(best.fid - p.fid) / Math.abs(p.fid)).toExponential(2)
      })`,
  );
}
