/**
 * The sharded Lloyd iteration (kmeans-lloyd-step): two iterations (lloyd-1, lloyd-2) run as
 * 3 shards and as 1 shard, each merged, are byte for byte what one process writes; they
 * agree with two iterations of lloyd.ts from the same centroids (stated tolerance); the
 * inertia goes down; the merge refuses a missing shard and shards that saw other centroids.
 * 3000 rows of 16-d blobs in three feature files of uneven length, k = 8, blocks of 256 rows
 * (so blocks straddle the files and the shards' slices are whole blocks of uneven files).
 */

import { expect, it } from "./lib/test.ts";
import { rejected } from "./lib/errors.ts";
import { uniformAt } from "../core/random.ts";
import { silentLogger } from "../core/registry.ts";
import { mergeShards, runShard, ShardError } from "../core/shard.ts";
import { runTask, type TaskPlan } from "../core/tasks.ts";
import { readCentroids } from "../plugins/kmeans/centroids.ts";
import { fitKMeans } from "../plugins/kmeans/lloyd.ts";
import type { LloydReport } from "../plugins/kmeans/lloyd_blocks.ts";
import { writeNpyMatrix } from "../plugins/kmeans/npy_matrix.ts";
import { memorySource } from "../plugins/kmeans/source.ts";
import { assertSameStepFiles, planFixture, registry } from "./shard_fixture_test.ts";

const ROWS = 3000, DIM = 16, K = 8, BLOBS = 8;
const FILE_ROWS = [1000, 1237, 763];
/** Initial centroids: data rows from blobs 3, 1, 0, 1, 3, 2, 1, 1, so Lloyd has work to do. */
const INIT_ROWS = [3, 17, 40, 41, 99, 250, 513, 777];

/**
 * Row i lies in blob i % BLOBS: in the first D/2 coordinates a centre in [-2, 2) plus noise
 * of spread about 1; the other D/2 are noise around 0 scaled by 2^-22 .. 2^1. Sums of float32
 * values of one size are exact in float64, so a wrong order of additions would not show;
 * with these the inertia in lloyd.json changes when the shards are folded in reverse order
 * or each shard adds up its own blocks first (both tried).
 */
function blobs(): Float32Array {
  const x = new Float32Array(ROWS * DIM);
  for (let i = 0; i < ROWS; i++) {
    for (let j = 0; j < DIM; j++) {
      const k = i * DIM + j;
      const noise = uniformAt(21, k) + uniformAt(22, k) + uniformAt(23, k) - 1.5;
      x[k] = j < DIM / 2
        ? 4 * (uniformAt(11, (i % BLOBS) * DIM + j) - 0.5) + noise
        : noise * 2 ** (Math.floor(24 * uniformAt(24, k)) - 22);
    }
  }
  return x;
}

/** The rows as a finished dump (three .npy files and features.json), the init and the task. */
async function writeTask(root: string, data: Float32Array): Promise<string> {
  await Deno.mkdir(`${root}/features`, { recursive: true });
  const shards = [];
  let at = 0;
  for (const [i, rows] of FILE_ROWS.entries()) {
    const file = `features_0000${i}.npy`;
    writeNpyMatrix(`${root}/features/${file}`, data.slice(at * DIM, (at + rows) * DIM), rows, DIM);
    shards.push({ file, images: rows, rows });
    at += rows;
  }
  const manifest = {
    format: "digit-features",
    version: 1,
    encoder: "blobs",
    dim: DIM,
    tokensPerImage: 1,
    dataset: "blobs",
    datasetLength: ROWS,
    fraction: 1,
    seed: 0,
    imagesPerShard: 1000,
    images: Array.from({ length: ROWS }, (_, i) => i),
    shards,
    complete: true,
  };
  await Deno.writeTextFile(`${root}/features/features.json`, JSON.stringify(manifest));
  const init = new Float32Array(K * DIM);
  INIT_ROWS.forEach((r, c) => init.set(data.subarray(r * DIM, (r + 1) * DIM), c * DIM));
  writeNpyMatrix(`${root}/km_8.npy`, init, K, DIM);
  const params = `features: ${root}/features/features.json, block_rows: 256`;
  await Deno.writeTextFile(
    `${root}/task.yaml`,
    `name: lloydtest
device: cpu
steps:
  - { name: lloyd-1, type: kmeans-lloyd-step, params: { ${params}, centroids: ${root}/km_8.npy } }
  - name: lloyd-2
    type: kmeans-lloyd-step
    params: { ${params}, centroids: "\${steps.lloyd-1.outputs.centroids}" }
`,
  );
  return `${root}/task.yaml`;
}

const STEPS = ["lloyd-1", "lloyd-2"];

