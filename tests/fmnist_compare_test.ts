/**
 * tasks/fmnist-digit.yaml and tasks/fmnist-vqgan-ar.yaml at a size that fits CI: every step
 * runs for real on 2000 Fashion-MNIST images with tiny GPTs, the shared steps run once, and
 * the comparison is written. The README's full-size figures come from the files as they are.
 * Skips (not fails) without Debian's dataset-fashion-mnist; with it missing, the task stops at
 * its first step with a message that names the package.
 */

import { parse } from "yaml";
import { expect, it } from "./lib/test.ts";
import { parseOverrides } from "../core/config.ts";
import { silentLogger } from "../core/registry.ts";
import { loadTask, runTask } from "../core/tasks.ts";
import { registry } from "./shard_fixture_test.ts";

const DIR = "/usr/share/datasets/fashion-mnist";
const present = await Deno.stat(`${DIR}/train-images-idx3-ubyte.gz`).then(() => true, () => false);

/** Shorter schedules and smaller sets, by step name: param path -> value. */
const QUICK: Record<string, Record<string, unknown>> = {
  "domain": {
    "dataset.limit": 2000,
    "held_out.limit": 400,
    "floor_reference.limit": 200,
    "steps": 200,
    "min_accuracy": 0,
    "floor.generated": 200,
    "floor.reference": 200,
  },
  "vqgan": { "optimization.max_update": 150, "loss.vq_warmup": 50, "dataset.train_images": 1024 },
  "vq-codes": { "dataset.limit": 2000 },
  "reference": { "dataset.limit": 200 },
  "ssl": { "optimization.max_update": 40, "dataset.source.limit": 1024 },
  "tokenizer": { "dataset.limit": 2000, "valid_dataset.limit": 500 },
  "vq-codes-test": { "dataset.limit": 500 },
  "semantic": { "count": 200 },
  "ar-codes": { "count": 200 },
};
const GPTS = ["stage1", "stage1-uncond", "stage2", "ar-stage1", "ar-stage1-uncond"];

async function overrides(task: string): Promise<string[]> {
  const steps = (parse(await Deno.readTextFile(task)) as { steps: { name: string }[] }).steps;
  const flags: string[] = [];
  steps.forEach((step, i) => {
    for (const [path, value] of Object.entries(QUICK[step.name] ?? {})) {
      flags.push(`steps[${i}].params.${path}=${value}`);
    }
    if (GPTS.includes(step.name)) {
      flags.push(`steps[${i}].params.model.preset=tiny`);
      flags.push(`steps[${i}].params.optimization.max_update=150`);
      flags.push(`steps[${i}].params.lr_scheduler.warmup_updates=20`);
    }
  });
  return flags;
}

const task = (name: string) => new URL(`../tasks/${name}.yaml`, import.meta.url).pathname;

it.skipIf(!present)(
  "fmnist-digit then fmnist-vqgan-ar: every stage's outputs, shared steps run once, the comparison",
  async () => {
    const out = await Deno.makeTempDir({ prefix: "digit-fmnist-" });
    try {
      const r = await registry();
      const run = async (name: string) =>
        await runTask(
          await loadTask(task(name), {
            registry: r,
            outputDir: out,
            overrides: parseOverrides(await overrides(task(name))),
          }),
          { registry: r, log: silentLogger, signal: new AbortController().signal },
        );
      const digit = await run("fmnist-digit");
      expect(digit.skipped).toEqual([]);
      const baseline = await run("fmnist-vqgan-ar");
      expect(baseline.skipped).toEqual(["domain", "vqgan", "vq-codes", "reference"]);
      for (const dir of ["sample/results", "ar-sample/results"]) {
        const pngs = [...Deno.readDirSync(`${out}/${dir}`)].filter((e) => e.name.endsWith(".png"));
        expect(pngs.length, dir).toBe(200);
      }
      const report = JSON.parse(await Deno.readTextFile(`${out}/compare/comparison.json`));
      expect(report.runs.map((r: { label: string }) => r.label)).toEqual([
        "DiGIT (SSL tokens + stage 2)",
        "VQGAN-AR (GPT on VQGAN codes)",
      ]);
      const [d, b] = report.runs;
      console.log(
        `fmnist quick: domain FD DiGIT ${d.fd.toFixed(1)} vs VQGAN-AR ${b.fd.toFixed(1)} (floor ${
          d.fdFloor.toFixed(2)
        }); probe ${d.probe} vs ${b.probe}; class accuracy ${d.classAccuracy} vs ${b.classAccuracy}`,
      );
      for (const r of report.runs) {
        for (const k of ["fd", "fdFloor", "classAccuracy", "probe", "seconds"]) {
          expect(Number.isFinite(r[k]), `${r.label} ${k}`).toBe(true);
        }
      }
      expect(await Deno.readTextFile(`${out}/compare/comparison.md`)).toContain("domain FD ratio");
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
);
