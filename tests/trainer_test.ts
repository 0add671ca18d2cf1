/** The shared training loop: exact resume, checkpoints, accumulation and abort. */

import { expect, it } from "./lib/test.ts";
import { liveStorages } from "../core/tensor.ts";
import { train, type TrainSettings } from "../core/train/trainer.ts";
import { tinyGptJob } from "./helpers/tiny_gpt_job.ts";

const job = tinyGptJob;

const settings: TrainSettings = {
  maxSteps: 8,
  schedule: { kind: "inverse_sqrt", lr: 1e-2, warmup: 3, initLr: 1e-4 },
  betas: [0.9, 0.98],
  weightDecay: 0.01,
  clipNorm: 1,
  accumulate: 2,
  logInterval: 1,
  saveInterval: 100,
  validInterval: 0,
  seed: 3,
};

it("a resumed run reproduces the uninterrupted run's losses exactly", async () => {
  const before = liveStorages();
  const dirA = await Deno.makeTempDir(), dirB = await Deno.makeTempDir();
  const a = job();
  const full = await train(a, settings, dirA);
  a.model.dispose();
  // Interrupt after 3 updates (the checkpoint is written on abort), then resume.
  const b = job();
  const ctl = new AbortController();
  const first = await train(b, settings, dirB, {
    signal: ctl.signal,
    onProgress: (s) => s === 3 && ctl.abort(),
  });
  b.model.dispose();
  expect(first.interrupted).toBe(true);
  expect(first.step).toBe(3);
  const c = job();
  const rest = await train(c, settings, dirB);
  c.model.dispose();
  expect(rest.step).toBe(8);
  expect(rest.losses).toEqual(full.losses);
  expect(full.losses.length).toBe(8);
  expect(full.losses[7], `loss should fall: ${full.losses}`).toBeLessThan(full.losses[0]);
  expect(liveStorages()).toBe(before);
  await Deno.remove(dirA, { recursive: true });
  await Deno.remove(dirB, { recursive: true });
});
