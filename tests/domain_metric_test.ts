/**
 * The domain metric end to end, on a shortened version of the demo's setting that fits CI:
 * train-domain-classifier on 4 shape classes (800 images, 400 steps), then the
 * `eval` step with `metrics: [domain]` on three folders of N = 80 images against 120 reference
 * images, the sizes the floor is measured with (measured values in brackets):
 *
 *   real      fresh real shapes with their true labels.tsv
 *             -> class accuracy >= 0.97 [1.0]; FD <= 3x the real-vs-real floor [1.5 vs 1.7];
 *                precision, recall >= 0.7 [0.96, 0.94]
 *   shuffled  the same images, labels.tsv permuted
 *             -> class accuracy < 0.5 [0.26] (chance is 0.25; 0.5 is > 5 sigma away at 80 images);
 *                FD, precision and recall identical to `real` (labels do not enter them)
 *   noise     uniform random pixels
 *             -> FD > 10x the floor [~370x]; recall <= 0.05 [0]; IS < 1.5 [~1.0]: the
 *                classifier maps all noise to one tight cluster; precision <= 0.15 [0.06,
 *                against 0.93 for real images]: not 0, because the wide k-NN balls of a few
 *                outlying real images reach that cluster, a known weakness of k-NN precision
 *                (0.07 at the demo's sizes).
 *
 * Plus: held-out accuracy >= 0.97 and a finite floor in the checkpoint's self-description, the
 * floor-size warning, and labels.tsv missing (skipped with a log line; an error when required).
 */

import { expect, it } from "./lib/test.ts";
import { cpuBackend } from "../core/device.ts";
import { validate } from "../core/config.ts";
import { ShapesDataset } from "../core/data/shapes.ts";
import { writePng } from "../core/image/codec.ts";
import { Rng } from "../core/random.ts";
import { memoryLogger, Registry } from "../core/registry.ts";
import { exportDataset } from "../plugins/demo/images.ts";
import { loadClassifier } from "../plugins/domain/checkpoint.ts";
import domainPlugin from "../plugins/domain/plugin.ts";
import { trainClassifierParams, trainClassifierStep } from "../plugins/domain/train.ts";
import { createDomainMetric, domainFactoryOptions } from "../plugins/domain/metric_factory.ts";
import { type EvalContext, evalParams, runEval } from "../plugins/metrics/eval.ts";
import { ImageFolder } from "../plugins/metrics/folder.ts";
import { PixelEncoder } from "./lib/pixel_encoder.ts";

const CLASSES = 4;
/** Images per scored folder (and the floor's generated-set size). */
const N = 80;
const shapes = (length: number, seed: number) =>
  new ShapesDataset({ size: 32, length, seed, numClasses: CLASSES });
const root = await Deno.makeTempDir();
const log = memoryLogger();

// One classifier for every case below (training is the slow part).
const trainParams = validate(trainClassifierParams, {
  dataset: { kind: "shapes", size: 32, length: 800, seed: 0, numClasses: CLASSES },
  held_out: { kind: "shapes", size: 32, length: 200, seed: 2, numClasses: CLASSES },
  steps: 400,
  batch_size: 32,
  floor: { generated: N, reference: 120 },
  min_accuracy: 0.97,
}, "test");
await trainClassifierStep(trainParams, {
  registry: new Registry(),
  device: "cpu",
  backend: cpuBackend(),
  log,
  outputDir: root,
  signal: new AbortController().signal,
  stepName: "domain",
  stepDir: `${root}/domain`,
  outputs: { checkpoint: `${root}/domain/classifier.json`, report: `${root}/domain/report.json` },
});
const CLASSIFIER = `${root}/domain/classifier.json`;