async function runSharded(plan: TaskPlan, count: number, order: number[]): Promise<void> {
  const r = await registry();
  const opts = { registry: r, log: silentLogger, signal: new AbortController().signal };
  for (const name of STEPS) {
    for (const index of order) await runShard(plan, name, { index, count }, opts);
    await mergeShards(plan, name, count, opts);
  }
}

function stepDir(plan: TaskPlan, name: string): string {
  return plan.steps.find((s) => s.name === name)!.dir;
}

async function report(plan: TaskPlan, name: string): Promise<LloydReport> {
  return JSON.parse(await Deno.readTextFile(`${stepDir(plan, name)}/lloyd.json`));
}

it("kmeans-lloyd-step: 3 shards and 1 shard == one process, byte for byte; == lloyd.ts; inertia falls", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-lloyd-shard-" });
  try {
    const data = blobs();
    const task = await writeTask(root, data);
    const r = await registry();
    const single = await planFixture(task, `${root}/single`, r);
    await runTask(single, { registry: r, log: silentLogger, signal: new AbortController().signal });
    for (const [count, order] of [[3, [2, 0, 1]], [1, [0]]] as const) {
      const plan = await planFixture(task, `${root}/n${count}`, r);
      await runSharded(plan, count, [...order]);
      for (const name of STEPS) {
        // km_8.npy (the input's name) and lloyd.json.
        expect(await assertSameStepFiles(stepDir(single, name), stepDir(plan, name))).toBe(2);
      }
    }

    // The same two iterations through lloyd.ts, from the same centroids.
    const snapshots: Float32Array[] = [];
    const fit = await fitKMeans(memorySource(data, DIM), {
      k: K,
      iterations: 2,
      init: readCentroids(`${root}/km_8.npy`).data,
      maxPointsPerCentroid: 0,
      onIteration: (_s, c) => snapshots.push(c.slice()),
    });
    for (const [i, name] of STEPS.entries()) {
      const rep = await report(single, name);
      expect(rep.rows).toBe(ROWS);
      expect(rep.empty, "every cluster has rows, so lloyd.ts splits none either").toEqual([]);
      expect(fit.stats[i].splits).toBe(0);
      // Blocks of 256 rows added in order against lloyd.ts's one running total: float64
      // rounding apart (the statistics are sums of ~400 float32 rows per centroid).
      const want = fit.stats[i].inertia;
      expect(Math.abs(rep.inertia - want) / want, `${name}: inertia ${rep.inertia} vs ${want}`)
        .toBeLessThan(1e-12);
      const got = readCentroids(`${stepDir(single, name)}/km_8.npy`);
      expect([got.k, got.dim]).toEqual([K, DIM]);
      for (let j = 0; j < got.data.length; j++) {
        // One float32 rounding of nearly equal float64 quotients: at most one unit in the
        // last place (2^-23 relative); on these rows they come out equal.
        const tol = 2 ** -23 * Math.abs(snapshots[i][j]);
        expect(Math.abs(got.data[j] - snapshots[i][j]), `${name}: centroid value ${j}`)
          .toBeLessThanOrEqual(tol);
      }
    }
    const [first, second] = [await report(single, "lloyd-1"), await report(single, "lloyd-2")];
    expect(second.inertia, "the second iteration's inertia is below the first's")
      .toBeLessThan(first.inertia);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

it("kmeans-lloyd-step merge refuses a missing shard, and shards that saw other centroids", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-lloyd-refuse-" });
  try {
    const task = await writeTask(root, blobs());
    const r = await registry();
    const plan = await planFixture(task, `${root}/out`, r);
    const opts = { registry: r, log: silentLogger, signal: new AbortController().signal };
    await runShard(plan, "lloyd-1", { index: 0, count: 3 }, opts);
    await runShard(plan, "lloyd-1", { index: 2, count: 3 }, opts);
    const missing = await rejected(() => mergeShards(plan, "lloyd-1", 3, opts));
    expect(missing).toBeInstanceOf(ShardError);
    expect(missing.message).toMatch(/1 of 3 shards are not done: shard-00001-of-00003 is missing/);
    await runShard(plan, "lloyd-1", { index: 1, count: 3 }, opts);
    // The input centroids change after every shard finished (an earlier step re-ran):
    // the markers still match the params, the recorded centroid hashes do not.
    const init = readCentroids(`${root}/km_8.npy`);
    init.data[0] += 1;
    writeNpyMatrix(`${root}/km_8.npy`, init.data, K, DIM);
    const stale = await rejected(() => mergeShards(plan, "lloyd-1", 3, opts));
    expect(stale).toBeInstanceOf(ShardError);
    expect(stale.message).toMatch(
      /shard-00000-of-00003, shard-00001-of-00003, shard-00002-of-00003 assigned rows to other centroids/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
