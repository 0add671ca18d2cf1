/**
 * Step statuses in plain words (issue 20): the runner says "new", "resuming" or
 * "<reason>: re-running", never "running (not run)".
 */
import { expect, it } from "./lib/test.ts";
import { s } from "../core/config.ts";
import { memoryLogger, Registry } from "../core/registry.ts";
import { changedParams, planTask, runReason, runTask, type TaskSpec } from "../core/tasks.ts";

it("runReason: each case in plain words", () => {
  expect(runReason("not run", false, [], false)).toBe("new");
  expect(runReason("not run", false, [], true)).toBe("resuming");
  expect(runReason("changed", false, [], true)).toBe("params changed: re-running");
  expect(runReason("incomplete", false, [], true)).toBe("outputs missing: re-running");
  expect(runReason(undefined, true, ["a"], true)).toBe("forced: re-running");
  expect(runReason(undefined, false, ["a", "b"], false)).toBe(
    "inputs changed: re-running from the start (a, b re-ran)",
  );
});

it("runReason: changed params are named, with the way to start over when files were left", () => {
  expect(runReason("changed", false, [], false, ["lr 0.003 -> 0.01"], "s")).toBe(
    "params changed (lr 0.003 -> 0.01): re-running",
  );
  expect(runReason("changed", false, [], true, ["a 1 -> 2", "b.c (unset) -> 3"], "s")).toBe(
    "params changed (a 1 -> 2; b.c (unset) -> 3): re-running; a training step continues the " +
      "checkpoint it left (--force-step s starts over)",
  );
});

it("changedParams: leaf paths of what differs from the last finished run, at most three", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const before = { type: "t", params: { a: 1, o: { x: 1, y: [1, 2] }, gone: true } };
    await Deno.writeTextFile(
      `${dir}/.digit-step.json`,
      JSON.stringify({ recipe: JSON.stringify(before) }),
    );
    // deno-lint-ignore no-explicit-any
    const step = (params: unknown) => ({ dir, params }) as any;
    expect(await changedParams(step({ a: 1, o: { x: 2, y: [1, 2] }, gone: true }))).toEqual([
      "o.x 1 -> 2",
    ]);
    expect(await changedParams(step({ a: 2, o: { x: 1, y: [2] }, added: "z" }))).toEqual([
      "a 1 -> 2",
      'added (unset) -> "z"',
      "gone true -> (unset)",
      "1 more",
    ]);
    expect(await changedParams({ ...step({}), dir: `${dir}/none` })).toEqual([]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

it("runTask logs new, resuming and inputs changed", async () => {
  const dir = await Deno.makeTempDir();
  const registry = new Registry();
  let crash = true;
  await registry.use({
    name: "status-steps",
    version: "0.0.1",
    register(r) {
      r.step({
        name: "write",
        params: s.object({ text: s.string() }),
        outputs: () => ({ out: "out.txt" }),
        async run(p, ctx) {
          // The first run leaves a partial file behind and fails, as a crash would.
          await Deno.writeTextFile(`${ctx.stepDir}/partial`, "x");
          if (crash && ctx.stepName === "a") throw new Error("simulated crash");
          await Deno.writeTextFile(ctx.outputs.out, p.text);
        },
      });
    },
  });
  const spec = (text: string): TaskSpec => ({
    name: "t",
    outputs: `${dir}/out`,
    steps: [
      { name: "a", type: "write", params: { text } },
      { name: "b", type: "write", params: { text: "${steps.a.outputs.out}" } },
    ],
  });
  const signal = new AbortController().signal;
  try {
    const log = memoryLogger();
    await expect(runTask(planTask(spec("1"), registry, { file: "t" }), { registry, log, signal }))
      .rejects.toThrow();
    expect(log.lines).toEqual(["[1/2] a (write): new"]);
    crash = false;
    log.lines.length = 0;
    await runTask(planTask(spec("1"), registry, { file: "t" }), { registry, log, signal });
    expect(log.lines.includes("[1/2] a (write): resuming"), log.lines.join("\n")).toBeTruthy();
    expect(
      log.lines.includes("[2/2] b (write): inputs changed: re-running from the start (a re-ran)"),
    )
      .toBeTruthy();
    log.lines.length = 0;
    await runTask(planTask(spec("2"), registry, { file: "t" }), { registry, log, signal });
    expect(
      log.lines.includes(
        '[1/2] a (write): params changed (text "1" -> "2"): re-running; a training step ' +
          "continues the checkpoint it left (--force-step a starts over)",
      ),
      log.lines.join("\n"),
    ).toBeTruthy();
    expect(log.lines.some((l) => /: running \(/.test(l)), log.lines.join("\n")).toBeFalsy();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
