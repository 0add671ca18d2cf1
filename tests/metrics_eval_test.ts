/**
 * The eval pipeline end to end: image folders -> FID Inception-v3 (hash-generated weights, as in
 * inception_test.ts) -> FID / IS / precision-recall, against tests/fixtures/inception/eval.json,
 * which make_inception_fixtures.py computed from torch features of the same PNGs with numpy
 * (float64 mean/cov, tr sqrt(S1 S2) by symmetric eigendecomposition), torch-fidelity's IS recipe
 * (2 splits here: 6 images) and exact k=1 precision/recall. Tolerances:
 *  - FID: 1e-4 relative (measured 7.8e-6: our features differ from torch's by ~3e-7 relative and
 *    a 6-sample FID amplifies that; scipy's sqrtm and torch-fidelity's eigvals form differ from
 *    the symmetric form by ~1e-6 here because the covariances are singular);
 *  - IS: 1e-5 relative; precision/recall: exact (they are counts);
 *  - statistics files: float64 round trip, FID from the file equals FID from the folder to 1e-12.
 * Plus fd:<encoder> wiring on a toy encoder, prepare-imagenet-val against torchvision's
 * Resize(256)+CenterCrop(256), and the bad-input errors.
 */

import { expect, it } from "./lib/test.ts";
import { rejected } from "./lib/errors.ts";
import { cpuBackend } from "../core/device.ts";
import { validate } from "../core/config.ts";
import { encodePng, readImage } from "../core/image/codec.ts";
import { encodeNpz } from "../core/io/npy.ts";
import type { ImageBatch } from "../core/interfaces.ts";
import { memoryLogger, Registry, type StepEntry } from "../core/registry.ts";
import { PixelEncoder } from "./lib/pixel_encoder.ts";
import {
  InceptionFeatureExtractor,
  type InceptionFeatures,
} from "../plugins/inception/extractor.ts";
import { FidInceptionV3 } from "../plugins/inception/model.ts";
import { fnv1a32, syntheticInceptionWeights } from "../plugins/inception/synthetic_weights.ts";
import { loadInceptionStateDict, WEIGHT_FILES } from "../plugins/inception/weights.ts";
import { type EvalContext, type EvalParams, evalParams, runEval } from "../plugins/metrics/eval.ts";
import { frechetDistance } from "../plugins/metrics/frechet.ts";
import { INCEPTION_FEATURE, inceptionStats } from "../plugins/metrics/fid.ts";
import { encoderStats } from "../plugins/metrics/fd_encoder.ts";
import { ImageFolder, probeImageSize } from "../plugins/metrics/folder.ts";
import metricsPlugin from "../plugins/metrics/plugin.ts";
import { imageNetValFiles, prepareImageNetVal } from "../plugins/metrics/prepare_imagenet.ts";
import { featureStats } from "../plugins/metrics/stats.ts";
import { loadStats, saveStats } from "../plugins/metrics/stats_io.ts";

const FIX = new URL("./fixtures/inception/", import.meta.url).pathname;
const expected = JSON.parse(await Deno.readTextFile(FIX + "eval.json"));
const GENERATED = FIX + "eval/generated";
const REFERENCE = FIX + "eval/reference";

const model = new FidInceptionV3();
await loadInceptionStateDict(
  model,
  syntheticInceptionWeights([...model.stateDict()].map(([k, t]) => [k, t.shape]), 0),
  "synthetic",
);

/** Test-only: remembers features by image content, so repeated evaluations of the fixture
 * folders run the network once per image set. */
class CachingExtractor extends InceptionFeatureExtractor {
  readonly #seen = new Map<string, InceptionFeatures>();
  override async extract(images: ImageBatch): Promise<InceptionFeatures> {
    const key = `${images.count}x${images.height}x${images.width}:${
      fnv1a32(String.fromCharCode(...images.data.subarray(0, 4096)))
    }:${fnv1a32(String.fromCharCode(...images.data.subarray(images.data.length - 4096)))}`;
    let f = this.#seen.get(key);
    if (!f) this.#seen.set(key, f = await super.extract(images));
    return f;
  }
}
const extractor = new CachingExtractor(model);

