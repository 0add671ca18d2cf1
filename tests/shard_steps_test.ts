/**
 * Sharded steps in one process: choosing the shard (--shard, Slurm, Kubernetes), slicing,
 * and dump-features / tokenize-dataset / sample-stage1 run as 4 shards and merged, compared
 * byte for byte with a single-process run; the merge refuses missing, partial and stale
 * shards by name; finished shards are skipped; a shard writes only inside its own folder.
 */

import assert from "node:assert/strict";
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

Deno.test("shard fixture: the task plans, and its three steps are shardable", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-shard-fixture-" });
  try {
    const plan = await planFixture(await writeFixture(root), `${root}/out`);
    assert.deepEqual(plan.steps.map((s) => s.name), [...STEPS]);
    for (const s of plan.steps) assert.ok(s.entry.shardable, `${s.type} is not shardable`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("parseShard and resolveShard: flag, Slurm, Kubernetes, and conflicts", () => {
  assert.deepEqual(parseShard("2/4"), { index: 2, count: 4 });
  for (const bad of ["4/4", "-1/4", "1/0", "a/2", "1", "1/2/3", "1.5/4"]) {
    assert.throws(() => parseShard(bad), ShardError, bad);
  }
  assert.equal(resolveShard({ env: {} }), undefined);
  assert.deepEqual(resolveShard({ flag: "1/3", env: { SLURM_ARRAY_TASK_ID: "2" } }), {
    index: 1,
    count: 3,
  });
  assert.throws(() => resolveShard({ flag: "1/3", count: 4, env: {} }), /disagrees/);
  const slurm = {
    SLURM_ARRAY_TASK_ID: "3",
    SLURM_ARRAY_TASK_COUNT: "4",
    SLURM_ARRAY_TASK_MIN: "0",
  };
  assert.deepEqual(resolveShard({ env: slurm }), { index: 3, count: 4 });
  // Re-submitting one index (--array=2) makes Slurm say count 1: the explicit count wins.
  assert.deepEqual(
    resolveShard({
      count: 4,
      env: { SLURM_ARRAY_TASK_ID: "2", SLURM_ARRAY_TASK_COUNT: "1", SLURM_ARRAY_TASK_MIN: "2" },
    }),
    { index: 2, count: 4 },
  );
  assert.throws(
    () =>
      resolveShard({
        env: { SLURM_ARRAY_TASK_ID: "2", SLURM_ARRAY_TASK_COUNT: "1", SLURM_ARRAY_TASK_MIN: "2" },
      }),
    /pass --shards/,
  );
  assert.throws(() => resolveShard({ env: { SLURM_ARRAY_TASK_ID: "2" } }), /no shard count/);
  assert.deepEqual(resolveShard({ env: { JOB_COMPLETION_INDEX: "0", DIGIT_SHARDS: "5" } }), {
    index: 0,
    count: 5,
  });
  assert.deepEqual(resolveShard({ count: 2, env: { JOB_COMPLETION_INDEX: "1" } }), {
    index: 1,
    count: 2,
  });
  assert.throws(() => resolveShard({ env: { JOB_COMPLETION_INDEX: "1" } }), /completions count/);
  assert.throws(() => resolveShard({ count: 2, env: { JOB_COMPLETION_INDEX: "2" } }), /not below/);
});

Deno.test("shardSlice: contiguous, aligned, every item exactly once, deterministic", () => {
  for (const total of [0, 1, 7, 40, 64, 1000]) {
    for (const count of [1, 2, 3, 4, 7, 16]) {
      for (const align of [1, 4, 6]) {
        let next = 0;
        for (let index = 0; index < count; index++) {
          const s = shardSlice(total, { index, count }, align);
          assert.equal(
            s.start,
            next,
            `${total}/${count}/${align}: shard ${index} starts at ${s.start}`,
          );
          assert.ok(s.end >= s.start);
          if (s.start < total) assert.equal(s.start % align, 0, "slices start on a batch boundary");
          // As even as the alignment allows: no shard has more than one extra batch.
          assert.ok(s.end - s.start <= (Math.ceil(Math.ceil(total / align) / count)) * align);
          assert.deepEqual(shardSlice(total, { index, count }, align), s);
          next = s.end;
        }
        assert.equal(next, total);
      }
    }
  }
  assert.deepEqual(shardSlice(40, { index: 1, count: 4 }, 4), { start: 8, end: 20 });
  assert.equal(shardName({ index: 2, count: 4 }), "shard-00002-of-00004");
});

Deno.test("4 shards + merge of dump-features, tokenize-dataset and sample-stage1 == one process, byte for byte", async () => {
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
        assert.equal(await runShard(plan, name, { index, count: 4 }, opts), "ran");
        const created = (await filesUnder(`${root}/sharded`)).filter((f) => !before.has(f));
        const own = shardDir(step.dir, { index, count: 4 }).slice(`${root}/sharded/`.length) + "/";
        for (const f of created) {
          assert.ok(f.startsWith(own), `shard ${index} of ${name} wrote ${f} outside ${own}`);
        }
        assert.ok(created.includes(`${own}${SHARD_MARKER}`));
      }
      // A finished shard is skipped by its marker.
      assert.equal(await runShard(plan, name, { index: 1, count: 4 }, opts), "skipped");
      await mergeShards(plan, name, 4, opts);
      assert.equal(
        await stepStatus(step),
        "done",
        `${name}: the task runner must see the merged step as done`,
      );
      const n = await assertSameStepFiles(single.steps.find((s) => s.name === name)!.dir, step.dir);
      assert.ok(n >= 1);
    }
    // The task runner now skips all three merged steps.
    const runLog = memoryLogger();
    const summary = await runTask(plan, {
      registry: r,
      log: runLog,
      signal: new AbortController().signal,
    });
    assert.deepEqual(summary.skipped, [...STEPS]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("merge refuses missing, partial and stale shards, naming them; a dead attempt is cleared and redone", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-shard-refuse-" });
  try {
    const task = await writeFixture(root);
    const r = await registry();
    const plan = await planFixture(task, `${root}/out`, r);
    const opts = { registry: r, log: silentLogger, signal: new AbortController().signal };
    const step = plan.steps.find((s) => s.name === "semantic")!;
    await runShard(plan, "semantic", { index: 0, count: 3 }, opts);
    await runShard(plan, "semantic", { index: 2, count: 3 }, opts);
    await assert.rejects(() => mergeShards(plan, "semantic", 3, opts), (e: Error) => {
      assert.ok(e instanceof ShardError);
      assert.match(e.message, /1 of 3 shards are not done: shard-00001-of-00003 is missing/);
      return true;
    });
    // A dead attempt: the folder and a partial file, no marker.
    const dead = shardDir(step.dir, { index: 1, count: 3 });
    await Deno.mkdir(dead, { recursive: true });
    await Deno.writeTextFile(`${dead}/samples.tokens.tmp-1`, "half");
    await assert.rejects(
      () => mergeShards(plan, "semantic", 3, opts),
      /shard-00001-of-00003 is partial/,
    );
    // A file of a finished shard that lost bytes.
    const done = shardDir(step.dir, { index: 2, count: 3 });
    await Deno.writeTextFile(`${done}/samples.tokens`, "truncated");
    await assert.rejects(() => mergeShards(plan, "semantic", 3, opts), (e: Error) => {
      assert.match(e.message, /2 of 3 shards are not done/);
      assert.match(e.message, /shard-00002-of-00003 is partial \(samples.tokens has 9 bytes/);
      return true;
    });
    // Stale: the step's params changed since shard 0 finished.
    const changed = await loadTaskWithSeed(task, `${root}/out`, 6);
    await assert.rejects(
      () => mergeShards(changed, "semantic", 3, opts),
      /shard-00000-of-00003 is stale/,
    );
    // Re-running clears the dead attempt and the damaged shard; then the merge works.
    assert.equal(await runShard(plan, "semantic", { index: 1, count: 3 }, opts), "ran");
    assert.equal(await runShard(plan, "semantic", { index: 2, count: 3 }, opts), "ran");
    assert.equal((await filesUnder(dead)).includes("samples.tokens.tmp-1"), false);
    await mergeShards(plan, "semantic", 3, opts);
    const single = await runSingle(task, `${root}/single`);
    await assertSameStepFiles(single.steps.find((s) => s.name === "semantic")!.dir, step.dir);
    // Merging with a count whose shards never ran names all of them.
    await assert.rejects(
      () => mergeShards(plan, "semantic", 2, opts),
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
