import { expect, it } from "./lib/test.ts";
import { rejected } from "./lib/errors.ts";
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
          calls.push(`sum:${ctx.stepName}${ctx.fresh ? ":fresh" : ""}`);
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
    expect(e, String(e)).toBeInstanceOf(ConfigError);
    return [...(e as ConfigError).problems];
  }
  expect.unreachable("expected a ConfigError");
}

it("planTask resolves references and records dependencies", async () => {
  const { registry, dir } = await setup();
  try {
    const plan = planTask(pipeline(dir), registry, { file: "tasks/pipe.yaml" });
    expect(plan.outputDir).toBe(`${dir}/out`);
    expect(plan.device).toBe("auto");
    const [numbers, total, other] = plan.steps;
    expect(numbers.outputs).toEqual({ numbers: `${dir}/out/numbers/numbers.txt` });
    expect(numbers.params).toEqual({ count: 4, label: "n" });
    expect(total.params).toEqual({ input: `${dir}/out/numbers/numbers.txt`, scale: 2 });
    expect(total.dependsOn).toEqual(["numbers"]);
    expect(other.params).toEqual({ count: 2, label: `${dir}/out/x and \${literal}` });
    expect(other.dependsOn).toEqual([]);
    const fallback = planTask({ ...pipeline(dir), outputs: undefined }, registry, {
      file: "t",
      device: "cpu",
    });
    expect(fallback.outputDir).toBe("outputs/pipe");
    expect(fallback.steps[0].dir).toBe("outputs/pipe/numbers");
    expect(fallback.device).toBe("cpu");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

it("planTask reports every problem before anything runs", async () => {
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
    expect(problems(() => planTask(task, registry, { file: "tasks/broken.yaml" }))).toEqual([
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

it("loadTask reads YAML, loads plugins beside it, applies --set, checks the file's own keys", async () => {
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
    expect(plan.device).toBe("cpu");
    expect(plan.steps[0].params).toEqual({ x: 21 });
    await runTask(plan, { registry, log: memoryLogger(), signal: new AbortController().signal });
    expect(await Deno.readTextFile(`${dir}/run/twice/y.txt`)).toBe("42");

    await Deno.writeTextFile(`${dir}/bad.yaml`, "name: has space\ndevice: gpu\nstep: []\n");
    let lines: string[] = [];
    try {
      await loadTask(`${dir}/bad.yaml`, { registry: new Registry() });
    } catch (e) {
      lines = [...(e as ConfigError).problems];
    }
    expect(lines).toEqual([
      `${dir}/bad.yaml: name: expected a name (letters, digits, '.', '-', '_'), got 'has space'`,
      `${dir}/bad.yaml: device: expected one of 'cpu', 'webgpu', 'auto', got 'gpu' (did you mean 'cpu'?)`,
      `${dir}/bad.yaml: steps: missing required key (expected a list of at least 1 item (each a mapping))`,
      `${dir}/bad.yaml: step: unknown key (did you mean 'steps'?; allowed: name, description, plugins, device, outputs, steps)`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

it("runTask skips finished steps, re-runs changed ones and their dependants", async () => {
  const { calls, registry, dir } = await setup();
  const signal = new AbortController().signal;
  try {
    const log = memoryLogger();
    const first = await runTask(planTask(pipeline(dir), registry, { file: "t" }), {
      registry,
      log,
      signal,
    });
    expect(first).toEqual({ ran: ["numbers", "total", "other"], skipped: [] });
    expect(await Deno.readTextFile(`${dir}/out/total/total.txt`)).toBe("20\n"); // (1+2+3+4)*2
    expect(log.lines.includes("numbers: writing 4/4")).toBeTruthy();
    expect(log.lines.includes("[1/3] numbers (write-numbers): new")).toBeTruthy();

    calls.length = 0;
    const again = await runTask(planTask(pipeline(dir), registry, { file: "t" }), {
      registry,
      log,
      signal,
    });
    expect(again).toEqual({ ran: [], skipped: ["numbers", "total", "other"] });
    expect(calls).toEqual([]);

    // New params for the first step: it re-runs, and so does the step that reads its output.
    // That step starts fresh: a training step must not continue a checkpoint fitted to the
    // old inputs.
    const changed = planTask(pipeline(dir, 5), registry, { file: "t" });
    expect(await stepStatus(changed.steps[0])).toBe("changed");
    expect(await runTask(changed, { registry, log, signal })).toEqual({
      ran: ["numbers", "total"],
      skipped: ["other"],
    });
    expect(calls).toEqual(["write-numbers:numbers", "sum:total:fresh"]);
    expect(await Deno.readTextFile(`${dir}/out/total/total.txt`)).toBe("30\n");

    // Forcing by name, and forcing everything.
    const plan5 = planTask(pipeline(dir, 5), registry, { file: "t" });
    expect((await runTask(plan5, { registry, log, signal, force: ["other"] })).ran).toEqual([
      "other",
    ]);
    expect((await runTask(plan5, { registry, log, signal, force: true })).ran).toEqual([
      "numbers",
      "total",
      "other",
    ]);
    const forcedInFile = pipeline(dir, 5);
    forcedInFile.steps[0].force = true;
    expect(
      (await runTask(planTask(forcedInFile, registry, { file: "t" }), { registry, log, signal }))
        .ran,
    ).toEqual(["numbers", "total"]);

    // A deleted output, or one the step's own check rejects, makes the step run again.
    await Deno.remove(`${dir}/out/other/numbers.txt`);
    await Deno.writeTextFile(`${dir}/out/total/total.txt`, "");
    expect(await stepStatus(plan5.steps[1])).toBe("incomplete");
    expect((await runTask(plan5, { registry, log, signal })).ran).toEqual(["total", "other"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

it("after a crash the pipeline resumes at the failed step", async () => {
  const { calls, registry, dir } = await setup(new Set(["total"]));
  const signal = new AbortController().signal;
  try {
    const plan = planTask(pipeline(dir), registry, { file: "t" });
    const crash = await rejected(runTask(plan, { registry, log: memoryLogger(), signal }));
    expect(crash).toBeInstanceOf(StepFailedError);
    expect(crash.message).toBe("step 'total' (sum) failed: simulated crash");
    expect(await stepStatus(plan.steps[1])).toBe("not run");
    calls.length = 0;
    const resumed = await runTask(plan, { registry, log: memoryLogger(), signal });
    expect(resumed).toEqual({ ran: ["total", "other"], skipped: ["numbers"] });
    expect(calls).toEqual(["sum:total", "write-numbers:other"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

it("a re-run upstream step invalidates its dependants even if the run then crashes", async () => {
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
    await expect(
      runTask(plan, { registry, log: memoryLogger(), signal, force: ["numbers", "boom"] }),
    ).rejects.toThrow(StepFailedError);
    // 'numbers' was re-made, so the old 'total' no longer counts as finished.
    expect(await stepStatus(plan.steps[0])).toBe("done");
    expect(await stepStatus(plan.steps[2])).toBe("not run");
    calls.length = 0;
    expect(await runTask(plan, { registry, log: memoryLogger(), signal })).toEqual({
      ran: ["boom", "total"],
      skipped: ["numbers"],
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

it("abort stops the running step, raises InterruptedError and marks nothing done", async () => {
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
    const during = await rejected(running);
    expect(during).toBeInstanceOf(InterruptedError);
    expect(during.message).toBe("interrupted during step 'w'");
    expect(calls).toEqual(["wait:w"]);
    expect(await stepStatus(plan.steps[0])).toBe("not run");
    const before = await rejected(
      runTask(plan, { registry, log: memoryLogger(), signal: controller.signal }),
    );
    expect(before).toBeInstanceOf(InterruptedError);
    expect(before.message).toBe("interrupted before step 'w'");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

it("a step that skips its outputs fails; config errors inside a step stay config errors", async () => {
  const { registry, dir } = await setup();
  const signal = new AbortController().signal;
  try {
    const plan = planTask(
      { name: "f", outputs: `${dir}/o`, steps: [{ name: "fg", type: "forgetful" }] },
      registry,
      { file: "t" },
    );
    const forgot = await rejected(runTask(plan, { registry, log: memoryLogger(), signal }));
    expect(forgot).toBeInstanceOf(StepFailedError);
    expect(forgot.message).toBe(
      `step 'fg' (forgetful) finished without writing: model (${dir}/o/fg/model.bin)`,
    );
    expect(await stepStatus(plan.steps[0])).toBe("not run");
    const needs = planTask(
      { name: "n", outputs: `${dir}/o`, steps: [{ name: "nd", type: "needs-decoder" }] },
      registry,
      { file: "t" },
    );
    const noDecoder = await rejected(runTask(needs, { registry, log: memoryLogger(), signal }));
    expect(noDecoder).toBeInstanceOf(ConfigError);
    expect(noDecoder.message.startsWith("step 'nd': no decoder named 'vqgan'"), noDecoder.message)
      .toBe(true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
