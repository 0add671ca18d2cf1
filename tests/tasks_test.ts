import assert from "node:assert/strict";
import { ConfigError, parseOverrides, s } from "../core/config.ts";
import { memoryLogger, type Plugin, Registry } from "../core/registry.ts";
import {
  InterruptedError,
  loadTask,
  planTask,
  runTask,
  StepFailedError,
  stepStatus,
  type TaskSpec,
} from "../core/tasks.ts";

/** Fake step types: write a list of numbers, sum a file of numbers, wait for Ctrl-C. */
function fakePlugin(calls: string[], failures: Set<string> = new Set()): Plugin {
  return {
    name: "fake-steps",
    version: "0.0.1",
    register(r) {
      r.step({
        name: "write-numbers",
        description: "writes 1..count, one per line",
        params: s.object({ count: s.int({ min: 1 }), label: s.string().default("n") }),
        outputs: () => ({ numbers: "numbers.txt" }),
        async run(p, ctx) {
          calls.push(`write-numbers:${ctx.stepName}`);
          if (failures.delete(ctx.stepName)) throw new Error("simulated crash");
          const lines = Array.from({ length: p.count }, (_, i) => String(i + 1));
          for (let i = 1; i <= p.count; i++) ctx.log.progress("writing", i, p.count);
          await Deno.writeTextFile(ctx.outputs.numbers, lines.join("\n") + "\n");
        },
      });
      r.step({
        name: "sum",
        params: s.object({ input: s.string(), scale: s.number().default(1) }),
        outputs: () => ({ total: "total.txt" }),
        // A finished total must be a number: an empty file means a crash mid-write.
        complete: async (_p, out) => (await Deno.readTextFile(out.total)).trim() !== "",
        async run(p, ctx) {
          calls.push(`sum:${ctx.stepName}`);
          if (failures.has(ctx.stepName)) {
            failures.delete(ctx.stepName);
            throw new Error("simulated crash");
          }
          const numbers = (await Deno.readTextFile(p.input)).trim().split("\n").map(Number);
          const total = numbers.reduce((a, b) => a + b, 0) * p.scale;
          await Deno.writeTextFile(ctx.outputs.total, `${total}\n`);
        },
      });
      r.step({
        name: "wait-for-abort",
        outputs: () => ({ out: "never.txt" }),
        run: (_p, ctx) =>
          new Promise<void>((_resolve, reject) => {
            calls.push(`wait:${ctx.stepName}`);
            ctx.signal.addEventListener("abort", () => reject(new Error("stopped")), {
              once: true,
            });
          }),
      });
      r.step({
        name: "forgetful",
        outputs: () => ({ model: "model.bin" }),
        run() {},
      });
      r.step({
        name: "needs-decoder",
        run(_p, ctx) {
          ctx.registry.get("decoders", "vqgan");
        },
      });
    },
  };
}

async function setup(failures?: Set<string>) {
  const calls: string[] = [];
  const registry = new Registry();
  await registry.use(fakePlugin(calls, failures));
  const dir = await Deno.makeTempDir();
  return { calls, registry, dir };
}

function pipeline(dir: string, count = 4): TaskSpec {
  return {
    name: "pipe",
    outputs: `${dir}/out`,
    steps: [
      { name: "numbers", type: "write-numbers", params: { count } },
      {
        name: "total",
        type: "sum",
        params: { input: "${steps.numbers.outputs.numbers}", scale: 2 },
      },
      {
        name: "other",
        type: "write-numbers",
        params: { count: 2, label: "${outputs}/x and $${literal}" },
      },
    ],
  };
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
  assert.fail("expected a ConfigError");
}

