/**
 * Step statuses in plain words (issue 20): the runner says "new", "resuming" or
 * "<reason>: re-running", never "running (not run)".
 */
import { expect, it } from "./lib/test.ts";
import { s } from "../core/config.ts";
import { memoryLogger, Registry } from "../core/registry.ts";
import { planTask, runReason, runTask, type TaskSpec } from "../core/tasks.ts";

it("runReason: each case in plain words", () => {
  expect(runReason("not run", false, [], false)).toBe("new");
  expect(runReason("not run", false, [], true)).toBe("resuming");
  expect(runReason("changed", false, [], true)).toBe("params changed: re-running");
  expect(runReason("incomplete", false, [], true)).toBe("outputs missing: re-running");
  expect(runReason(undefined, true, ["a"], true)).toBe("forced: re-running");
  expect(runReason(undefined, false, ["a", "b"], false)).toBe(
    "inputs changed: re-running (a, b re-ran)",
  );
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
    expect(log.lines.includes("[2/2] b (write): inputs changed: re-running (a re-ran)"))
      .toBeTruthy();
    log.lines.length = 0;
    await runTask(planTask(spec("2"), registry, { file: "t" }), { registry, log, signal });
    expect(log.lines.includes("[1/2] a (write): params changed: re-running")).toBeTruthy();
    expect(log.lines.some((l) => /: running \(/.test(l)), log.lines.join("\n")).toBeFalsy();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
