/**
 * The K-Means tokenizer: with the DINOv2 fixture its tokens are the nearest centroids of
 * PyTorch's "l3" features (float64 argmin on the host as the reference); size mismatches are
 * reported; and the dump -> fit -> tokenize commands run end to end (resumable dump) with the
 * example random-projection encoder, directly and through the task runner.
 */

import { expect, it } from "./lib/test.ts";
import { cpuBackend } from "../core/device.ts";
import type { Dataset, Sample } from "../core/data/dataset.ts";
import type { ImageBatch } from "../core/interfaces.ts";
import { readNpz } from "../core/io/npy.ts";
import { loadStateDict } from "../core/io/state_dict.ts";
import { readTokenFile } from "../core/io/tokens.ts";
import { hashBits, uniformAt } from "../core/random.ts";
import { memoryLogger, Registry } from "../core/registry.ts";
import { loadTask, runTask } from "../core/tasks.ts";
import { liveStorages, tidy } from "../core/tensor.ts";
import { Dinov2Encoder, loadDinov2 } from "../plugins/dinov2/mod.ts";
import { readCentroids } from "../plugins/kmeans/mod.ts";
import {
  dumpFeatures,
  fitCentroids,
  keptImages,
  KMeansTokenizer,
  plugin as tokenizerPlugin,
  shardFileName,
  tokenizeDataset,
} from "../plugins/tokenizer/mod.ts";
import { cropTransform } from "../plugins/tokenizer/transforms.ts";
import { RandomProjectionEncoder } from "../examples/custom-encoder/plugin.ts";
import { Rng } from "../core/random.ts";
import { stackImages } from "../core/data/loader.ts";
import { openDataset } from "../core/data/mod.ts";

const fx = new URL("./fixtures/dinov2/", import.meta.url).pathname;

/** Index of the nearest centroid in float64, and the gap to the second nearest. */
function nearest(
  x: ArrayLike<number>,
  xo: number,
  c: Float32Array,
  k: number,
  d: number,
): { label: number; gap: number } {
  let best = Infinity, second = Infinity, label = -1;
  for (let j = 0; j < k; j++) {
    let s = 0;
    for (let t = 0; t < d; t++) s += (x[xo + t] - c[j * d + t]) ** 2;
    if (s < best) [second, best, label] = [best, s, j];
    else if (s < second) second = s;
  }
  return { label, gap: second - best };
}

it("DINOv2 tokens are the nearest centroids of torch's l3 features", async () => {
  const before = liveStorages();
  const meta = JSON.parse(await Deno.readTextFile(fx + "tiny_vit.json"));
  const io = await readNpz(fx + "tiny_vit_io.npz");
  const model = await loadDinov2(await loadStateDict(fx + "tiny_vit.pth"), { heads: meta.heads });
  const encoder = new Dinov2Encoder(model);
  const l3 = io.get("l3_digit")!.data; // (2, 256, D) from torch
  const D = meta.dim, K = 12, L = 256;
  // Centroids: feature rows spread over both images, so every cluster is used.
  const c = new Float32Array(K * D);
  for (let j = 0; j < K; j++) {
    c.set(l3.subarray((j * 41 % 512) * D, ((j * 41 % 512) + 1) * D), j * D);
  }
  const tok = new KMeansTokenizer(encoder, { data: c, k: K, dim: D }, { batchSize: 1 });
  expect(tok.vocabSize).toBe(K);
  expect(tok.gridSize).toBe(16);
  const img = io.get("images")!;
  const images: ImageBatch = { data: Uint8Array.from(img.data), count: 2, height: 256, width: 256 };
  const grid = await tok.tokenize(images);
  expect([grid.count, grid.height, grid.width, grid.tokens.length]).toEqual([2, 16, 16, 2 * L]);
  let checked = 0;
  for (let r = 0; r < 2 * L; r++) {
    const { label, gap } = nearest(l3, r * D, c, K, D);
    if (gap < 1e-3) continue; // too close to call between float32 and float64
    checked++;
    expect(grid.tokens[r], `row ${r}`).toBe(label);
  }
  expect(checked, `only ${checked} rows were clear of ties`).toBeGreaterThanOrEqual(0.98 * 2 * L);
  console.log(`  ${checked}/${2 * L} rows checked, ${new Set(grid.tokens).size} distinct tokens`);
  expect(new Set(grid.tokens).size, "tokens use many clusters").toBeGreaterThanOrEqual(K / 2);
  // featuresToTokens on the encoder's own features gives the same grid.
  tidy(() => {
    const f = encoder.encode(encoder.preprocess(images));
    expect(Array.from(tok.featuresToTokens(f).dataSync())).toEqual(Array.from(grid.tokens));
  });
  tok.dispose();
  encoder.dispose();
  expect(liveStorages(), "live storages").toBe(before);
});

