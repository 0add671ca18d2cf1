/** Optimisers and schedules against PyTorch (AdamW fixture) and closed forms. */

import { expect, it } from "./lib/test.ts";
import * as ops from "../core/ops/mod.ts";
import {
  AdamW,
  clipGradNorm,
  clipGradNormOnDevice,
  cosine,
  inverseSqrt,
  SGD,
} from "../core/optim/mod.ts";
import { liveStorages, tidy } from "../core/tensor.ts";

const fixture = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/core/adamw.json", import.meta.url)),
);

it("AdamW matches torch.optim.AdamW over 3 steps (1e-5 relative)", () => {
  const before = liveStorages();
  const params = fixture.init.map((v: number[], i: number) =>
    ops.tensor(v, fixture.shapes[i]).requireGrad()
  );
  const opt = new AdamW(params, {
    lr: fixture.lr,
    betas: fixture.betas,
    eps: fixture.eps,
    weightDecay: fixture.weight_decay,
  });
  for (const grads of fixture.grads) {
    params.forEach((p: ReturnType<typeof ops.tensor>, i: number) => {
      p.grad = ops.tensor(grads[i], fixture.shapes[i]).keep();
    });
    opt.update();
    opt.zeroGrad();
  }
  params.forEach((p: ReturnType<typeof ops.tensor>, i: number) => {
    const got = p.dataSync();
    fixture.final[i].forEach((want: number, j: number) => {
      expect(Math.abs(got[j] - want), `param ${i}[${j}]: ${got[j]} vs ${want}`).toBeLessThanOrEqual(
        1e-5 * Math.max(1, Math.abs(want)),
      );
    });
    p.dispose();
  });
  opt.dispose();
  expect(liveStorages()).toBe(before);
});

it("AdamW state round-trips for exact resume", async () => {
  const run = async (split: boolean) => {
    const p = ops.tensor([1, -2, 3], [3]).requireGrad();
    let opt = new AdamW([p], { lr: 0.1, betas: [0.9, 0.98] });
    for (let s = 0; s < 4; s++) {
      if (split && s === 2) {
        const st = await opt.state();
        opt.dispose();
        opt = new AdamW([p], { lr: 0.1, betas: [0.9, 0.98] });
        opt.loadState(st);
      }
      p.grad = ops.tensor([s + 1, 0.5, -s], [3]).keep();
      opt.update();
      opt.zeroGrad();
    }
    const out = Array.from(p.dataSync());
    opt.dispose();
    p.dispose();
    return out;
  };
  expect(await run(true)).toEqual(await run(false));
});

it("SGD with momentum follows the PyTorch recurrence (closed form)", () => {
  const p = ops.tensor([1], [1]).requireGrad();
  const opt = new SGD([p], { lr: 0.1, momentum: 0.9 });
  // g = 1 each step: buf = 1, 1.9, 2.71 ; p = 1 - 0.1*(1 + 1.9 + 2.71)
  for (let i = 0; i < 3; i++) {
    p.grad = ops.tensor([1], [1]).keep();
    opt.update();
    opt.zeroGrad();
  }
  expect(Math.abs(p.dataSync()[0] - (1 - 0.1 * 5.61))).toBeLessThan(1e-6);
  opt.dispose();
  p.dispose();
});

it("global grad-norm clipping computes the L2 norm over all parameters", async () => {
  const a = ops.tensor([3], [1]).requireGrad(), b = ops.tensor([0, 4], [2]).requireGrad();
  a.grad = ops.tensor([3], [1]).keep();
  b.grad = ops.tensor([0, 4], [2]).keep();
  const { norm, scale } = await clipGradNorm([a, b], 1);
  expect(Math.abs(norm - 5)).toBeLessThan(1e-6);
  expect(Math.abs(scale - 0.2)).toBeLessThan(1e-6);
  tidy(() =>
    [a, b].forEach((t) => {
      t.grad!.dispose();
      t.dispose();
    })
  );
});

it("schedules: fairseq inverse_sqrt and cosine closed forms", () => {
  const o = { lr: 3e-4, warmup: 6250, initLr: 1e-7 };
  expect(Math.abs(inverseSqrt(3125, o) - (1e-7 + (3e-4 - 1e-7) * 0.5))).toBeLessThan(1e-12);
  expect(Math.abs(inverseSqrt(125000, o) - 3e-4 * Math.sqrt(6250 / 125000))).toBeLessThan(1e-12);
  expect(cosine(0, { lr: 0.4, total: 100 })).toBe(0.4);
  expect(Math.abs(cosine(50, { lr: 0.4, total: 100 }) - 0.2)).toBeLessThan(1e-12);
  expect(Math.abs(cosine(100, { lr: 0.4, total: 100 }))).toBeLessThan(1e-12);
});

it("on-device clipping scales gradients by min(1, maxNorm/norm) without a read in the step", () => {
  const a = ops.tensor([3], [1]).requireGrad(), b = ops.tensor([0, 4], [2]).requireGrad();
  a.grad = ops.tensor([3], [1]).keep();
  b.grad = ops.tensor([0, 4], [2]).keep();
  const norm = clipGradNormOnDevice([a, b], 1);
  expect(Math.abs(norm.dataSync()[0] - 5)).toBeLessThan(1e-6);
  // 5 -> 1: every gradient is multiplied by 1/(5 + 1e-6).
  expect(Math.abs(a.grad.dataSync()[0] - 3 / (5 + 1e-6))).toBeLessThan(1e-6);
  expect(Math.abs(b.grad.dataSync()[1] - 4 / (5 + 1e-6))).toBeLessThan(1e-6);
  const small = clipGradNormOnDevice([a, b], 10); // under the limit: unchanged
  expect(Math.abs(a.grad.dataSync()[0] - 3 / (5 + 1e-6))).toBeLessThan(1e-6);
  norm.dispose();
  small.dispose();
  tidy(() =>
    [a, b].forEach((t) => {
      t.grad!.dispose();
      t.dispose();
    })
  );
});
