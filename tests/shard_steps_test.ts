/**
 * Sharded steps in one process: choosing the shard (--shard, Slurm, Kubernetes), slicing,
 * and dump-features / tokenize-dataset / sample-stage1 run as 4 shards and merged, compared
 * byte for byte with a single-process run; the merge refuses missing, partial and stale
 * shards by name; finished shards are skipped; a shard writes only inside its own folder.
 */

import { expect, it } from "./lib/test.ts";
import { rejected } from "./lib/errors.ts";
import { memoryLogger, silentLogger } from "../core/registry.ts";
import {
  mergeShards,
  parseShard,
  resolveShard,
  runShard,
  SHARD_MARKER,
  shardDir,
  ShardError,
  shardName,
  shardSlice,
} from "../core/shard.ts";
import { parseOverrides } from "../core/config.ts";
import { loadTask, runTask, stepStatus } from "../core/tasks.ts";
import {
  assertSameStepFiles,
  filesUnder,
  planFixture,
  registry,
  runSingle,
  STEPS,
  writeFixture,
} from "./shard_fixture_test.ts";

it("shard fixture: the task plans, and its three steps are shardable", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-shard-fixture-" });
  try {
    const plan = await planFixture(await writeFixture(root), `${root}/out`);
    expect(plan.steps.map((s) => s.name)).toEqual([...STEPS]);
    for (const s of plan.steps) {
      expect(s.entry.shardable, `${s.type} is not shardable`).toBeTruthy();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

it("parseShard and resolveShard: flag, Slurm, Kubernetes, and conflicts", () => {
  expect(parseShard("2/4")).toEqual({ index: 2, count: 4 });
  for (const bad of ["4/4", "-1/4", "1/0", "a/2", "1", "1/2/3", "1.5/4"]) {
    expect(() => parseShard(bad), bad).toThrow(ShardError);
  }
  expect(resolveShard({ env: {} })).toBe(undefined);
  expect(resolveShard({ flag: "1/3", env: { SLURM_ARRAY_TASK_ID: "2" } })).toEqual({
    index: 1,
    count: 3,
  });
  expect(() => resolveShard({ flag: "1/3", count: 4, env: {} })).toThrow(/disagrees/);
  const slurm = {
    SLURM_ARRAY_TASK_ID: "3",
    SLURM_ARRAY_TASK_COUNT: "4",
    SLURM_ARRAY_TASK_MIN: "0",
  };
  expect(resolveShard({ env: slurm })).toEqual({ index: 3, count: 4 });
  // Re-submitting one index (--array=2) makes Slurm say count 1: the explicit count wins.
  expect(resolveShard({
    count: 4,
    env: { SLURM_ARRAY_TASK_ID: "2", SLURM_ARRAY_TASK_COUNT: "1", SLURM_ARRAY_TASK_MIN: "2" },
  })).toEqual({ index: 2, count: 4 });
  expect(() =>
    resolveShard({
      env: { SLURM_ARRAY_TASK_ID: "2", SLURM_ARRAY_TASK_COUNT: "1", SLURM_ARRAY_TASK_MIN: "2" },
    })
  ).toThrow(/pass --shards/);
  expect(() => resolveShard({ env: { SLURM_ARRAY_TASK_ID: "2" } })).toThrow(/no shard count/);
  expect(resolveShard({ env: { JOB_COMPLETION_INDEX: "0", DIGIT_SHARDS: "5" } })).toEqual({
    index: 0,
    count: 5,
  });
  expect(resolveShard({ count: 2, env: { JOB_COMPLETION_INDEX: "1" } })).toEqual({
    index: 1,
    count: 2,
  });
  expect(() => resolveShard({ env: { JOB_COMPLETION_INDEX: "1" } })).toThrow(/completions count/);
  expect(() => resolveShard({ count: 2, env: { JOB_COMPLETION_INDEX: "2" } })).toThrow(/not below/);
});

it("shardSlice: contiguous, aligned, every item exactly once, deterministic", () => {
  for (const total of [0, 1, 7, 40, 64, 1000]) {
    for (const count of [1, 2, 3, 4, 7, 16]) {
      for (const align of [1, 4, 6]) {
        let next = 0;
        for (let index = 0; index < count; index++) {
          const s = shardSlice(total, { index, count }, align);
          expect(s.start, `${total}/${count}/${align}: shard ${index} starts at ${s.start}`).toBe(
            next,
          );
          expect(s.end).toBeGreaterThanOrEqual(s.start);
          if (s.start < total) expect(s.start % align, "slices start on a batch boundary").toBe(0);
          // As even as the alignment allows: no shard has more than one extra batch.
          expect(s.end - s.start).toBeLessThanOrEqual(
            (Math.ceil(Math.ceil(total / align) / count)) * align,
          );
          expect(shardSlice(total, { index, count }, align)).toEqual(s);
          next = s.end;
        }
        expect(next).toBe(total);
      }
    }
  }
  expect(shardSlice(40, { index: 1, count: 4 }, 4)).toEqual({ start: 8, end: 20 });
  expect(shardName({ index: 2, count: 4 })).toBe("shard-00002-of-00004");
});

it("4 shards + merge of dump-features, tokenize-dataset and sample-stage1 == one process, byte for byte", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-shard-steps-" });
  try {
    const task = await writeFixture(root);
    const single = await runSingle(task, `${root}/single`);
    const r = await registry();
    const plan = await planFixture(task, `${root}/sharded`, r);
    const log = memoryLogger();
    const opts = { registry: r, log, signal: new AbortController().signal };
    for (const name of STEPS) {
      const step = plan.steps.find((s) => s.name === name)!;
      // Shards in a scrambled order: nothing may depend on which runs first.
      for (const index of [2, 0, 3, 1]) {
        const before = new Set(await filesUnder(`${root}/sharded`).catch(() => []));
        expect(await runShard(plan, name, { index, count: 4 }, opts)).toBe("ran");
        const created = (await filesUnder(`${root}/sharded`)).filter((f) => !before.has(f));
        const own = shardDir(step.dir, { index, count: 4 }).slice(`${root}/sharded/`.length) + "/";
        for (const f of created) {
          expect(f.startsWith(own), `shard ${index} of ${name} wrote ${f} outside ${own}`)
            .toBeTruthy();
        }
        expect(created.includes(`${own}${SHARD_MARKER}`)).toBeTruthy();
      }
      // A finished shard is skipped by its marker.
      expect(await runShard(plan, name, { index: 1, count: 4 }, opts)).toBe("skipped");
      await mergeShards(plan, name, 4, opts);
      expect(await stepStatus(step), `${name}: the task runner must see the merged step as done`)
        .toBe("done");
      const n = await assertSameStepFiles(single.steps.find((s) => s.name === name)!.dir, step.dir);
      expect(n).toBeGreaterThanOrEqual(1);
    }
    // The task runner now skips all three merged steps.
    const runLog = memoryLogger();
    const summary = await runTask(plan, {
      registry: r,
      log: runLog,
      signal: new AbortController().signal,
    });
    expect(summary.skipped).toEqual([...STEPS]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

it("merge refuses missing, partial and stale shards, naming them; a dead attempt is cleared and redone", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-shard-refuse-" });
  try {
    const task = await writeFixture(root);
    const r = await registry();
    const plan = await planFixture(task, `${root}/out`, r);
    const opts = { registry: r, log: silentLogger, signal: new AbortController().signal };
    const step = plan.steps.find((s) => s.name === "semantic")!;
    await runShard(plan, "semantic", { index: 0, count: 3 }, opts);
    await runShard(plan, "semantic", { index: 2, count: 3 }, opts);
    const missing = await rejected(() => mergeShards(plan, "semantic", 3, opts));
    expect(missing).toBeInstanceOf(ShardError);
    expect(missing.message).toMatch(/1 of 3 shards are not done: shard-00001-of-00003 is missing/);
    // A dead attempt: the folder and a partial file, no marker.
    const dead = shardDir(step.dir, { index: 1, count: 3 });
    await Deno.mkdir(dead, { recursive: true });
    await Deno.writeTextFile(`${dead}/samples.tokens.tmp-1`, "half");
    await expect(() => mergeShards(plan, "semantic", 3, opts)).rejects.toThrow(
      /shard-00001-of-00003 is partial/,
    );
    // A file of a finished shard that lost bytes.
    const done = shardDir(step.dir, { index: 2, count: 3 });
    await Deno.writeTextFile(`${done}/samples.tokens`, "truncated");
    const partial = await rejected(() => mergeShards(plan, "semantic", 3, opts));
    expect(partial.message).toMatch(/2 of 3 shards are not done/);
    expect(partial.message).toMatch(/shard-00002-of-00003 is partial \(samples.tokens has 9 bytes/);
    // Stale: the step's params changed since shard 0 finished.
    const changed = await loadTaskWithSeed(task, `${root}/out`, 6);
    await expect(() => mergeShards(changed, "semantic", 3, opts)).rejects.toThrow(
      /shard-00000-of-00003 is stale/,
    );
    // Re-running clears the dead attempt and the damaged shard; then the merge works.
    expect(await runShard(plan, "semantic", { index: 1, count: 3 }, opts)).toBe("ran");
    expect(await runShard(plan, "semantic", { index: 2, count: 3 }, opts)).toBe("ran");
    expect((await filesUnder(dead)).includes("samples.tokens.tmp-1")).toBe(false);
    await mergeShards(plan, "semantic", 3, opts);
    const single = await runSingle(task, `${root}/single`);
    await assertSameStepFiles(single.steps.find((s) => s.name === "semantic")!.dir, step.dir);
    // Merging with a count whose shards never ran names all of them.
    await expect(() => mergeShards(plan, "semantic", 2, opts)).rejects.toThrow(
      /2 of 2 shards are not done/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

async function loadTaskWithSeed(task: string, outputs: string, seed: number) {
  return await loadTask(task, {
    registry: await registry(),
    outputDir: outputs,
    overrides: parseOverrides([`steps.semantic.params.seed=${seed}`]),
  });
}
