/**
 * Training runs end to end through the CLI (`deno run -A cli/main.ts train stage1`) as real
 * processes: the run's files (train.log, TensorBoard events, checkpoint), Ctrl-C (SIGINT gives
 * exit code 130 and a checkpoint, a re-run resumes from it), a bad config key (exit code 2),
 * and TrainReporter's own output in process.
 */

import { expect, it } from "./lib/test.ts";
import { loadCheckpoint } from "../core/io/checkpoint.ts";
import { writeTokenFile } from "../core/io/tokens.ts";
import { readTfRecords } from "../core/log/tensorboard.ts";
import { memoryLogger } from "../core/registry.ts";
import { gitCommit, TrainReporter } from "../core/train/reporter.ts";
import { blasDescription } from "../core/native/openblas.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "digit-train-cli-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** 32 synthetic 4x4 token grids over 16 clusters, with a pattern a tiny GPT can learn. */
async function tinyTokens(path: string): Promise<void> {
  const count = 32, height = 4, width = 4, vocab = 16;
  const tokens = new Int32Array(count * height * width).map((_, i) => (i * 7 + (i >> 4)) % vocab);
  await writeTokenFile(path, { tokens, count, height, width, vocab, source: "train_cli_test" });
}

function stage1Yaml(
  tokens: string,
  o: { maxUpdate: number; logInterval: number; saveInterval: number },
): string {
  return [
    `common: { seed: 1, log_interval: ${o.logInterval} }`,
    `checkpoint: { save_interval_updates: ${o.saveInterval} }`,
    `task: { tokens: ${tokens}, target_vocab_size: 16 }`,
    "dataset: { batch_size: 4 }",
    `optimization: { max_update: ${o.maxUpdate}, lr: 0.001 }`,
    "model: { preset: tiny, dropout: 0 }",
    "",
  ].join("\n");
}

function cliArgs(config: string, outputs: string): string[] {
  return [
    "run",
    "-A",
    "cli/main.ts",
    "train",
    "stage1",
    "--config",
    config,
    "--outputs",
    outputs,
    "--device",
    "cpu",
  ];
}

async function runCli(config: string, outputs: string): Promise<{ code: number; stderr: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: cliArgs(config, outputs),
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, stderr: new TextDecoder().decode(r.stderr) };
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

async function readText(path: string): Promise<string> {
  return await Deno.readTextFile(path).catch(() => "");
}

/** Steps of the "step N loss=..." lines of a train.log. */
function loggedSteps(log: string): number[] {
  return [...log.matchAll(/ step (\d+) loss=/g)].map((m) => Number(m[1]));
}

async function checkpointStep(path: string): Promise<number> {
  const ck = await loadCheckpoint(path);
  return (ck.meta as { train: { step: number } }).train.step;
}

// ------------------------------------------------------------ TensorBoard events, decoded here

interface Scalar {
  step: number;
  tag: string;
  value: number;
}

/** Scalars of a TensorBoard event file (Event.step = 2, Event.summary = 5, Value.tag = 1, simple_value = 2). */
function tbScalars(bytes: Uint8Array): Scalar[] {
  const out: Scalar[] = [];
  for (const rec of readTfRecords(bytes)) {
    const event = fields(rec);
    const step = Number(event.find((f) => f.field === 2)?.value ?? 0);
    for (const summary of event.filter((f) => f.field === 5)) {
      for (const v of fields(summary.value as Uint8Array).filter((f) => f.field === 1)) {
        const vf = fields(v.value as Uint8Array);
        const tag = new TextDecoder().decode(vf.find((f) => f.field === 1)!.value as Uint8Array);
        const simple = vf.find((f) => f.field === 2);
        if (simple) out.push({ step, tag, value: simple.value as number });
      }
    }
  }
  return out;
}

/** Protobuf fields: varints as numbers, fixed32 as float32, fixed64 as double, others as bytes. */
function fields(b: Uint8Array): { field: number; value: number | Uint8Array }[] {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: { field: number; value: number | Uint8Array }[] = [];
  let p = 0;
  const varint = () => {
    let v = 0, scale = 1;
    for (;;) {
      const byte = b[p++];
      v += (byte & 0x7f) * scale;
      scale *= 128;
      if (byte < 0x80) return v;
    }
  };
  while (p < b.length) {
    const key = varint(), field = Math.floor(key / 8), wire = key % 8;
    if (wire === 0) out.push({ field, value: varint() });
    else if (wire === 1) (out.push({ field, value: view.getFloat64(p, true) }), p += 8);
    else if (wire === 5) (out.push({ field, value: view.getFloat32(p, true) }), p += 4);
    else if (wire === 2) {
      const n = varint();
      out.push({ field, value: b.subarray(p, p + n) });
      p += n;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  return out;
}

async function tbEventFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith("events.out.tfevents.")) names.push(`${dir}/${e.name}`);
  }
  return names.sort();
}

