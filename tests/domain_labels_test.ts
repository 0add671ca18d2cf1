/**
 * labels.tsv in the sample folders the project writes (export-images' exportDataset and the
 * generation pipeline behind generate-images / sample), its reader, the pieces of the domain
 * metric that have exact answers (HSV saturation, the IS analogue), and the bad inputs of
 * train-domain-classifier, which must fail before any training with a message naming the
 * step and the problem. No classifier is trained here (see domain_metric_test.ts).
 */

import { expect, it } from "./lib/test.ts";
import { cpuBackend } from "../core/device.ts";
import { validate } from "../core/config.ts";
import { ShapesDataset } from "../core/data/shapes.ts";
import { writeTokenFile } from "../core/io/tokens.ts";
import { Rng } from "../core/random.ts";
import { memoryLogger, Registry, type StepContext } from "../core/registry.ts";
import { exportDataset } from "../plugins/demo/images.ts";
import { augmentedBatch } from "../plugins/domain/data.ts";
import { inceptionScore, SaturationMean } from "../plugins/domain/features.ts";
import { readLabels } from "../core/data/labels.ts";
import { trainClassifierParams, trainClassifierStep } from "../plugins/domain/train.ts";
import { runPipeline } from "../plugins/pipeline/pipeline.ts";
import { Stage2Model } from "../plugins/stage2/model.ts";
import { VQGAN, VQGAN_PRESETS } from "../plugins/vqgan/vqgan.ts";

const tsvRows = async (dir: string) =>
  (await Deno.readTextFile(`${dir}/labels.tsv`)).trimEnd().split("\n").map((l) => l.split("\t"));

it("export-images writes labels.tsv: file, the dataset's class id and class name", async () => {
  const dir = await Deno.makeTempDir();
  const ds = new ShapesDataset({ size: 16, length: 12, seed: 4 });
  await exportDataset(ds, { count: 12, dir });
  const rows = await tsvRows(dir);
  expect(rows[0]).toEqual(["file", "class_id", "class_name"]);
  expect(rows.length).toBe(13);
  for (let i = 0; i < 12; i++) {
    // shapes: label = index % 10, names in SHAPE_CLASSES order
    expect(rows[i + 1]).toEqual([
      `${String(i).padStart(5, "0")}.png`,
      String(i % 10),
      ds.classNames[i % 10],
    ]);
  }
  const map = await readLabels(dir);
  expect(map?.get("00011.png")).toBe(1);
  await Deno.remove(dir, { recursive: true });
});

it("generate-images' pipeline writes labels.tsv from the token file's labels", async () => {
  const dir = await Deno.makeTempDir();
  const stage2 = new Stage2Model({
    variant: "nar",
    clusters: 20,
    codebookSize: 12,
    prefixLength: 16,
    length: 16,
    layers: 1,
    dim: 16,
    heads: 2,
    ffnDim: 32,
    dropout: 0,
  }, new Rng(5));
  const vqgan = new VQGAN(
    { ...VQGAN_PRESETS.cpu16, chMult: [1, 1, 1], nEmbed: 12 },
    new Rng(7),
  );
  vqgan.eval();
  const labels = Int32Array.from([3, 0, 7, 3, 9]);
  const tokens = Int32Array.from({ length: 5 * 16 }, (_, i) => (i * 7) % 20);
  await writeTokenFile(`${dir}/sem.tokens`, {
    tokens,
    count: 5,
    height: 4,
    width: 4,
    vocab: 20,
    labels,
  });
  const names = new ShapesDataset().classNames;
  const res = await runPipeline({
    stage2,
    decoder: vqgan,
    semantic: `${dir}/sem.tokens`,
    outDir: `${dir}/out`,
    seed: 1,
    sampling: { steps: 2 },
    sheet: { count: 0 },
    classNames: names,
  });
  const rows = await tsvRows(res.resultsDir);
  expect(rows.slice(1)).toEqual([...labels].map((c, i) => [`${i}.png`, String(c), names[c]]));
  // Without names the class id stands in for the name; without labels there is no file.
  await runPipeline({
    stage2,
    decoder: vqgan,
    semantic: `${dir}/sem.tokens`,
    outDir: `${dir}/ids`,
    seed: 1,
    sampling: { steps: 2 },
    sheet: { count: 0 },
  });
  expect((await tsvRows(`${dir}/ids/results`))[1]).toEqual(["0.png", "3", "3"]);
  await writeTokenFile(`${dir}/bare.tokens`, { tokens, count: 5, height: 4, width: 4, vocab: 20 });
  await runPipeline({
    stage2,
    decoder: vqgan,
    semantic: `${dir}/bare.tokens`,
    outDir: `${dir}/bare`,
    seed: 1,
    sampling: { steps: 2 },
    sheet: { count: 0 },
  });
  expect(await readLabels(`${dir}/bare/results`)).toBe(null);
  stage2.dispose();
  vqgan.dispose();
  await Deno.remove(dir, { recursive: true });
});