function context(
  stepDir: string,
  registry = new Registry(),
): EvalContext & { log: ReturnType<typeof memoryLogger> } {
  return {
    registry,
    device: "cpu",
    backend: cpuBackend(),
    log: memoryLogger(),
    outputDir: stepDir,
    signal: new AbortController().signal,
    stepDir,
    extractor,
  };
}

const params = (raw: Record<string, unknown>): EvalParams =>
  validate(evalParams, raw, "test params");

async function withTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir();
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejects(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  expect((await rejected(fn)).message).toMatch(pattern);
}

const relative = (got: number, want: number) => Math.abs(got - want) / Math.abs(want);

it("eval: FID, IS and precision/recall of two folders match the torch/numpy reference", async () => {
  await withTemp(async (dir) => {
    const ctx = context(dir);
    const report = await runEval(
      params({
        generated: GENERATED,
        reference: REFERENCE,
        metrics: ["fid", "is", "prc"],
        is_splits: 2,
        prc_neighborhood: 1,
        batch_size: 4,
        save_reference_stats: `${dir}/ref.safetensors`,
      }),
      ctx,
    );
    const m = report.metrics;
    console.log(
      `FID ${m.frechet_inception_distance} vs ${expected.fid.fid} (relative ${
        relative(m.frechet_inception_distance, expected.fid.fid).toExponential(2)
      }); IS ${m.inception_score_mean} vs ${expected.is_splits2.mean}`,
    );
    expect(relative(m.frechet_inception_distance, expected.fid.fid)).toBeLessThan(1e-4);
    expect(relative(m.inception_score_mean, expected.is_splits2.mean)).toBeLessThan(1e-5);
    expect(relative(m.inception_score_std, expected.is_splits2.std)).toBeLessThan(1e-3);
    expect(m.precision).toBe(expected.prc_k1.precision);
    expect(m.recall).toBe(expected.prc_k1.recall);
    expect(report.generated).toEqual({ folder: GENERATED, count: 6, total: 6 });

    // The reference statistics were saved twice (step folder .npz, requested .safetensors), with
    // the same numbers; the file reproduces the FID without touching the reference images.
    const npz = await loadStats(report.files.reference_stats, {
      dim: 2048,
      feature: INCEPTION_FEATURE,
    });
    const st = await loadStats(`${dir}/ref.safetensors`, { dim: 2048, feature: INCEPTION_FEATURE });
    expect([npz.mu, npz.sigma, npz.count]).toEqual([st.mu, st.sigma, 6]);
    // inceptionStats() over the same batches gives the same statistics.
    const direct = await inceptionStats(extractor, (await ImageFolder.open(REFERENCE)).batches(4));
    expect([direct.mu, direct.sigma]).toEqual([st.mu, st.sigma]);
    const again = await runEval(
      // Same batches as above: BLAS results can differ in the last ulp with the batch size.
      params({
        generated: GENERATED,
        reference: `${dir}/ref.safetensors`,
        metrics: ["fid"],
        batch_size: 4,
      }),
      ctx,
    );
    expect(relative(again.metrics.frechet_inception_distance, m.frechet_inception_distance))
      .toBeLessThan(1e-12);
  });
});