it("mismatched centroids and images are reported with both sizes", () => {
  const enc = new RandomProjectionEncoder({ imageSize: 32, patch: 8, dim: 16, seed: 0 });
  expect(() => new KMeansTokenizer(enc, { data: new Float32Array(4 * 24), k: 4, dim: 24 })).toThrow(
    /centroids have dimension 24 \(4 x 24\) but encoder 'random-projection-32px-p8-d16' gives features of dimension 16/,
  );
  const tok = new KMeansTokenizer(enc, { data: new Float32Array(4 * 16), k: 4, dim: 16 });
  const bad: ImageBatch = { data: new Uint8Array(40 * 40 * 3), count: 1, height: 40, width: 40 };
  return expect(() => tok.tokenize(bad)).rejects.toThrow(
    /images are 40x40 but encoder 'random-projection-32px-p8-d16' takes 32x32/,
  )
    .finally(() => {
      tok.dispose();
      enc.dispose();
    });
});

it("the random-projection encoder equals its closed form (float64 host reference)", () => {
  const enc = new RandomProjectionEncoder({ imageSize: 16, patch: 4, dim: 5, seed: 3 });
  const data = Uint8Array.from({ length: 2 * 16 * 16 * 3 }, (_, i) => hashBits(1, i) & 255);
  tidy(() => {
    const x = enc.preprocess({ data, count: 2, height: 16, width: 16 });
    const f = enc.encode(x).dataSync();
    // The projection matrix is the seeded normal stream, as ops.randn draws it.
    const g = new Rng(3);
    const proj = new Float32Array(5 * 48);
    g.fillNormal(proj, 0, 1 / Math.sqrt(48));
    let err = 0;
    for (let n = 0; n < 2; n++) {
      for (let py = 0; py < 4; py++) {
        for (let px = 0; px < 4; px++) {
          for (let o = 0; o < 5; o++) {
            let s = 0;
            for (let c = 0; c < 3; c++) {
              for (let y = 0; y < 4; y++) {
                for (let xx = 0; xx < 4; xx++) {
                  const v = data[((n * 16 + py * 4 + y) * 16 + px * 4 + xx) * 3 + c] / 127.5 - 1;
                  s += v * proj[o * 48 + (c * 16 + y * 4 + xx)];
                }
              }
            }
            err = Math.max(err, Math.abs(s - f[((n * 16) + py * 4 + px) * 5 + o]));
          }
        }
      }
    }
    expect(err, `max abs error ${err}`).toBeLessThan(1e-4);
  });
  enc.dispose();
});

/** A small labelled dataset of 70x64 images (non-square, so resize + crop matter). */
function toyDataset(length: number): Dataset {
  return {
    name: `toy-${length}`,
    length,
    numClasses: 3,
    classNames: ["red", "green", "blue"],
    get(i: number): Promise<Sample> {
      const w = 70, h = 64;
      const data = new Uint8Array(w * h * 3);
      const hue = i % 3;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const o = (y * w + x) * 3;
          const blob = (x - 20 - (i * 7) % 30) ** 2 + (y - 30) ** 2 < 150;
          data[o + hue] = blob ? 230 : 40 + ((x * 3 + y) & 63);
          data[o + ((hue + 1) % 3)] = Math.floor(255 * uniformAt(i, y * w + x) * 0.3);
          data[o + ((hue + 2) % 3)] = blob ? 20 : 120;
        }
      }
      return Promise.resolve({ image: { width: w, height: h, data }, label: hue });
    },
  };
}

