/**
 * The demo end to end (tasks/demo.yaml through `digit demo`), shortened by --set overrides
 * to about a minute: every step runs for real (VQGAN, tokenizer, stage 1, stage 2, sampling,
 * the untrained baseline, Frechet distances, the summary). Checks that the trained pipeline
 * is much closer to held-out real images than the untrained one, that the PNGs and contact
 * sheets exist, and that a second run skips every finished step.
 */

import assert from "node:assert/strict";
import { parse } from "yaml";
import { main } from "../cli/main.ts";
import type { DemoSummary } from "../plugins/demo/summary.ts";

const DEMO_TASK = new URL("../tasks/demo.yaml", import.meta.url);

/** Shorter schedules, by step name: param path -> value. */
const QUICK: Record<string, Record<string, unknown>> = {
  "vqgan": {
    "optimization.max_update": 120,
    "dataset.source.length": 544,
    "dataset.train_images": 512,
    "dataset.valid_images": 32,
  },
  "tokenizer": { "dataset.length": 512, "valid_dataset.length": 64 },
  "vq-codes": { "dataset.length": 512 },
  "stage1": { "optimization.max_update": 120 },
  "stage2": { "optimization.max_update": 120 },
  "semantic": { "count": 60 },
  "untrained-semantic": { "count": 60 },
  "sample": { "sheet_count": 60 },
  "reference": { "dataset.length": 200 },
};

/** --set flags for QUICK, addressed by each step's index in the task file. */
async function quickOverrides(): Promise<string[]> {
  const task = parse(await Deno.readTextFile(DEMO_TASK)) as { steps: { name: string }[] };
  const flags: string[] = [];
  for (const [name, params] of Object.entries(QUICK)) {
    const index = task.steps.findIndex((s) => s.name === name);
    assert.ok(index >= 0, `tasks/demo.yaml has no step '${name}' (steps: ${task.steps.map((s) => s.name).join(", ")})`);
    for (const [path, value] of Object.entries(params)) flags.push("--set", `steps[${index}].params.${path}=${value}`);
  }
  return flags;
}

async function runDemo(outputs: string): Promise<{ code: number; err: string }> {
  let err = "";
  const code = await main(["demo", "--outputs", outputs, ...(await quickOverrides())], {
    stdout: () => {},
    stderr: (t) => (err += t),
    tty: false,
  });
  return { code, err };
}

async function pngCount(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".png")) n++;
  return n;
}

Deno.test({
  name: "demo: a shortened tasks/demo.yaml trains, samples, beats the untrained pipeline, and resumes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const outputs = await Deno.makeTempDir({ prefix: "digit-demo-test-" });
    try {
      const started = performance.now();
      const first = await runDemo(outputs);
      const seconds = (performance.now() - started) / 1000;
      assert.equal(first.code, 0, `first run failed:\n${first.err.slice(-3000)}`);

      const summary = JSON.parse(await Deno.readTextFile(`${outputs}/summary/summary.json`)) as DemoSummary;
      const run = (label: string) => {
        const found = summary.runs.find((r) => r.label === label);
        assert.ok(found, `summary.json has no run '${label}' (runs: ${summary.runs.map((r) => r.label).join(", ")})`);
        return found;
      };
      const [name] = Object.keys(run("trained").metrics);
      assert.match(name, /^frechet_distance_random-conv/);
      const trained = run("trained").metrics[name];
      const untrained = run("untrained").metrics[name];
      const untrainedGenerators = run("untrained-generators").metrics[name];
      console.log(
        `demo_test: ${name}: trained ${trained.toFixed(3)}, untrained stage 1+2 with the trained VQGAN ` +
          `${untrainedGenerators.toFixed(3)}, untrained pipeline ${untrained.toFixed(3)} (${seconds.toFixed(0)} s)`,
      );
      for (const v of [trained, untrained, untrainedGenerators]) assert.ok(Number.isFinite(v) && v >= 0, `bad distance ${v}`);
      // "Well below": the untrained pipeline's samples are at least 3x farther from the real images.
      assert.ok(
        trained * 3 < untrained,
        `trained pipeline FD ${trained.toFixed(3)} is not well below the untrained pipeline's ${untrained.toFixed(3)}`,
      );
      // And trained generators beat untrained ones decoded by the same VQGAN.
      assert.ok(
        trained < untrainedGenerators,
        `trained pipeline FD ${trained.toFixed(3)} is not below untrained generators' ${untrainedGenerators.toFixed(3)}`,
      );

      for (const dir of ["sample", "untrained-sample", "untrained-gen-sample"]) {
        assert.equal(await pngCount(`${outputs}/${dir}/results`), 60, `${dir}/results`);
      }
      const sheets = ["sample/contact_sheet.png", "summary/sheet-trained.png", "summary/sheet-untrained.png",
        "summary/sheet-untrained-generators.png", "summary/sheet-real.png", "reference/sheet.png"];
      for (const sheet of sheets) {
        const info = await Deno.stat(`${outputs}/${sheet}`);
        assert.ok(info.isFile && info.size > 1000, `${sheet}: ${info.size} bytes`);
      }
      assert.match(first.err, /frechet_distance_random-conv/);
      assert.match(first.err, /deno task serve --samples/);

      // examples/programmatic.ts loads the trained parts through mod.ts and writes PNGs.
      const example = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL("../examples/programmatic.ts", import.meta.url).pathname, outputs, "6"],
        cwd: outputs,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const exampleOut = new TextDecoder().decode(example.stdout);
      assert.equal(example.code, 0, new TextDecoder().decode(example.stderr));
      assert.match(exampleOut, /8 images of class 6 in outputs\/programmatic\//);
      assert.equal(await pngCount(`${outputs}/outputs/programmatic`), 8);

      // A second run skips every finished step; only the (always re-run) summary runs again.
      const second = await runDemo(outputs);
      assert.equal(second.code, 0, `second run failed:\n${second.err.slice(-3000)}`);
      assert.equal(Object.keys(summary.stepSeconds).length, 15, `step times: ${JSON.stringify(summary.stepSeconds)}`);
      assert.match(second.err, /ran 1 step\(s\), skipped 15 finished/);
      assert.equal((second.err.match(/finished earlier, skipped/g) ?? []).length, 15);
    } finally {
      await Deno.remove(outputs, { recursive: true }).catch(() => {});
    }
  },
});
