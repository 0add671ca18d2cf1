/**
 * The device is resolved once per run, by whoever starts the run (the task runner,
 * `startRun` for the CLI's serve and `DigitPipeline.load`), and handed to steps and factories
 * as `ctx.backend`; no plugin switches the process-wide device itself.
 */

import { expect, it } from "./lib/test.ts";
import type { Backend } from "../core/backend.ts";
import { cpuBackend, defaultBackend, setDefaultBackend } from "../core/device.ts";
import { memoryLogger, Registry } from "../core/registry.ts";
import { startRun } from "../core/run_context.ts";
import { planTask, runTask } from "../core/tasks.ts";

/** A stand-in default backend, so that a test sees whether something switched it. */
const stale = { name: "stale", description: "not a real backend" } as Backend;

it("runTask: every step gets the resolved backend, already the default", async () => {
  const seen: { step: string; backend: Backend; default: Backend }[] = [];
  const registry = await new Registry().use({
    name: "backend-probe",
    version: "0.0.1",
    register(r) {
      r.step({
        name: "probe",
        outputs: () => ({ out: "out.txt" }),
        async run(_p, ctx) {
          seen.push({ step: ctx.stepName, backend: ctx.backend, default: defaultBackend() });
          await Deno.writeTextFile(ctx.outputs.out, "done\n");
        },
      });
    },
  });
  const dir = await Deno.makeTempDir({ prefix: "digit-backend-" });
  setDefaultBackend(stale);
  try {
    const plan = planTask(
      {
        name: "probe",
        device: "cpu",
        steps: [{ name: "a", type: "probe" }, { name: "b", type: "probe" }],
      },
      registry,
      { file: "probe.yaml", outputDir: dir },
    );
    const log = memoryLogger();
    await runTask(plan, { registry, log, signal: new AbortController().signal });
    expect(seen.map((s) => s.step)).toEqual(["a", "b"]);
    for (const s of seen) {
      expect(s.backend).toBe(cpuBackend());
      expect(s.default, "the runner made it the default").toBe(cpuBackend());
    }

    // Nothing left to run: the device is not touched (a finished run starts no GPU).
    setDefaultBackend(stale);
    await runTask(plan, { registry, log, signal: new AbortController().signal });
    expect(seen.length).toBe(2);
    expect(defaultBackend()).toBe(stale);
  } finally {
    setDefaultBackend(cpuBackend());
    await Deno.remove(dir, { recursive: true });
  }
});

it("startRun resolves the device once into ctx.backend and makes it the default", async () => {
  setDefaultBackend(stale);
  try {
    const ctx = await startRun({
      registry: new Registry(),
      device: "cpu",
      log: memoryLogger(),
      outputDir: ".",
      signal: new AbortController().signal,
    });
    expect(ctx.backend).toBe(cpuBackend());
    expect(defaultBackend()).toBe(cpuBackend());
    await expect(startRun({ ...ctx, device: "tpu" as "cpu" })).rejects.toThrow(/unknown device/);
  } finally {
    setDefaultBackend(cpuBackend());
  }
});

it("no plugin switches the process-wide device (useDevice, setDefaultBackend)", async () => {
  const root = new URL("../plugins/", import.meta.url);
  const offenders: string[] = [];
  let files = 0;
  const walk = async (dir: URL) => {
    for await (const e of Deno.readDir(dir)) {
      const url = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
      if (e.isDirectory) await walk(url);
      else if (e.name.endsWith(".ts")) {
        files++;
        const text = await Deno.readTextFile(url);
        for (const [i, line] of text.split("\n").entries()) {
          if (/\b(useDevice|setDefaultBackend)\b/.test(line)) {
            offenders.push(`${url.pathname.slice(root.pathname.length)}:${i + 1}: ${line.trim()}`);
          }
        }
      }
    }
  };
  await walk(root);
  expect(files).toBeGreaterThan(50);
  expect(offenders).toEqual([]);
});