// Folders: reference (120 real, seed 1), real (N real, seed 3), shuffled, noise.
await exportDataset(shapes(120, 1), { count: 120, dir: `${root}/reference` });
await exportDataset(shapes(N, 3), { count: N, dir: `${root}/real` });
await Deno.mkdir(`${root}/shuffled`);
const realTsv = (await Deno.readTextFile(`${root}/real/labels.tsv`)).trimEnd().split("\n");
const perm = new Rng(11).permutation(N);
const shuffledRows = realTsv.slice(1).map((row, i) => {
  const [file] = row.split("\t");
  const [, id, name] = realTsv[1 + perm[i]].split("\t");
  return `${file}\t${id}\t${name}`;
});
await Deno.writeTextFile(
  `${root}/shuffled/labels.tsv`,
  [realTsv[0], ...shuffledRows].join("\n") + "\n",
);
for (const e of Deno.readDirSync(`${root}/real`)) {
  if (e.name.endsWith(".png")) {
    await Deno.copyFile(`${root}/real/${e.name}`, `${root}/shuffled/${e.name}`);
  }
}
await Deno.mkdir(`${root}/noise`);
const g = new Rng(5);
for (let i = 0; i < N; i++) {
  const data = Uint8Array.from({ length: 32 * 32 * 3 }, () => g.int(256));
  await writePng(`${root}/noise/${String(i).padStart(5, "0")}.png`, {
    width: 32,
    height: 32,
    data,
  });
}
await Deno.copyFile(`${root}/real/labels.tsv`, `${root}/noise/labels.tsv`);

async function evaluate(
  folder: string,
  extra: Record<string, unknown> = {},
  register: (r: Registry) => void = () => {},
) {
  const ctxLog = memoryLogger();
  const stepDir = await Deno.makeTempDir({ dir: root });
  const registry = await new Registry().use(domainPlugin);
  register(registry);
  const ctx: EvalContext = {
    // eval builds `domain` through the registry, as the task runner's registry has it.
    registry,
    device: "cpu",
    backend: cpuBackend(),
    log: ctxLog,
    outputDir: stepDir,
    signal: new AbortController().signal,
    stepDir,
  };
  const p = validate(evalParams, {
    generated: `${root}/${folder}`,
    reference: `${root}/reference`,
    metrics: ["domain"],
    domain_classifier: CLASSIFIER,
    ...extra,
  }, "test");
  const report = await runEval(p, ctx);
  return { m: report.metrics, lines: ctxLog.lines };
}

const real = await evaluate("real");
const shuffled = await evaluate("shuffled");
const noise = await evaluate("noise");

it("train-domain-classifier: held-out accuracy and the floor are in its checkpoint", async () => {
  const { model, meta } = await loadClassifier(CLASSIFIER, "test");
  expect(meta.kind).toBe("domain-classifier");
  expect(meta.classNames).toEqual(["circle", "square", "triangle", "cross"]);
  expect(meta.heldOut.accuracy, `held-out accuracy ${meta.heldOut.accuracy}`)
    .toBeGreaterThanOrEqual(0.97);
  expect(meta.heldOut.count).toBe(200);
  expect([meta.floor.generated, meta.floor.reference, meta.floor.splits]).toEqual([N, 120, 2]);
  expect(meta.floor.fd > 0 && Number.isFinite(meta.floor.fd)).toBeTruthy();
  expect(meta.floor.fdMin <= meta.floor.fd && meta.floor.fd <= meta.floor.fdMax).toBeTruthy();
  expect(meta.floor.precision > 0.7 && meta.floor.recall > 0.7, JSON.stringify(meta.floor))
    .toBeTruthy();
  model.dispose();
});

it("domain metric on real images: accuracy >= 0.97, FD within 3x the floor", () => {
  const m = real.m;
  expect(m.domain_class_accuracy, `class accuracy ${m.domain_class_accuracy}`)
    .toBeGreaterThanOrEqual(0.97);
  expect(m.domain_fd, `FD ${m.domain_fd} vs floor ${m.domain_fd_floor}`).toBeLessThanOrEqual(
    3 * m.domain_fd_floor,
  );
  expect(m.domain_precision >= 0.7 && m.domain_recall >= 0.7, JSON.stringify(m)).toBeTruthy();
  // Confident, balanced predictions on real shapes: the IS analogue is near its maximum C.
  expect(m.domain_is > 0.8 * CLASSES && m.domain_is <= CLASSES + 1e-9, `IS ${m.domain_is}`)
    .toBeTruthy();
  for (const k of ["saturation", "reference_saturation"]) {
    expect(m[k] > 0.1 && m[k] < 0.9, `${k} ${m[k]}`).toBeTruthy();
  }
  // Floors as stored; the sizes match, so no warning.
  expect(real.lines.some((l) => l.includes("floor was measured")), real.lines.join("\n"))
    .toBeFalsy();
});

