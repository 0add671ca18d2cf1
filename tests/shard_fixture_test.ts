/**
 * The small task the sharding tests run (in process, as Kubernetes-style processes and on
 * Slurm): a feature dump, a tokenization and stage-1 sampling of the built-in 32x32 shapes
 * with the weight-free random-projection encoder, random centroids and an untrained tiny
 * stage-1 model, so nothing needs weights or training. Also helpers to run it in one
 * process and to compare folders byte for byte. (No tests here: the
 * files that import it would run them again.)
 */

import { expect } from "./lib/test.ts";
import { saveCheckpoint } from "../core/io/checkpoint.ts";
import { hostStateDict } from "../core/nn/module.ts";
import { Rng } from "../core/random.ts";
import { Registry, silentLogger } from "../core/registry.ts";
import { loadTask, runTask, type TaskPlan } from "../core/tasks.ts";
import { writeNpyMatrix } from "../plugins/kmeans/npy_matrix.ts";
import builtins from "../plugins/mod.ts";
import { Stage1GPT } from "../plugins/stage1/model.ts";

export const STEPS = ["features", "tokens", "semantic"] as const;
export const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Writes centroids, a stage-1 model and task.yaml under `root`; returns the task file. */
export async function writeFixture(root: string): Promise<string> {
  const dim = 16;
  const centroids = new Float32Array(16 * dim);
  const gen = new Rng(7);
  for (let i = 0; i < centroids.length; i++) centroids[i] = gen.normal();
  writeNpyMatrix(`${root}/centroids.npy`, centroids, 16, dim);
  const cfg = {
    clusters: 16,
    classes: 4,
    layers: 1,
    dim: 16,
    heads: 2,
    ffnDim: 32,
    length: 16,
    dropout: 0,
  };
  const model = new Stage1GPT(cfg, new Rng(3));
  await Deno.mkdir(`${root}/stage1/checkpoints`, { recursive: true });
  await saveCheckpoint(`${root}/stage1/checkpoints/last`, await hostStateDict(model), {
    model: cfg,
  });
  model.dispose();
  const dataset = `{ kind: shapes, size: 32, length: 64, seed: 0 }`;
  const encoder =
    `{ name: random-projection, options: { image_size: 32, patch: 8, dim: ${dim}, seed: 0 } }`;
  // Sizes chosen so slices are uneven and the last batches partial: 64 images in batches of
  // 6 (11 batches), ~32 kept images in feature files of 3, 40 samples in batches of 4.
  const task = `name: shardtest
device: cpu
steps:
  - name: features
    type: dump-features
    params: { dataset: ${dataset}, encoder: ${encoder}, fraction: 0.5, images_per_shard: 3, batch_size: 2 }
  - name: tokens
    type: tokenize-dataset
    params: { dataset: ${dataset}, encoder: ${encoder}, centroids: ${root}/centroids.npy, batch_size: 6 }
  - name: semantic
    type: sample-stage1
    params: { model: ${root}/stage1, count: 40, classes: [0, 1, 2, 3], top_k: 0, seed: 5, batch_size: 4 }
`;
  await Deno.writeTextFile(`${root}/task.yaml`, task);
  return `${root}/task.yaml`;
}

export async function registry(): Promise<Registry> {
  const r = new Registry();
  for (const p of builtins) await r.use(p);
  return r;
}

export async function planFixture(task: string, outputs: string, r?: Registry): Promise<TaskPlan> {
  return await loadTask(task, { registry: r ?? await registry(), outputDir: outputs });
}

/** The whole task in one process (the reference). */
export async function runSingle(task: string, outputs: string): Promise<TaskPlan> {
  const r = await registry();
  const plan = await planFixture(task, outputs, r);
  await runTask(plan, { registry: r, log: silentLogger, signal: new AbortController().signal });
  return plan;
}

/** Regular files under `dir` (relative paths), skipping the given top-level names. */
export async function filesUnder(dir: string, skip: readonly string[] = []): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(rel ? `${dir}/${rel}` : dir)) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (!rel && skip.includes(e.name)) continue;
      if (e.isDirectory) await walk(path);
      else out.push(path);
    }
  };
  await walk("");
  return out.sort();
}

/**
 * Asserts that step folder `b` holds exactly the files of `a`, byte for byte, leaving out
 * the runner's marker and what only a sharded run has (shards/, launch/).
 */
export async function assertSameStepFiles(a: string, b: string): Promise<number> {
  const skip = [".digit-step.json", "shards", "launch"];
  const fa = await filesUnder(a, skip), fb = await filesUnder(b, skip);
  expect(fb, `${b} and ${a} hold different files`).toEqual(fa);
  expect(fa.length, `${a} is empty`).toBeGreaterThan(0);
  for (const f of fa) {
    const x = await Deno.readFile(`${a}/${f}`), y = await Deno.readFile(`${b}/${f}`);
    expect(y.length, `${f}: ${y.length} bytes vs ${x.length}`).toBe(x.length);
    expect(x.every((v, i) => v === y[i]), `${f} differs from the single-process run`).toBeTruthy();
  }
  return fa.length;
}