// ------------------------------------------------------------ CLI runs

it("train stage1 from the CLI writes train.log, TensorBoard scalars and a checkpoint", async () => {
  await withTemp(async (dir) => {
    await tinyTokens(`${dir}/train.tokens`);
    await Deno.writeTextFile(
      `${dir}/run.yaml`,
      stage1Yaml(`${dir}/train.tokens`, { maxUpdate: 6, logInterval: 2, saveInterval: 4 }),
    );
    const { code, stderr } = await runCli(`${dir}/run.yaml`, `${dir}/out`);
    expect(code, stderr).toBe(0);
    const exp = `${dir}/out/train-stage1`;
    const log = await Deno.readTextFile(`${exp}/train.log`);
    expect(loggedSteps(log)).toEqual([2, 4, 6]);
    expect(log).toMatch(/saved checkpoint \S+\/checkpoints\/last at step 4\n/);
    expect(log).toMatch(/finished at step 6\n$/);
    expect(await checkpointStep(`${exp}/checkpoints/last`)).toBe(6);
    expect(await exists(`${exp}/checkpoints/last.json`)).toBeTruthy();
    expect(stderr).toMatch(/stage 1 finished at step 6/);

    const events = await tbEventFiles(`${exp}/tb`);
    expect(events.length).toBe(1);
    const scalars = tbScalars(await Deno.readFile(events[0]));
    const losses = scalars.filter((s) => s.tag === "train/loss");
    expect(losses.map((s) => s.step)).toEqual([2, 4, 6]);
    // Each TensorBoard loss is the float32 of the train.log loss (printed with 5 digits).
    const logLosses = [...log.matchAll(/ loss=([0-9.e+-]+)/g)].map((m) => Number(m[1]));
    losses.forEach((s, i) =>
      expect(Math.abs(s.value - logLosses[i]), `${s.value} vs ${logLosses[i]}`).toBeLessThanOrEqual(
        1e-4 * logLosses[i],
      )
    );
    for (const tag of ["train/lr", "train/grad_norm", "train/tok_per_sec"]) {
      expect(scalars.filter((s) => s.tag === tag).map((s) => s.step), tag).toEqual([2, 4, 6]);
    }
  });
});