it("domain metric with shuffled labels: accuracy near chance, every other number unchanged", () => {
  expect(shuffled.m.domain_class_accuracy, `class accuracy ${shuffled.m.domain_class_accuracy}`)
    .toBeLessThan(0.5);
  for (const k of ["domain_fd", "domain_precision", "domain_recall", "domain_is", "saturation"]) {
    expect(shuffled.m[k], k).toBe(real.m[k]);
  }
});

it("domain metric on noise: FD > 10x the floor, precision and recall near 0, IS ~1", () => {
  const m = noise.m;
  expect(m.domain_fd, `FD ${m.domain_fd} vs floor ${m.domain_fd_floor}`).toBeGreaterThan(
    10 * m.domain_fd_floor,
  );
  expect(m.domain_recall, `recall ${m.domain_recall}`).toBeLessThanOrEqual(0.05);
  expect(m.domain_precision, `precision ${m.domain_precision}`).toBeLessThanOrEqual(0.15);
  expect(m.domain_is, `IS ${m.domain_is}`).toBeLessThan(1.5);
  // Independent reference: for three iid uniform channels, given the max the other two are
  // uniform below it, so E[min / max] = E[min of two U(0,1)] = 1/3 and E[S] = 2/3. 81920
  // pixels give a standard error of ~0.001; 0.01 also covers the 8-bit rounding.
  expect(Math.abs(m.saturation - 2 / 3), `saturation ${m.saturation}`).toBeLessThan(0.01);
  expect(m.reference_saturation).toBeLessThan(0.5);
  expect(m.reference_saturation).toBe(real.m.reference_saturation);
});

it("domain metric: labels.tsv missing is skipped with a log line, or an error when required", async () => {
  await Deno.remove(`${root}/noise/labels.tsv`);
  const r = await evaluate("noise");
  expect(r.m.domain_class_accuracy).toBe(undefined);
  expect(r.m.domain_fd).toBe(noise.m.domain_fd);
  expect(
    r.lines.some((l) => l.includes("no labels.tsv: domain_class_accuracy is skipped")),
    r.lines.join("\n"),
  ).toBeTruthy();
  await expect(evaluate("noise", { require_labels: true })).rejects.toThrow(
    /require_labels is set but .* has no labels\.tsv/,
  );
  await expect(evaluate("noise", { domain_classifier: undefined })).rejects.toThrow(
    /metric 'domain' needs domain_classifier/,
  );
});

it("eval: domain beside another reference metric decodes the reference once, same numbers", async () => {
  const reads: string[] = [];
  const batches = ImageFolder.prototype.batches;
  ImageFolder.prototype.batches = function (this: ImageFolder, ...args) {
    reads.push(this.dir);
    return batches.apply(this, args);
  };
  let both;
  try {
    both = await evaluate(
      "real",
      { metrics: ["domain", "fd:pixels"] },
      (r) => r.encoder({ name: "pixels", create: () => new PixelEncoder() }),
    );
  } finally {
    ImageFolder.prototype.batches = batches;
  }
  expect(reads.filter((d) => d === `${root}/reference`), reads.join(", ")).toHaveLength(1);
  expect(both.m.frechet_distance_pixels).toBeGreaterThanOrEqual(0);
  // The metric reading the reference itself (the factory's own pass) gives the same numbers.
  const ctx = {
    registry: new Registry(),
    device: "cpu" as const,
    backend: cpuBackend(),
    log: memoryLogger(),
    outputDir: root,
    signal: new AbortController().signal,
  };
  const own = await createDomainMetric(
    validate(domainFactoryOptions, {
      classifier: CLASSIFIER,
      reference: `${root}/reference`,
      labels: `${root}/real`,
    }, "test"),
    ctx,
  );
  try {
    for await (const batch of (await ImageFolder.open(`${root}/real`)).batches(64)) {
      await own.update(batch);
    }
    const want = await own.compute();
    for (const [k, v] of Object.entries(want)) expect(both.m[k], k).toBe(v);
    for (const [k, v] of Object.entries(real.m)) expect(both.m[k], k).toBe(v);
  } finally {
    own.dispose();
  }
});

it("domain metric: a floor measured for other set sizes is flagged", async () => {
  const r = await evaluate("real", { limit: 30 });
  expect(
    r.lines.some((l) =>
      l.includes(
        `measured for ${N} vs 120 real images, these sets are 30 generated vs 30 reference`,
      )
    ),
    r.lines.join("\n"),
  ).toBeTruthy();
});

it("domain metric: cleanup", async () => await Deno.remove(root, { recursive: true }));