it("statistics files: float64 round trip in .npz and .safetensors, checks on load", async () => {
  await withTemp(async (dir) => {
    const rows = Float64Array.from({ length: 7 * 3 }, (_, i) => Math.sin(i * 1.7) / 3 + i * 1e-9);
    const stats = featureStats(rows, 3);
    for (const ext of ["npz", "safetensors"]) {
      await saveStats(`${dir}/s.${ext}`, stats, "toy");
      const back = await loadStats(`${dir}/s.${ext}`);
      expect([back.mu, back.sigma, back.count, back.feature]).toEqual([
        stats.mu,
        stats.sigma,
        7,
        "toy",
      ]);
      await rejects(
        () => loadStats(`${dir}/s.${ext}`, { dim: 2048 }),
        /features have 3 dimensions, expected 2048/,
      );
      await rejects(
        () => loadStats(`${dir}/s.${ext}`, { feature: INCEPTION_FEATURE }),
        /holds 'toy' statistics/,
      );
    }
    // pytorch-fid's layout: float32 mu/sigma only.
    const f32 = (shape: number[], data: number[]) => ({
      dtype: "f32" as const,
      shape,
      data: Float32Array.from(data),
      sourceDtype: "f32",
    });
    await Deno.writeFile(
      `${dir}/pf.npz`,
      encodeNpz(new Map([["mu", f32([2], [1, 2])], ["sigma", f32([2, 2], [1, 0.5, 0.5, 2])]])),
    );
    const pf = await loadStats(`${dir}/pf.npz`);
    expect([...pf.mu, ...pf.sigma]).toEqual([1, 2, 1, 0.5, 0.5, 2]);
    await Deno.writeFile(`${dir}/other.npz`, encodeNpz(new Map([["arr_0", f32([1], [0])]])));
    await rejects(
      () => loadStats(`${dir}/other.npz`),
      /needs arrays 'mu' and 'sigma' \(has: arr_0\.npy\)/,
    );
    await rejects(() => loadStats(`${dir}/none.npz`), /none\.npz' does not exist/);
    await rejects(
      () => saveStats(`${dir}/s.pt`, stats, "toy"),
      /use a \.npz or \.safetensors extension/,
    );
  });
});

async function meanColours(dir: string): Promise<Float64Array> {
  const folder = await ImageFolder.open(dir);
  const out: number[] = [];
  for (const file of folder.files) {
    const img = await readImage(file);
    const sums = [0, 0, 0];
    for (let i = 0; i < img.data.length; i++) sums[i % 3] += img.data[i] / 255;
    out.push(...sums.map((s) => s / (img.width * img.height)));
  }
  return Float64Array.from(out);
}

it("eval: fd:<encoder> through the registry gives the Frechet distance of mean-pooled features", async () => {
  await withTemp(async (dir) => {
    const registry = new Registry();
    registry.encoder({ name: "pixels", create: () => new PixelEncoder() });
    const report = await runEval(
      params({ generated: GENERATED, reference: REFERENCE, metrics: ["fd:pixels"] }),
      context(dir, registry),
    );
    const g = featureStats(await meanColours(GENERATED), 3);
    const r = featureStats(await meanColours(REFERENCE), 3);
    const want = frechetDistance(g.mu, g.sigma, r.mu, r.sigma);
    expect(
      relative(report.metrics.frechet_distance_pixels, want),
      `${report.metrics.frechet_distance_pixels} vs ${want}`,
    ).toBeLessThan(1e-5);
    expect(report.files.reference_stats_pixels.endsWith("reference-pixels-mean.npz")).toBeTruthy();
    const saved = await loadStats(report.files.reference_stats_pixels, { feature: "pixels-mean" });
    const viaHelper = await encoderStats(
      new PixelEncoder(),
      (await ImageFolder.open(REFERENCE)).batches(5),
    );
    for (const [a, b] of [[saved.mu, r.mu], [saved.sigma, r.sigma], [viaHelper.mu, r.mu]]) {
      a.forEach((v, i) => expect(Math.abs(v - b[i]), `${v} vs ${b[i]}`).toBeLessThan(1e-7));
    }
  });
});

it("eval step via the plugin: weights from a file, metrics.json written", async () => {
  await withTemp(async (dir) => {
    const sd = syntheticInceptionWeights([...model.stateDict()].map(([k, t]) => [k, t.shape]), 0);
    const weights = `${dir}/${WEIGHT_FILES["torch-fidelity"].file}`;
    await Deno.writeFile(weights, encodeNpz(sd));
    const registry = new Registry();
    await registry.use(metricsPlugin);
    expect(registry.list("metrics").map((e) => e.name)).toEqual(["fd-encoder", "fid", "is"]);
    const step = registry.get("steps", "eval") as StepEntry<EvalParams>;
    const p = validate(step.params, {
      generated: GENERATED,
      metrics: ["is"],
      is_splits: 1,
      limit: 2,
      inception_weights: weights,
    }, "eval");
    const outputs = { metrics: `${dir}/metrics.json` };
    const ctx = { ...context(dir, registry), extractor: undefined, stepName: "eval", outputs };
    await step.run(p, ctx);
    const written = JSON.parse(await Deno.readTextFile(outputs.metrics));
    expect(written.generated.count).toBe(2);
    expect(written.generated.total, "the folder's size, for the demo summary's check").toBe(6);
    // The same two images through the in-process extractor give the same score.
    const direct = await runEval(
      params({ generated: GENERATED, metrics: ["is"], is_splits: 1, limit: 2 }),
      context(dir),
    );
    expect(written.metrics.inception_score_mean).toBe(direct.metrics.inception_score_mean);
  });
});

it("eval: clear errors for bad folders, counts, files and references", async () => {
  await withTemp(async (dir) => {
    const ctx = context(dir);
    const run = (raw: Record<string, unknown>) => runEval(params(raw), ctx);
    const mk = async (name: string, files: Record<string, Uint8Array | string>) => {
      await Deno.mkdir(`${dir}/${name}`);
      for (const [f, data] of Object.entries(files)) {
        if (typeof data === "string") await Deno.writeTextFile(`${dir}/${name}/${f}`, data);
        else await Deno.writeFile(`${dir}/${name}/${f}`, data);
      }
      return `${dir}/${name}`;
    };
    const png = (w: number, h: number) =>
      encodePng({ width: w, height: h, data: new Uint8Array(w * h * 3).fill(90) });

    await rejects(
      () => run({ generated: `${dir}/missing`, reference: REFERENCE }),
      /generated images '.*missing' does not exist/,
    );
    const empty = await mk("empty", {});
    await rejects(
      () => run({ generated: empty, reference: REFERENCE }),
      /'.*empty' has no \.png\/\.jpg\/\.jpeg images$/,
    );
    const texts = await mk("texts", { "a.txt": "x", "b.json": "{}" });
    await rejects(
      () => run({ generated: texts, reference: REFERENCE }),
      /has no .* images; it has 2 other file\(s\), e.g\. a\.txt, b\.json/,
    );
    const one = await mk("one", { "0.png": png(8, 8), "notes.txt": "x" });
    await rejects(
      () => run({ generated: one, reference: REFERENCE, metrics: ["fid"] }),
      /has 1 usable image\(s\); metrics \[fid\] need at least 2/,
    );
    await rejects(
      () => run({ generated: GENERATED, reference: REFERENCE, metrics: ["is"], is_splits: 20 }),
      /6 usable image\(s\); metrics \[is\] need at least 20/,
    );
    await rejects(() => run({ generated: GENERATED, metrics: ["fid"] }), /need a reference/);
    await rejects(
      () => run({ generated: GENERATED, reference: `${dir}/nope`, metrics: ["fid"] }),
      /reference '.*nope' does not exist/,
    );
    await rejects(
      () => run({ generated: GENERATED, reference: `${dir}/one/notes.txt`, metrics: ["fid"] }),
      /use a \.npz or \.safetensors extension/,
    );
    await saveStats(
      `${dir}/ref.npz`,
      featureStats(Float64Array.from({ length: 8 }, (_, i) => i * i), 4),
      "toy",
    );
    await rejects(
      () => run({ generated: GENERATED, reference: `${dir}/ref.npz`, metrics: ["fid"] }),
      /ref\.npz': features have 4 dimensions, expected 2048/,
    );
    await rejects(
      () => run({ generated: GENERATED, reference: `${dir}/ref.npz`, metrics: ["prc"] }),
      /prc needs reference images \(a folder\)/,
    );

    const mixed = await mk("mixed", { "a.png": png(8, 8), "b.png": png(8, 8), "c.png": png(9, 8) });
    await rejects(
      () => run({ generated: mixed, reference: REFERENCE, metrics: ["fid"], batch_size: 2 }),
      /generated images '.*mixed': images differ in size: .*a\.png is 8x8 but .*c\.png is 9x8/,
    );
    const broken = await mk("broken", { "a.png": png(8, 8), "b.png": "this is not a png" });
    await rejects(
      () => run({ generated: broken, reference: REFERENCE, metrics: ["fid"] }),
      /b\.png: not a PNG or JPEG file \(first bytes: 74 68 69 73\)/,
    );

    const noWeights = { ...ctx, extractor: undefined };
    const saved = Deno.env.get("DIGIT_INCEPTION_WEIGHTS");
    Deno.env.delete("DIGIT_INCEPTION_WEIGHTS");
    try {
      await rejects(
        () => runEval(params({ generated: GENERATED, metrics: ["is"], is_splits: 2 }), noWeights),
        /set inception_weights/,
      );
    } finally {
      if (saved !== undefined) Deno.env.set("DIGIT_INCEPTION_WEIGHTS", saved);
    }
    await rejects(
      () =>
        runEval(
          params({
            generated: GENERATED,
            metrics: ["is"],
            is_splits: 2,
            inception_weights: `${dir}/w.pth`,
          }),
          noWeights,
        ),
      /w\.pth' does not exist; the FID Inception-v3 weights are one of/,
    );
    expect(() => params({ generated: GENERATED, metrics: ["kid"] })).toThrow(
      /expected fid, is, prc or fd:<encoder name>/,
    );
  });
});

it("image folders: non-recursive, png/jpg/jpeg in any case, sorted by code point", async () => {
  await withTemp(async (dir) => {
    const png = encodePng({ width: 2, height: 2, data: new Uint8Array(12) });
    for (const f of ["b.PNG", "a.jpeg", "B.jpg", "c.gif", "d.png.partial"]) {
      await Deno.writeFile(`${dir}/${f}`, png);
    }
    await Deno.mkdir(`${dir}/sub`);
    await Deno.writeFile(`${dir}/sub/e.png`, png);
    const folder = await ImageFolder.open(dir);
    expect(folder.files.map((f) => f.slice(dir.length + 1))).toEqual([
      "B.jpg",
      "a.jpeg",
      "b.PNG",
    ]);
    expect(folder.skipped.map((f) => f.slice(dir.length + 1))).toEqual([
      "c.gif",
      "d.png.partial",
    ]);
    expect(await folder.checkSizes()).toEqual({ width: 2, height: 2 });
  });
});

it("probeImageSize reads PNG and JPEG headers (baseline, progressive, CMYK, gray) like the decoders", async () => {
  const dirs = [
    new URL("./fixtures/image/jpeg/", import.meta.url).pathname,
    new URL("./fixtures/image/png/", import.meta.url).pathname,
  ];
  let checked = 0;
  for (const dir of dirs) {
    for (const e of Deno.readDirSync(dir)) {
      if (e.name.startsWith("truncated")) continue;
      const path = dir + e.name;
      let img;
      try {
        img = await readImage(path);
      } catch {
        continue; // files the decoders reject on purpose
      }
      expect(await probeImageSize(path), path).toEqual({ width: img.width, height: img.height });
      checked++;
    }
  }
  expect(checked, `only ${checked} files checked`).toBeGreaterThanOrEqual(30);
});

it("prepare-imagenet-val: ImageFolder order, {i:05d}.png, Resize(256)+CenterCrop(256) as torchvision", async () => {
  await withTemp(async (dir) => {
    const photo = await Deno.readFile(FIX + "prepare/photo.png");
    // An ImageNet root: val/<class>/..., with a nested folder and a non-image file.
    for (
      const f of [
        "val/n02/x.png",
        "val/n01/b.PNG",
        "val/n01/a.png",
        "val/n01/z/c.png",
        "val/n01/readme.txt",
      ]
    ) {
      await Deno.mkdir(`${dir}/src/${f.slice(0, f.lastIndexOf("/"))}`, { recursive: true });
      await Deno.writeFile(`${dir}/src/${f}`, photo);
    }
    const { files, classes } = await imageNetValFiles(`${dir}/src`);
    expect(classes).toBe(2);
    expect(files.map((f) => f.slice(`${dir}/src/val/`.length))).toEqual([
      "n01/a.png",
      "n01/b.PNG",
      "n01/z/c.png",
      "n02/x.png",
    ]);
    expect(await prepareImageNetVal(`${dir}/src`, `${dir}/out`)).toBe(4);
    const names = [...Deno.readDirSync(`${dir}/out`)].map((e) => e.name).sort();
    expect(names).toEqual(["00000.png", "00001.png", "00002.png", "00003.png"]);
    const img = await readImage(`${dir}/out/00002.png`);
    expect([img.width, img.height]).toEqual([256, 256]);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", img.data.slice()));
    expect(Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("")).toBe(
      expected.prepare_photo_256_sha256,
    );
    await rejects(
      () => prepareImageNetVal(`${dir}/nothing`, `${dir}/out2`),
      /source '.*nothing' is not a folder/,
    );
  });
});