it("readLabels rejects a malformed labels.tsv, naming the line", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/labels.tsv`,
    "file\tclass_id\tclass_name\na.png\t1\tsquare\nb.png\tx\t?\n",
  );
  await expect(readLabels(dir)).rejects.toThrow(/labels\.tsv:3: expected/);
  await Deno.writeTextFile(`${dir}/labels.tsv`, "a.png\t1\tsquare\n");
  await expect(readLabels(dir)).rejects.toThrow(/header line/);
  await Deno.remove(dir, { recursive: true });
});

it("saturation: (max - min) / max per pixel, 0 for black, averaged over pixels", () => {
  // grey 0, pure red 1, (200,100,100) 0.5, black 0 (not NaN), (255,255,51) 0.8
  const px = [[90, 90, 90], [255, 0, 0], [200, 100, 100], [0, 0, 0], [255, 255, 51]];
  const s = new SaturationMean();
  s.update({ data: Uint8Array.from(px.flat()), count: 5, height: 1, width: 1 });
  expect(Math.abs(s.value() - (0 + 1 + 0.5 + 0 + 0.8) / 5)).toBeLessThan(1e-12);
});

it("IS analogue: C for confident balanced classes, 1 for identical predictions", () => {
  const C = 4;
  const oneHot = new Float32Array(8 * C);
  for (let i = 0; i < 8; i++) oneHot[i * C + (i % C)] = 1;
  expect(Math.abs(inceptionScore(oneHot, C) - C)).toBeLessThan(1e-9);
  const same = new Float32Array(8 * C).map((_, i) => [0.7, 0.1, 0.1, 0.1][i % C]);
  expect(Math.abs(inceptionScore(same, C) - 1)).toBeLessThan(1e-6);
});

function context(dir: string): StepContext {
  return {
    registry: new Registry(),
    device: "cpu",
    backend: cpuBackend(),
    log: memoryLogger(),
    outputDir: dir,
    signal: new AbortController().signal,
    stepName: "domain",
    stepDir: dir,
    outputs: { checkpoint: `${dir}/classifier.json`, report: `${dir}/report.json` },
  };
}

it("train-domain-classifier: one class, or fewer images than a batch, is a clear error", async () => {
  const dir = await Deno.makeTempDir();
  const params = (dataset: unknown, extra: Record<string, unknown> = {}) =>
    validate(trainClassifierParams, {
      dataset,
      held_out: { kind: "shapes", size: 16, length: 40, seed: 2 },
      floor: { generated: 10, reference: 20 },
      ...extra,
    }, "test");
  await expect(trainClassifierStep(
    params({ kind: "shapes", size: 16, length: 64, numClasses: 1 }),
    context(dir),
  )).rejects.toThrow(
    /train-domain-classifier \(step 'domain'\): params\.dataset 'shapes:16px:seed0' has 1 class; a classifier needs at least 2/,
  );
  await expect(trainClassifierStep(
    params({ kind: "shapes", size: 16, length: 20 }, { batch_size: 32 }),
    context(dir),
  )).rejects.toThrow(
    /train-domain-classifier \(step 'domain'\): dataset 'shapes:16px:seed0' has 20 images, fewer than batch_size 32/,
  );
  await expect(trainClassifierStep(
    params({ kind: "shapes", size: 16, length: 64 }, { floor: { generated: 30, reference: 30 } }),
    context(dir),
  )).rejects.toThrow(
    /held_out .* has 40 images; the floor needs floor.generated \+ floor.reference = 60/,
  );
  expect([...Deno.readDirSync(dir)].length, "nothing is written before the checks pass").toBe(0);
  await Deno.remove(dir, { recursive: true });
});

it("classifier augmentation: all off is the identity; blur keeps a flat image flat and softens a checkerboard", () => {
  const side = 8, per = side * side * 3;
  const flat = new Uint8Array(per).fill(120);
  const checker = new Uint8Array(per);
  for (let i = 0; i < side * side; i++) {
    checker.fill(((i % side) + Math.floor(i / side)) % 2 ? 255 : 0, 3 * i, 3 * i + 3);
  }
  const batch = {
    data: new Uint8Array([...flat, ...checker]),
    count: 2,
    height: side,
    width: side,
  };
  const off = { shift: 0, flip: false, blur: 0, noise: 0 };
  expect(augmentedBatch(batch, [0, 1], new Rng(1), off).data).toEqual(batch.data);
  const blurred = augmentedBatch(batch, [0, 1], new Rng(1), { ...off, blur: 1 }).data;
  expect(blurred.subarray(0, per).every((v) => v === 120), "flat stays flat").toBeTruthy();
  // One [1 2 1]/4 pass per axis takes an interior 0/255 checkerboard pixel to 127.5 +- 0;
  // more passes keep it there: the contrast is gone, not merely reduced.
  const centre = (3 * side + 3) * 3;
  expect(Math.abs(blurred[per + centre] - 127.5), `blurred ${blurred[per + centre]}`)
    .toBeLessThanOrEqual(1);
  const noisy = augmentedBatch(batch, [0], new Rng(2), { ...off, noise: 8 }).data;
  expect(noisy.some((v) => v !== 120), "noise changes pixels").toBeTruthy();
  expect(noisy.every((v) => Math.abs(v - 120) < 8 * 6), "noise stays within 6 std").toBeTruthy();
});