it("dump-features (resumable) -> fit-kmeans -> tokenize-dataset with a custom encoder", async () => {
  const dir = await Deno.makeTempDir();
  const before = liveStorages();
  const enc = new RandomProjectionEncoder({ imageSize: 32, patch: 8, dim: 16, seed: 0 });
  try {
    const dataset = toyDataset(30);
    const log = memoryLogger();
    const opts = {
      dataset,
      encoder: enc,
      outDir: `${dir}/features`,
      fraction: 0.6,
      seed: 5,
      imagesPerShard: 4,
      batchSize: 3,
      log,
    };
    const m = await dumpFeatures(opts);
    const kept = keptImages(30, 0.6, 5);
    expect(m.images).toEqual(kept);
    expect(kept.length > 10 && kept.length < 30).toBeTruthy();
    expect(m.shards.length).toBe(Math.ceil(kept.length / 4));
    expect(m.tokensPerImage).toBe(16);
    expect(m.complete).toBeTruthy();
    const shard1 = `${dir}/features/${shardFileName(1)}`;
    const bytes1 = await Deno.readFile(shard1);

    // A second run finds every shard complete; a deleted shard is rebuilt identically.
    log.lines.length = 0;
    await dumpFeatures(opts);
    expect(log.lines.filter((l) => l.includes("already complete")).length).toBe(m.shards.length);
    await Deno.remove(shard1);
    await Deno.writeFile(`${shard1}.partial`, new Uint8Array(10)); // an interrupted write
    log.lines.length = 0;
    await dumpFeatures(opts);
    expect(log.lines.filter((l) => l.includes("already complete")).length).toBe(
      m.shards.length - 1,
    );
    expect(await Deno.readFile(shard1)).toEqual(bytes1);
    await expect(() => dumpFeatures({ ...opts, seed: 6 })).rejects.toThrow(
      /holds features of another run \(seed was 5, now 6\)/,
    );

    const { path, result } = await fitCentroids(`${dir}/features/features.json`, {
      k: 6,
      iterations: 8,
      init: "kmeans++",
      seed: 1,
    });
    expect(result.trainingRows).toBe(kept.length * 16);
    const cents = readCentroids(path);
    expect([cents.k, cents.dim]).toEqual([6, 16]);
    expect(path.endsWith("/km_6.npy")).toBeTruthy();

    const tok = new KMeansTokenizer(enc, cents, { batchSize: 7 });
    const file = await tokenizeDataset({
      dataset,
      tokenizer: tok,
      out: `${dir}/train.tokens`,
      batchSize: 4,
    });
    tok.dispose();
    const back = await readTokenFile(`${dir}/train.tokens`);
    expect([back.count, back.height, back.width, back.vocab]).toEqual([30, 4, 4, 6]);
    expect(Array.from(back.labels!)).toEqual(Array.from({ length: 30 }, (_, i) => i % 3));
    expect(back.classNames, "the dataset's class names, for stage 1's checkpoint").toEqual([
      "red",
      "green",
      "blue",
    ]);
    expect(back.tokens).toEqual(file.tokens);
    // Reference: float64 nearest centroid of the encoder's features of the center crops.
    const crop = cropTransform(32, "center", false);
    const imgs = await Promise.all(
      Array.from(
        { length: 30 },
        async (_, i) => crop((await dataset.get(i)).image, new Rng(0)),
      ),
    );
    const feats = tidy(() => enc.encode(enc.preprocess(stackImages(imgs))).dataSync().slice());
    for (let r = 0; r < 30 * 16; r++) {
      const { label, gap } = nearest(feats, r * 16, cents.data, 6, 16);
      if (gap > 1e-4) expect(back.tokens[r], `token ${r}`).toBe(label);
    }
  } finally {
    enc.dispose();
    await Deno.remove(dir, { recursive: true });
  }
  expect(liveStorages(), "live storages").toBe(before);
});

it("the example task runs the three steps through the task runner, then skips them", async () => {
  const out = await Deno.makeTempDir();
  try {
    const registry = new Registry();
    await registry.use(tokenizerPlugin);
    const before = liveStorages();
    const task = new URL("../examples/custom-encoder/task.yaml", import.meta.url).pathname;
    const plan = await loadTask(task, { registry, outputDir: out, device: "cpu" });
    const log = memoryLogger();
    const first = await runTask(plan, { registry, log, signal: new AbortController().signal });
    expect(first.ran).toEqual(["features", "kmeans", "tokens"]);
    const tokens = await readTokenFile(plan.steps[2].outputs.tokens);
    expect([tokens.count, tokens.height, tokens.vocab]).toEqual([96, 8, 32]);
    expect(tokens.labels && tokens.labels.length === 96).toBeTruthy();
    const again = await runTask(plan, { registry, log, signal: new AbortController().signal });
    expect(again.skipped).toEqual(["features", "kmeans", "tokens"]);

    // The registered `kmeans` tokenizer, built from the same encoder and centroids, gives the
    // file's tokens for image 5.
    const ctx = {
      registry,
      device: "cpu" as const,
      backend: cpuBackend(),
      log,
      outputDir: out,
      signal: new AbortController().signal,
    };
    const tok = await registry.create("tokenizers", "kmeans", {
      encoder: { name: "random-projection", options: { image_size: 64, patch: 8, dim: 32 } },
      centroids: plan.steps[1].outputs.centroids,
    }, ctx);
    const ds = await openDataset({ kind: "shapes", size: 64, length: 96, seed: 0 });
    const grid = await tok.tokenize(stackImages([(await ds.get(5)).image]));
    expect(Array.from(grid.tokens)).toEqual(Array.from(tokens.tokens.subarray(5 * 64, 6 * 64)));
    (tok as KMeansTokenizer).dispose();
    expect(liveStorages(), "live storages (the tokenizer disposes the encoder it made)").toBe(
      before,
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
