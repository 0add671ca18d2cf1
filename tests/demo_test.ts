/**
 * The demo end to end (tasks/demo.yaml through `digit demo`), shortened by --set overrides:
 * every step runs for real (domain classifier, VQGAN and its reconstructions, SSL encoder,
 * tokenizer, stage 1 and its probe, stage 2, sampling, the untrained baselines, the domain
 * metric, the guidance sweep, the summary). Checks that the trained pipeline is closer to
 * held-out real images than both baselines on the domain classifier's features and keeps
 * their colour, that the PNGs and sheets exist, and that a second run skips every step.
 */

import { expect, it } from "./lib/test.ts";
import { parse } from "yaml";
import { main } from "../cli/main.ts";
import type { DemoSummary } from "../plugins/demo/summary.ts";

const DEMO_TASK = new URL("../tasks/demo.yaml", import.meta.url);

/** Shorter schedules, by step name: param path -> value. */
const QUICK: Record<string, Record<string, unknown>> = {
  "domain": {
    "dataset.length": 1024,
    "held_out.length": 300,
    "steps": 500,
    "floor.generated": 60,
    "floor.reference": 200,
    "floor.max_splits": 3,
  },
  "vqgan": {
    "optimization.max_update": 150,
    "loss.vq_warmup": 50,
    "dataset.source.length": 544,
    "dataset.train_images": 512,
    "dataset.valid_images": 32,
  },
  "reconstructions": { "dataset.length": 100 },
  "ssl": { "optimization.max_update": 40, "dataset.source.length": 512 },
  "features": { "dataset.length": 512 },
  "tokens": { "dataset.length": 512 },
  "valid-tokens": { "dataset.length": 64 },
  "vq-codes": { "dataset.length": 512 },
  "stage1": { "optimization.max_update": 120 },
  "stage2": { "optimization.max_update": 120 },
  "semantic": { "count": 60 },
  "untrained-semantic": { "count": 60 },
  "sample": { "sheet_count": 60 },
  "reference": { "dataset.length": 200 },
  "guidance": { "per_class": 2, "scales": "[1,2]" },
  "summary": { "sheet.per_class": 6 },
};