it("Ctrl-C during train stage1 saves a checkpoint (exit 130) and a re-run resumes from it", async () => {
  await withTemp(async (dir) => {
    await tinyTokens(`${dir}/train.tokens`);
    const maxUpdate = 60;
    await Deno.writeTextFile(
      `${dir}/run.yaml`,
      stage1Yaml(`${dir}/train.tokens`, { maxUpdate, logInterval: 1, saveInterval: 1000 }),
    );
    const exp = `${dir}/out/train-stage1`;
    const child = new Deno.Command(Deno.execPath(), {
      args: cliArgs(`${dir}/run.yaml`, `${dir}/out`),
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const deadline = Date.now() + 30_000;
    // No periodic save happens before the end, so a checkpoint can only come from the interrupt.
    while (!/ step 2 loss=/.test(await readText(`${exp}/train.log`))) {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        await child.output();
        expect.unreachable("training did not reach step 2 within 30 s");
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGINT");
    const first = await child.output();
    const stderr = new TextDecoder().decode(first.stderr);
    expect(first.code, stderr).toBe(130);
    expect(stderr).toMatch(/interrupting\.\.\./);
    expect(stderr).toMatch(/interrupted during step 'train-stage1'/);

    const log = await Deno.readTextFile(`${exp}/train.log`);
    const stopped = Number(
      log.match(/interrupted at step (\d+); saved checkpoint \S+ \(step (\d+)\)/)?.[1],
    );
    expect(stopped >= 2 && stopped < maxUpdate, `interrupted at step ${stopped}\n${log}`)
      .toBeTruthy();
    expect(log).toMatch(/interrupt requested/);
    expect(await checkpointStep(`${exp}/checkpoints/last`)).toBe(stopped);
    expect(
      await exists(`${exp}/.digit-step.json`),
      "an interrupted step must not be marked finished",
    ).toBe(false);

    const second = await runCli(`${dir}/run.yaml`, `${dir}/out`);
    expect(second.code, second.stderr).toBe(0);
    const resumed = (await Deno.readTextFile(`${exp}/train.log`)).slice(log.length);
    expect(resumed).toMatch(new RegExp(`resumed at step ${stopped} of ${maxUpdate}\n`));
    // Every step is logged once over both runs: the re-run starts right after the checkpoint.
    const steps = loggedSteps(resumed);
    expect(steps[0]).toBe(stopped + 1);
    expect([...loggedSteps(log).filter((s) => s <= stopped), ...steps]).toEqual(
      Array.from({ length: maxUpdate }, (_, i) => i + 1),
    );
    expect(resumed).toMatch(new RegExp(`finished at step ${maxUpdate}\n$`));
    expect(await checkpointStep(`${exp}/checkpoints/last`)).toBe(maxUpdate);
    // The re-run appends a second event file; together they hold each step's loss.
    const events = await tbEventFiles(`${exp}/tb`);
    const tbSteps = new Set<number>();
    for (const f of events) {
      for (const s of tbScalars(await Deno.readFile(f))) {
        if (s.tag === "train/loss") tbSteps.add(s.step);
      }
    }
    expect(tbSteps.size).toBe(maxUpdate);
  });
});

it("a stage-1 config with an unknown key exits with code 2 and names the key path", async () => {
  await withTemp(async (dir) => {
    await tinyTokens(`${dir}/train.tokens`);
    const yaml = stage1Yaml(`${dir}/train.tokens`, {
      maxUpdate: 2,
      logInterval: 1,
      saveInterval: 1,
    })
      .replace("lr: 0.001", "lr: 0.001, warmup_updatez: 3");
    await Deno.writeTextFile(`${dir}/bad.yaml`, yaml);
    const { code, stderr } = await runCli(`${dir}/bad.yaml`, `${dir}/out`);
    expect(code, stderr).toBe(2);
    expect(stderr).toMatch(/bad\.yaml: optimization\.warmup_updatez: unknown key/);
    expect(await exists(`${dir}/out/train-stage1/train.log`)).toBe(false);
  });
});

// ------------------------------------------------------------ TrainReporter in process

const WALL = Date.UTC(2026, 0, 2, 3, 4, 5);
const STAMP = "2026-01-02T03:04:05Z";

it("TrainReporter: train.log lines, TensorBoard scalars and the bar of a resumed run", async () => {
  await withTemp(async (dir) => {
    const log = memoryLogger();
    const bar: string[] = [];
    let clock = 0;
    const report = new TrainReporter(dir, log, {
      label: "unit",
      unit: "tok",
      now: () => WALL,
      bar: { write: (t) => bar.push(t), isTTY: false, intervalSec: 1e9, now: () => clock },
    });
    const h = report.hooks;
    h.onProgress!(5, 8); // resumed after step 4: the bar counts 4 steps from here
    clock = 1000;
    h.onProgress!(6, 8);
    h.onLog!({ step: 6, loss: 2.5, lr: 1e-3, gradNorm: 0.5, itemsPerSecond: 100, elapsed: 2 });
    clock = 4000;
    h.onProgress!(7, 8);
    h.onProgress!(8, 8);
    h.onLog!({
      step: 8,
      loss: 2,
      lr: 5e-4,
      gradNorm: 0.25,
      itemsPerSecond: 50,
      elapsed: 4,
      validLoss: 1.75,
    });
    h.onSave!(`${dir}/checkpoints/last`, 8);
    report.finish({ step: 8, interrupted: false });
    report.close(); // closing twice is fine

    expect(await Deno.readTextFile(`${dir}/train.log`)).toBe(
      [
        `start unit in ${dir}`,
        // The header: device, BLAS and commit as this machine has them; no config given.
        "device: cpu",
        `blas: ${blasDescription()}`,
        `commit: ${gitCommit()}`,
        "config: (none given)",
        "resumed at step 4 of 8",
        "step 6 loss=2.5 lr=0.001 grad_norm=0.5 tok/s=100",
        "step 8 loss=2 lr=5.000e-4 grad_norm=0.25 tok/s=50 valid_loss=1.75",
        `saved checkpoint ${dir}/checkpoints/last at step 8`,
        "finished at step 8",
      ].map((l) => `${STAMP} ${l}\n`).join(""),
    );
    // 100 tok/s over 2 s plus 50 tok/s over 2 s = 300 tokens in the bar's 4 s: 75 tok/s.
    // The loss is the EMA (smoothing 0.3) of the logged 2.5 and 2: 1.125 / 0.51.
    expect(bar).toEqual([
      "unit (resumed at 4)  4/4  100%  loss 2.2059  75.0 tok/s  took 00:04\n",
    ]);
    expect(log.lines).toEqual([
      "step 6  loss 2.5000  lr 1.000e-3  gnorm 0.500  100 tok/s",
      "step 8  loss 2.0000  lr 5.000e-4  gnorm 0.250  50.0 tok/s  valid 1.7500",
      `debug: saved checkpoint ${dir}/checkpoints/last at step 8`,
      "unit finished at step 8 after 00:04 of training",
    ]);
    const scalars = tbScalars(await Deno.readFile((await tbEventFiles(`${dir}/tb`))[0]));
    expect(scalars).toEqual([
      { step: 6, tag: "train/loss", value: 2.5 },
      { step: 6, tag: "train/lr", value: Math.fround(1e-3) },
      { step: 6, tag: "train/grad_norm", value: 0.5 },
      { step: 6, tag: "train/tok_per_sec", value: 100 },
      { step: 8, tag: "train/loss", value: 2 },
      { step: 8, tag: "train/lr", value: Math.fround(5e-4) },
      { step: 8, tag: "train/grad_norm", value: 0.25 },
      { step: 8, tag: "train/tok_per_sec", value: 50 },
      { step: 8, tag: "valid/loss", value: 1.75 },
      // finish(): the hparams plugin's final metrics.
      { step: 8, tag: "final/train_loss", value: 2 },
      { step: 8, tag: "final/valid_loss", value: 1.75 },
    ]);
  });
});

it("TrainReporter: an abort is noted at once, the outcome names the checkpoint, dispose closes", async () => {
  await withTemp(async (dir) => {
    const log = memoryLogger();
    const controller = new AbortController();
    const report = new TrainReporter(dir, log, {
      signal: controller.signal,
      progress: "logger",
      now: () => WALL,
    });
    expect(report.hooks.signal).toBe(controller.signal);
    report.hooks.onProgress!(1, 10);
    controller.abort();
    report.hooks.onSave!("ck/last", 1);
    report.finish({ result: { step: 1, interrupted: true } });
    const text = await Deno.readTextFile(`${dir}/train.log`);
    expect(
      text.endsWith(
        `${STAMP} interrupt requested: saving a checkpoint at the end of this step\n` +
          `${STAMP} saved checkpoint ck/last at step 1\n` +
          `${STAMP} interrupted at step 1; saved checkpoint ck/last (step 1); re-run to resume\n`,
      ),
      text,
    ).toBeTruthy();
    expect(log.lines.filter((l) => !l.startsWith("debug:"))).toEqual([
      "train 1/10",
      "warning: train interrupted at step 1; checkpoint ck/last (step 1) saved, re-run to resume",
    ]);

    // Leaving a `using` block without finish (an error) says so in train.log and closes the files.
    const other = `${dir}/other`;
    try {
      using failing = new TrainReporter(other, log, { progress: "logger", now: () => WALL });
      failing.hooks.onProgress!(1, 10);
      throw new Error("boom");
    } catch (e) {
      expect((e as Error).message).toBe("boom");
    }
    expect(await Deno.readTextFile(`${other}/train.log`)).toMatch(
      /stopped before finishing[^\n]*\n$/,
    );
  });
});

it("output.dir is relative to the working directory, and the runner finds the files it promised there", async () => {
  await withTemp(async (dir) => {
    await tinyTokens(`${dir}/train.tokens`);
    const yaml = stage1Yaml("train.tokens", { maxUpdate: 2, logInterval: 1, saveInterval: 2 });
    await Deno.writeTextFile(`${dir}/run.yaml`, yaml + "output: { dir: experiments/mine }\n");
    const run = () =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          `${ROOT}cli/main.ts`,
          "train",
          "stage1",
          "--config",
          "run.yaml",
          "--outputs",
          "out",
        ],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
    const first = await run();
    expect(first.code, new TextDecoder().decode(first.stderr)).toBe(0);
    expect(await checkpointStep(`${dir}/experiments/mine/checkpoints/last`)).toBe(2);
    expect(
      await exists(`${dir}/out/train-stage1/checkpoints`),
      "nothing is written to the step folder's checkpoints",
    ).toBeFalsy();
    const second = await run();
    expect(second.code).toBe(0);
    expect(new TextDecoder().decode(second.stderr)).toMatch(/finished earlier, skipped/);
  });
});

it("train vqgan with the default configs/vqgan.yaml (shortened by --set) writes under --outputs", async () => {
  await withTemp(async (dir) => {
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "cli/main.ts",
        "train",
        "vqgan",
        "--outputs",
        `${dir}/out`,
        "--device",
        "cpu",
        "--set",
        "optimization.max_update=2",
        "--set",
        "dataset.train_images=32",
        "--set",
        "dataset.valid_images=8",
        "--set",
        "dataset.batch_size=16",
        "--set",
        "dataset.source={kind: shapes, size: 32, length: 40, seed: 0}",
        "--set",
        "preview.count=4",
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(r.stderr);
    expect(r.code, stderr).toBe(0);
    const exp = `${dir}/out/train-vqgan`;
    expect(await checkpointStep(`${exp}/checkpoints/last`)).toBe(2);
    expect(await exists(`${exp}/reconstructions.png`)).toBeTruthy();
    expect(stderr).toMatch(/reconstruction PSNR [0-9.]+ dB on held-out images/);
  });
});
