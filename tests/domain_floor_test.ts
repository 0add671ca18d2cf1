/**
 * The real-vs-real floor (plugins/domain/floor.ts) on features with a closed form, and
 * `train-domain-classifier` with a separate floor reference (`floor_reference`, e.g. a test
 * split): the floor then compares held-out rows with that set, as the samples are.
 */

import { expect, it } from "./lib/test.ts";
import { cpuBackend } from "../core/device.ts";
import { validate } from "../core/config.ts";
import { Rng } from "../core/random.ts";
import { memoryLogger, Registry } from "../core/registry.ts";
import { loadClassifier } from "../plugins/domain/checkpoint.ts";
import { realFloor } from "../plugins/domain/floor.ts";
import { trainClassifierParams, trainClassifierStep } from "../plugins/domain/train.ts";

const DIM = 4;
const sizes = (generated: number, reference: number, maxSplits = 1) => ({
  generated,
  reference,
  maxSplits,
  neighborhood: 3,
});

function gaussianRows(count: number, seed: number): Float32Array {
  const g = new Rng(seed);
  return Float32Array.from({ length: count * DIM }, () => g.normal());
}

it("floor within one held-out set: identical halves score FD 0", () => {
  const half = gaussianRows(50, 1);
  const held = new Float32Array(100 * DIM);
  held.set(half, 0);
  held.set(half, 50 * DIM);
  const floor = realFloor(held, 100, DIM, sizes(50, 50), "test");
  expect(floor.splits).toBe(1);
  expect(Math.abs(floor.fd), `FD ${floor.fd}`).toBeLessThan(1e-3);
});

it("floor against a separate reference: the same rows shifted by d score FD |d|^2 (the covariance term cancels)", () => {
  const held = gaussianRows(60, 2);
  const d = [0.5, -1, 0, 2];
  const shifted = held.map((v, i) => v + d[i % DIM]);
  const floor = realFloor(held, 60, DIM, sizes(60, 60), "test", {
    features: shifted,
    count: 60,
  });
  const expected = d.reduce((a, v) => a + v * v, 0);
  expect(Math.abs(floor.fd - expected), `FD ${floor.fd} vs |d|^2 ${expected}`).toBeLessThan(1e-3);
  // A set scored against itself covers itself; shifted by |d| = 2.3 it does not.
  const same = realFloor(held, 60, DIM, sizes(60, 60), "test", { features: held, count: 60 });
  expect(same.fd, `FD of a set with itself ${same.fd}`).toBeLessThan(1e-3);
  expect([same.precision, same.recall]).toEqual([1, 1]);
  expect(floor.precision).toBeLessThan(same.precision);
});

it("floor: too few held-out or reference images are named", () => {
  const held = gaussianRows(30, 3);
  expect(() => realFloor(held, 30, DIM, sizes(20, 20), "step 'domain'")).toThrow(
    /step 'domain': the floor needs 20 \+ 20 = 40 disjoint held-out images/,
  );
  expect(() =>
    realFloor(held, 30, DIM, sizes(20, 40), "step 'domain'", { features: held, count: 30 })
  ).toThrow(/needs 20 held-out images .* and 40 reference images .* the sets have 30 and 30/);
});

it("train-domain-classifier with floor_reference: the floor is held-out vs that set, recorded in the checkpoint", async () => {
  const root = await Deno.makeTempDir();
  const shapes = (length: number, seed: number) => ({
    kind: "shapes",
    size: 16,
    length,
    seed,
    numClasses: 3,
  });
  const params = validate(trainClassifierParams, {
    dataset: shapes(96, 0),
    held_out: shapes(30, 2),
    floor_reference: shapes(40, 1),
    steps: 5,
    batch_size: 16,
    floor: { generated: 30, reference: 40 },
    min_accuracy: 0,
  }, "test");
  const context = (dir: string) => ({
    registry: new Registry(),
    device: "cpu" as const,
    backend: cpuBackend(),
    log: memoryLogger(),
    outputDir: root,
    signal: new AbortController().signal,
    stepName: "domain",
    stepDir: `${root}/${dir}`,
    outputs: {
      checkpoint: `${root}/${dir}/classifier.json`,
      report: `${root}/${dir}/report.json`,
    },
  });
  await trainClassifierStep(params, context("domain"));
  const { model, meta } = await loadClassifier(`${root}/domain/classifier.json`, "test");
  // 30 held-out images would leave nothing for a reference without floor_reference.
  expect([meta.floor.generated, meta.floor.reference, meta.floor.splits]).toEqual([30, 40, 1]);
  expect(meta.floorReference?.count).toBe(40);
  expect(Number.isFinite(meta.floor.fd) && meta.floor.fd >= 0).toBeTruthy();
  model.dispose();

  const tooFew = validate(trainClassifierParams, {
    ...params,
    floor: { ...params.floor, reference: 41 },
  }, "test");
  await expect(trainClassifierStep(tooFew, context("domain2"))).rejects.toThrow(
    /floor_reference '.*' has 40 images; the floor needs floor.reference = 41/,
  );
  await Deno.remove(root, { recursive: true });
});