/** --set flags for QUICK, addressed by each step's index in the task file. */
async function quickOverrides(): Promise<string[]> {
  const task = parse(await Deno.readTextFile(DEMO_TASK)) as { steps: { name: string }[] };
  const flags: string[] = [];
  for (const [name, params] of Object.entries(QUICK)) {
    const index = task.steps.findIndex((s) => s.name === name);
    expect(
      index,
      `tasks/demo.yaml has no step '${name}' (steps: ${task.steps.map((s) => s.name).join(", ")})`,
    ).toBeGreaterThanOrEqual(0);
    for (const [path, value] of Object.entries(params)) {
      flags.push("--set", `steps[${index}].params.${path}=${value}`);
    }
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

it("demo: a shortened tasks/demo.yaml trains, samples, beats the untrained pipeline, and resumes", async () => {
  const outputs = await Deno.makeTempDir({ prefix: "digit-demo-test-" });
  try {
    const started = performance.now();
    const first = await runDemo(outputs);
    const seconds = (performance.now() - started) / 1000;
    expect(first.code, `first run failed:\n${first.err.slice(-3000)}`).toBe(0);

    const summary = JSON.parse(
      await Deno.readTextFile(`${outputs}/summary/summary.json`),
    ) as DemoSummary;
    const run = (label: string) => {
      const found = summary.runs.find((r) => r.label === label);
      expect(
        found,
        `summary.json has no run '${label}' (runs: ${summary.runs.map((r) => r.label).join(", ")})`,
      ).toBeTruthy();
      return found!;
    };
    const trained = run("trained").metrics, untrained = run("untrained").metrics;
    const untrainedGenerators = run("untrained-generators").metrics;
    console.log(
      `demo_test (${seconds.toFixed(0)} s): domain FD trained ${
        trained.domain_fd.toFixed(1)
      }, untrained stage 1+2 with the ` +
        `trained VQGAN ${untrainedGenerators.domain_fd.toFixed(1)}, untrained ${
          untrained.domain_fd.toFixed(1)
        } ` +
        `(floor ${
          trained.domain_fd_floor.toFixed(2)
        }); class accuracy ${trained.domain_class_accuracy} vs ` +
        `${untrainedGenerators.domain_class_accuracy} / ${untrained.domain_class_accuracy}; saturation ` +
        `${trained.saturation.toFixed(3)} (real ${trained.reference_saturation.toFixed(3)})`,
    );
    for (const m of [trained, untrained, untrainedGenerators]) {
      for (
        const k of [
          "domain_fd",
          "domain_class_accuracy",
          "domain_precision",
          "domain_recall",
          "saturation",
        ]
      ) {
        expect(Number.isFinite(m[k]) && m[k] >= 0, `bad ${k} ${m[k]}`).toBeTruthy();
      }
    }
    // Trained generators are closer to the real images than untrained ones decoded by the
    // same VQGAN, which in turn beat the untrained pipeline.
    expect(
      trained.domain_fd,
      `FD trained ${trained.domain_fd} vs untrained generators ${untrainedGenerators.domain_fd}`,
    ).toBeLessThan(untrainedGenerators.domain_fd);
    expect(
      untrainedGenerators.domain_fd,
      `FD untrained generators ${untrainedGenerators.domain_fd} vs untrained ${untrained.domain_fd}`,
    ).toBeLessThan(untrained.domain_fd);
    // Colour at full length is tested in vqgan_recipe_test.ts; 150 updates keep less of it.
    const recon = summary.reconstructions!;
    console.log(`demo_test: reconstructions ${JSON.stringify(recon)}`);
    expect(
      recon.saturationRatio > 0.25 && recon.codebookUsage > 0.8,
      `reconstructions: ${JSON.stringify(recon)}`,
    ).toBeTruthy();
    expect(
      summary.probe && summary.probe.best.accuracy > 0.3,
      `probe ${JSON.stringify(summary.probe)}`,
    ).toBeTruthy();
    expect(summary.guidance?.length).toBe(2);

    for (const dir of ["sample", "untrained-sample", "untrained-gen-sample"]) {
      expect(await pngCount(`${outputs}/${dir}/results`), `${dir}/results`).toBe(60);
    }
    const sheets = [
      "sample/contact_sheet.png",
      "summary/sheet-trained.png",
      "summary/sheet-untrained.png",
      "summary/sheet-untrained-generators.png",
      "summary/sheet-real.png",
      "reference/sheet.png",
      "summary/sheet-reconstructions.png",
    ];
    for (const sheet of sheets) {
      const info = await Deno.stat(`${outputs}/${sheet}`);
      expect(info.isFile && info.size > 1000, `${sheet}: ${info.size} bytes`).toBeTruthy();
    }
    expect(first.err).toMatch(/class acc\. {2}domain FD \(floor/);
    expect(first.err).toMatch(/deno task serve --samples/);

    // examples/programmatic.ts loads the trained parts through mod.ts and writes PNGs.
    const example = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../examples/programmatic.ts", import.meta.url).pathname,
        outputs,
        "6",
      ],
      cwd: outputs,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const exampleOut = new TextDecoder().decode(example.stdout);
    expect(example.code, new TextDecoder().decode(example.stderr)).toBe(0);
    expect(exampleOut).toMatch(/8 images of class 6 in outputs\/programmatic\//);
    expect(await pngCount(`${outputs}/outputs/programmatic`)).toBe(8);

    // A second run skips every finished step; only the (always re-run) summary runs again.
    const second = await runDemo(outputs);
    expect(second.code, `second run failed:\n${second.err.slice(-3000)}`).toBe(0);
    const others = (parse(await Deno.readTextFile(DEMO_TASK)) as { steps: unknown[] }).steps
      .length - 1;
    expect(
      Object.keys(summary.stepSeconds).length,
      `step times: ${JSON.stringify(summary.stepSeconds)}`,
    ).toBe(others);
    expect(second.err).toContain(`ran 1 step(s), skipped ${others} finished`);
  } finally {
    await Deno.remove(outputs, { recursive: true }).catch(() => {});
  }
});
