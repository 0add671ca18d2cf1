/**
 * Progress wording (issue 20): the bar's loss follows the latest steps (tqdm's EMA), its
 * "took" matches the run summary, counters end at 100%, and names are not doubled.
 */
import { expect, it } from "./lib/test.ts";
import { consoleLogger, withoutRepeatedName } from "../cli/log.ts";
import { ProgressBar, SmoothedValue } from "../core/log/progress.ts";
import { memoryLogger, prefixLogger } from "../core/registry.ts";
import { TrainReporter } from "../core/train/reporter.ts";
import { dumpFeatures, planFeatureDump } from "../plugins/tokenizer/dump.ts";
import { ShapesDataset } from "../core/data/shapes.ts";
import { RandomProjectionEncoder } from "../examples/custom-encoder/plugin.ts";
import { fitKMeans } from "../plugins/kmeans/lloyd.ts";
import { memorySource } from "../plugins/kmeans/source.ts";

it("SmoothedValue is tqdm's bias-corrected EMA", () => {
  const ema = new SmoothedValue(0.3);
  expect(ema.value).toBe(undefined);
  ema.add(2);
  expect(Math.abs(ema.value! - 2)).toBeLessThan(1e-12); // bias correction: the first value shows as is
  ema.add(1);
  // (0.3 * 1 + 0.7 * 0.3 * 2) / (1 - 0.49) = 0.72 / 0.51
  expect(Math.abs(ema.value! - 0.72 / 0.51)).toBeLessThan(1e-12);
  expect(() => new SmoothedValue(0)).toThrow(/smoothing/);
});

it("reporter: per-step losses reach the bar; took agrees with the summary", () => {
  const dir = Deno.makeTempDirSync();
  const out: string[] = [];
  let t = 0;
  const log = memoryLogger();
  try {
    const report = new TrainReporter(dir, log, {
      label: "unit",
      bar: { write: (s) => out.push(s), isTTY: false, intervalSec: 1e9, now: () => t },
      now: () => 0,
      config: { lr: 0.1 },
    });
    const h = report.hooks;
    // Step 1 takes 2 s before the bar exists; then 1 s per step; losses 10, 9, ..., 1.
    for (let step = 1; step <= 10; step++) {
      t += step === 1 ? 0 : 1000;
      h.onProgress(step, 10, 11 - step);
      if (step === 5 || step === 10) {
        h.onLog!({
          step,
          loss: step === 5 ? 8 : 3, // the log lines' means, which the bar must not use
          lr: 0.1,
          gradNorm: 1,
          itemsPerSecond: 10,
          elapsed: step + 1, // the trainer's clock includes step 1's 2 s
        });
      }
    }
    report.finish({ step: 10, interrupted: false });
    const last = out.at(-1)!;
    // EMA of 10..1 at smoothing 0.3, computed independently: 2.4297.
    let s = 0;
    for (let n = 1; n <= 10; n++) s = 0.3 * (11 - n) + 0.7 * s;
    const ema = s / (1 - 0.7 ** 10);
    expect(last).toMatch(new RegExp(`loss ${ema.toFixed(4)}`));
    expect(last).toMatch(/10\/10 {2}100%/);
    expect(last).toMatch(/took 00:11/);
    expect(
      log.lines.includes("unit finished at step 10 after 00:11 of training"),
      log.lines.join("\n"),
    ).toBeTruthy();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

it("reporter: without per-step losses the bar smooths the log lines' losses", () => {
  const dir = Deno.makeTempDirSync();
  const out: string[] = [];
  try {
    const report = new TrainReporter(dir, memoryLogger(), {
      bar: { write: (s) => out.push(s), isTTY: false, intervalSec: 1e9, now: () => 0 },
      echo: false,
    });
    for (let step = 1; step <= 4; step++) {
      report.hooks.onProgress(step, 4);
      if (step % 2 === 0) {
        report.hooks.onLog!({
          step,
          loss: step === 2 ? 4 : 2,
          lr: 1,
          gradNorm: 1,
          itemsPerSecond: 1,
          elapsed: step,
        });
      }
    }
    report.finish({ step: 4, interrupted: false });
    // (0.3 * 2 + 0.7 * 0.3 * 4) / (1 - 0.49) = 1.44 / 0.51 = 2.8235
    expect(out.at(-1)!).toMatch(/loss 2\.8235/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

it("console logger: no doubled step names", () => {
  expect(withoutRepeatedName("vqgan: vqgan: reconstruction PSNR 17.69 dB")).toBe(
    "vqgan: reconstruction PSNR 17.69 dB",
  );
  expect(withoutRepeatedName("kmeans: kmeans 4/4")).toBe("kmeans 4/4");
  expect(withoutRepeatedName("stage1: stage 1 finished")).toBe("stage1: stage 1 finished");
  expect(withoutRepeatedName("a: ab: x")).toBe("a: ab: x");
  const written: string[] = [];
  const log = prefixLogger(consoleLogger((s) => written.push(s), { interval: 0 }), "vqgan: ");
  log.info("vqgan: reconstruction PSNR 17.69 dB");
  log.progress("vqgan encode", 2, 2);
  expect(written).toEqual(["vqgan: reconstruction PSNR 17.69 dB\n", "vqgan encode 2/2 (100%)\n"]);
});

it("dump-features counts kept images and ends at 100%", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const dataset = new ShapesDataset({ size: 16, length: 40, seed: 0 });
    const encoder = new RandomProjectionEncoder({ imageSize: 16, patch: 8, dim: 4, seed: 0 });
    const opts = { dataset, encoder, outDir: dir, fraction: 0.5, seed: 0, imagesPerShard: 6 };
    const kept = planFeatureDump(opts).images.length;
    const log = memoryLogger();
    await dumpFeatures({ ...opts, log });
    const progress = log.lines.filter((l) => l.startsWith("dump-features images"));
    expect(progress.at(-1)).toBe(`dump-features images ${kept}/${kept}`);
    expect(log.lines[0]).toMatch(
      new RegExp(`keeping ${kept} of the 40 images \\(fraction 0\\.5\\)`),
    );
    encoder.dispose();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

it("a ProgressBar handed the caller's elapsed time reports it", () => {
  const out: string[] = [];
  let t = 0;
  const bar = new ProgressBar({ total: 2, write: (s) => out.push(s), isTTY: false, now: () => t });
  t = 1000;
  bar.update(2, { elapsed: 61 });
  expect(out[0]).toMatch(/took 01:01/);
});

it("k-means: one line per iteration, counted to n/n, no separate progress line", async () => {
  const log = memoryLogger();
  const data = Float32Array.from({ length: 64 * 2 }, (_, i) => (i * 7919) % 13);
  await fitKMeans(memorySource(data, 2), { k: 4, iterations: 3, seed: 0, log });
  const its = log.lines.filter((l) => /iteration \d/.test(l));
  expect(its.length).toBe(3);
  expect(its[2]).toMatch(/^kmeans: iteration 3\/3 /);
  expect(log.lines.some((l) => /^kmeans \d+\/\d+$/.test(l)), log.lines.join("\n")).toBeFalsy();
});