Deno.test("planTask resolves references and records dependencies", async () => {
  const { registry, dir } = await setup();
  try {
    const plan = planTask(pipeline(dir), registry, { file: "tasks/pipe.yaml" });
    assert.equal(plan.outputDir, `${dir}/out`);
    assert.equal(plan.device, "auto");
    const [numbers, total, other] = plan.steps;
    assert.deepEqual(numbers.outputs, { numbers: `${dir}/out/numbers/numbers.txt` });
    assert.deepEqual(numbers.params, { count: 4, label: "n" });
    assert.deepEqual(total.params, { input: `${dir}/out/numbers/numbers.txt`, scale: 2 });
    assert.deepEqual(total.dependsOn, ["numbers"]);
    assert.deepEqual(other.params, { count: 2, label: `${dir}/out/x and \${literal}` });
    assert.deepEqual(other.dependsOn, []);
    const fallback = planTask({ ...pipeline(dir), outputs: undefined }, registry, {
      file: "t",
      device: "cpu",
    });
    assert.equal(fallback.outputDir, "outputs/pipe");
    assert.equal(fallback.steps[0].dir, "outputs/pipe/numbers");
    assert.equal(fallback.device, "cpu");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("planTask reports every problem before anything runs", async () => {
  const { registry, dir } = await setup();
  try {
    const task: TaskSpec = {
      name: "broken",
      steps: [
        { name: "a", type: "write-numbers", params: { count: "four", colour: 1 } },
        { name: "b", type: "sum", params: { input: "${steps.c.outputs.numbers}" } },
        { name: "c", type: "write-numbres", params: {} },
        { name: "d", type: "sum", params: { input: "${steps.a.outputs.numbrs}" } },
        { name: "e", type: "sum", params: { input: "${steps.zz.outputs.x}", scale: "${outputs}" } },
        { name: "f", type: "sum", params: { input: "${step.a}" } },
        { name: "a", type: "sum", params: {} },
        { name: "g", type: "sum", params: { input: "${steps.c.outputs.anything}" } },
      ],
    };
    assert.deepEqual(problems(() => planTask(task, registry, { file: "tasks/broken.yaml" })), [
      "tasks/broken.yaml: steps[6].name: duplicate step name 'a' (also steps[0])",
      "tasks/broken.yaml: steps[0].params.count: expected an integer >= 1, got 'four'",
      "tasks/broken.yaml: steps[0].params.colour: unknown key (allowed: count, label)",
      "tasks/broken.yaml: steps[1].params.input: ${steps.c.outputs.numbers} refers to step 'c', which does not run before this one",
      "tasks/broken.yaml: steps[2].type: unknown step type: no step type named 'write-numbres' (did you mean 'write-numbers'?) " +
      "(registered: forgetful, needs-decoder, sum, wait-for-abort, write-numbers; plugins loaded: fake-steps@0.0.1)",
      "tasks/broken.yaml: steps[3].params.input: ${steps.a.outputs.numbrs}: step 'a' (type write-numbers) has no output " +
      "'numbrs' (did you mean 'numbers'?) (outputs: numbers)",
      "tasks/broken.yaml: steps[4].params.input: ${steps.zz.outputs.x} names no step 'zz' (earlier steps: a, b, c, d)",
      "tasks/broken.yaml: steps[4].params.scale: expected a number, got 'outputs/broken'",
      "tasks/broken.yaml: steps[5].params.input: cannot read reference ${step.a}: expected ${outputs}, " +
      "${steps.<step>.outputs.<name>} or ${steps.<step>.dir}",
      // steps[7] references 'c', whose type is unknown: that is reported once, at steps[2].type.
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadTask reads YAML, loads plugins beside it, applies --set, checks the file's own keys", async () => {
  const { dir } = await setup();
  try {
    const pluginUrl = new URL("../core/config.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/double.ts`,
      `import { s } from ${JSON.stringify(pluginUrl)};
export default { name: "fake-double", version: "1", register(r) {
  r.step({ name: "double", params: s.object({ x: s.number() }), outputs: () => ({ y: "y.txt" }),
    run: (p, ctx) => Deno.writeTextFile(ctx.outputs.y, String(2 * p.x)) });
} };
`,
    );
    await Deno.writeTextFile(
      `${dir}/task.yaml`,
      `name: doubler
plugins: [./double.ts]
device: cpu
outputs: ${dir}/run
steps:
  - { name: twice, type: double, params: { x: 2 } }
`,
    );
    const registry = new Registry();
    const plan = await loadTask(`${dir}/task.yaml`, {
      registry,
      overrides: parseOverrides(["steps.twice.params.x=21"]),
    });
    assert.equal(plan.device, "cpu");
    assert.deepEqual(plan.steps[0].params, { x: 21 });
    await runTask(plan, { registry, log: memoryLogger(), signal: new AbortController().signal });
    assert.equal(await Deno.readTextFile(`${dir}/run/twice/y.txt`), "42");

    await Deno.writeTextFile(`${dir}/bad.yaml`, "name: has space\ndevice: gpu\nstep: []\n");
    let lines: string[] = [];
    try {
      await loadTask(`${dir}/bad.yaml`, { registry: new Registry() });
    } catch (e) {
      lines = [...(e as ConfigError).problems];
    }
    assert.deepEqual(lines, [
      `${dir}/bad.yaml: name: expected a name (letters, digits, '.', '-', '_'), got 'has space'`,
      `${dir}/bad.yaml: device: expected one of 'cpu', 'webgpu', 'auto', got 'gpu' (did you mean 'cpu'?)`,
      `${dir}/bad.yaml: steps: missing required key (expected a list of at least 1 item (each a mapping))`,
      `${dir}/bad.yaml: step: unknown key (did you mean 'steps'?; allowed: name, description, plugins, device, outputs, steps)`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runTask skips finished steps, re-runs changed ones and their dependants", async () => {
  const { calls, registry, dir } = await setup();
  const signal = new AbortController().signal;
  try {
    const log = memoryLogger();
    const first = await runTask(planTask(pipeline(dir), registry, { file: "t" }), {
      registry,
      log,
      signal,
    });
    assert.deepEqual(first, { ran: ["numbers", "total", "other"], skipped: [] });
    assert.equal(await Deno.readTextFile(`${dir}/out/total/total.txt`), "20\n"); // (1+2+3+4)*2
    assert.ok(log.lines.includes("numbers: writing 4/4"));
    assert.ok(log.lines.includes("[1/3] numbers (write-numbers): new"));

    calls.length = 0;
    const again = await runTask(planTask(pipeline(dir), registry, { file: "t" }), {
      registry,
      log,
      signal,
    });
    assert.deepEqual(again, { ran: [], skipped: ["numbers", "total", "other"] });
    assert.deepEqual(calls, []);

    // New params for the first step: it re-runs, and so does the step that reads its output.
    const changed = planTask(pipeline(dir, 5), registry, { file: "t" });
    assert.equal(await stepStatus(changed.steps[0]), "changed");
    assert.deepEqual(await runTask(changed, { registry, log, signal }), {
      ran: ["numbers", "total"],
      skipped: ["other"],
    });
    assert.equal(await Deno.readTextFile(`${dir}/out/total/total.txt`), "30\n");

    // Forcing by name, and forcing everything.
    const plan5 = planTask(pipeline(dir, 5), registry, { file: "t" });
    assert.deepEqual((await runTask(plan5, { registry, log, signal, force: ["other"] })).ran, [
      "other",
    ]);
    assert.deepEqual((await runTask(plan5, { registry, log, signal, force: true })).ran, [
      "numbers",
      "total",
      "other",
    ]);
    const forcedInFile = pipeline(dir, 5);
    forcedInFile.steps[0].force = true;
    assert.deepEqual(
      (await runTask(planTask(forcedInFile, registry, { file: "t" }), { registry, log, signal }))
        .ran,
      ["numbers", "total"],
    );

    // A deleted output, or one the step's own check rejects, makes the step run again.
    await Deno.remove(`${dir}/out/other/numbers.txt`);
    await Deno.writeTextFile(`${dir}/out/total/total.txt`, "");
    assert.equal(await stepStatus(plan5.steps[1]), "incomplete");
    assert.deepEqual((await runTask(plan5, { registry, log, signal })).ran, ["total", "other"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("after a crash the pipeline resumes at the failed step", async () => {
  const { calls, registry, dir } = await setup(new Set(["total"]));
  const signal = new AbortController().signal;
  try {
    const plan = planTask(pipeline(dir), registry, { file: "t" });
    await assert.rejects(
      runTask(plan, { registry, log: memoryLogger(), signal }),
      (e) =>
        e instanceof StepFailedError && e.message === "step 'total' (sum) failed: simulated crash",
    );
    assert.equal(await stepStatus(plan.steps[1]), "not run");
    calls.length = 0;
    const resumed = await runTask(plan, { registry, log: memoryLogger(), signal });
    assert.deepEqual(resumed, { ran: ["total", "other"], skipped: ["numbers"] });
    assert.deepEqual(calls, ["sum:total", "write-numbers:other"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a re-run upstream step invalidates its dependants even if the run then crashes", async () => {
  const failures = new Set<string>();
  const { calls, registry, dir } = await setup(failures);
  const signal = new AbortController().signal;
  try {
    // 'boom' sits between 'numbers' and the step that reads it, and does not read it itself.
    const task: TaskSpec = {
      name: "crash",
      outputs: `${dir}/out`,
      steps: [
        { name: "numbers", type: "write-numbers", params: { count: 3 } },
        { name: "boom", type: "write-numbers", params: { count: 1 } },
        { name: "total", type: "sum", params: { input: "${steps.numbers.outputs.numbers}" } },
      ],
    };
    const plan = planTask(task, registry, { file: "t" });
    await runTask(plan, { registry, log: memoryLogger(), signal });
    failures.add("boom");
    await assert.rejects(
      runTask(plan, { registry, log: memoryLogger(), signal, force: ["numbers", "boom"] }),
      StepFailedError,
    );
    // 'numbers' was re-made, so the old 'total' no longer counts as finished.
    assert.equal(await stepStatus(plan.steps[0]), "done");
    assert.equal(await stepStatus(plan.steps[2]), "not run");
    calls.length = 0;
    assert.deepEqual(await runTask(plan, { registry, log: memoryLogger(), signal }), {
      ran: ["boom", "total"],
      skipped: ["numbers"],
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("abort stops the running step, raises InterruptedError and marks nothing done", async () => {
  const { calls, registry, dir } = await setup();
  try {
    const task: TaskSpec = {
      name: "wait",
      outputs: `${dir}/out`,
      steps: [{ name: "w", type: "wait-for-abort" }, {
        name: "after",
        type: "write-numbers",
        params: { count: 1 },
      }],
    };
    const plan = planTask(task, registry, { file: "t" });
    const controller = new AbortController();
    const running = runTask(plan, { registry, log: memoryLogger(), signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await assert.rejects(
      running,
      (e) => e instanceof InterruptedError && e.message === "interrupted during step 'w'",
    );
    assert.deepEqual(calls, ["wait:w"]);
    assert.equal(await stepStatus(plan.steps[0]), "not run");
    await assert.rejects(
      runTask(plan, { registry, log: memoryLogger(), signal: controller.signal }),
      (e) => e instanceof InterruptedError && e.message === "interrupted before step 'w'",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a step that skips its outputs fails; config errors inside a step stay config errors", async () => {
  const { registry, dir } = await setup();
  const signal = new AbortController().signal;
  try {
    const plan = planTask(
      { name: "f", outputs: `${dir}/o`, steps: [{ name: "fg", type: "forgetful" }] },
      registry,
      { file: "t" },
    );
    await assert.rejects(
      runTask(plan, { registry, log: memoryLogger(), signal }),
      (e) =>
        e instanceof StepFailedError &&
        e.message ===
          `step 'fg' (forgetful) finished without writing: model (${dir}/o/fg/model.bin)`,
    );
    assert.equal(await stepStatus(plan.steps[0]), "not run");
    const needs = planTask(
      { name: "n", outputs: `${dir}/o`, steps: [{ name: "nd", type: "needs-decoder" }] },
      registry,
      { file: "t" },
    );
    await assert.rejects(
      runTask(needs, { registry, log: memoryLogger(), signal }),
      (e) =>
        e instanceof ConfigError && e.message.startsWith("step 'nd': no decoder named 'vqgan'"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
