/** The fairseq lr_scheduler group of stage 1 and 2: inverse_sqrt by default, cosine by name. */

import { expect, it } from "./lib/test.ts";
import { validate } from "../core/config.ts";
import { lrAt } from "../core/optim/mod.ts";
import { stage2ConfigSchema } from "../plugins/stage2/config.ts";
import { fairseqTrainSettings } from "../plugins/transformer/fairseq_config.ts";

const task = {
  tokens: "(memory)",
  vq_tokens: "(memory)",
  source_vocab_size: 16,
  target_vocab_size: 32,
};

function scheduleOf(lrScheduler?: Record<string, unknown>) {
  const cfg = validate(stage2ConfigSchema, {
    task,
    optimization: { max_update: 500, lr: 2e-2 },
    ...(lrScheduler ? { lr_scheduler: lrScheduler } : {}),
  }, "test");
  return fairseqTrainSettings(cfg, { validate: false }).schedule;
}

it("lr_scheduler: without _name it is DiGIT's inverse_sqrt, closed form", () => {
  const s = scheduleOf({ warmup_updates: 30 });
  expect(s.kind).toBe("inverse_sqrt");
  expect(Math.abs(lrAt(30, s) - 2e-2)).toBeLessThan(1e-12);
  expect(Math.abs(lrAt(300, s) - 2e-2 * Math.sqrt(30 / 300))).toBeLessThan(1e-12);
  expect(scheduleOf().kind).toBe("inverse_sqrt");
});

it("lr_scheduler: _name cosine warms up, then falls from lr to min_lr at max_update", () => {
  const s = scheduleOf({ _name: "cosine", warmup_updates: 30, min_lr: 1e-4 });
  expect(Math.abs(lrAt(15, s) - 1e-2)).toBeLessThan(1e-12);
  expect(Math.abs(lrAt(30, s) - 2e-2)).toBeLessThan(1e-12);
  // Half-way through the decay: the mean of lr and min_lr.
  expect(Math.abs(lrAt(265, s) - (2e-2 + 1e-4) / 2)).toBeLessThan(1e-12);
  expect(Math.abs(lrAt(500, s) - 1e-4)).toBeLessThan(1e-12);
});

it("lr_scheduler: an unknown _name is a config error naming the choices", () => {
  expect(() => scheduleOf({ _name: "polynomial_decay" })).toThrow(/inverse_sqrt.*cosine/);
});
