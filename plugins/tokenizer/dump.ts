/**
 * Dumping encoder features of a dataset for K-Means (DiGIT preprocess/dump_features.py):
 * a seeded fraction of the images (DiGIT keeps each with probability 0.1), each transformed
 * (default: Resize 224 bicubic, RandomCrop 224, RandomHorizontalFlip) and encoded; every
 * patch vector becomes one row.
 *
 * Output folder:
 *   features.json         the manifest (below); `complete: true` once every shard is written
 *   features_00000.npy    (images * L, D) float32 rows of the shard's images, in order
 *   ...
 * Shards are written to `<name>.partial` and renamed when complete, so a re-run skips every
 * shard file that exists and re-encodes only the rest. Which images are kept, and each
 * image's random crop, depend only on (seed, dataset index), so a resumed run is identical.
 */

import type { Dataset } from "../../core/data/dataset.ts";
import { stackImages } from "../../core/data/loader.ts";
import type { Encoder } from "../../core/interfaces.ts";
import { hashBits, Rng, uniformAt } from "../../core/random.ts";
import { tidyAsync } from "../../core/tensor.ts";
import type { KMeansLogger } from "../kmeans/lloyd.ts";
import { npyMatrixInfo, NpyMatrixWriter } from "../kmeans/npy_matrix.ts";
import { cropTransform, type ImageTransform } from "./transforms.ts";

export interface FeatureManifest {
  format: "digit-features";
  version: 1;
  encoder: string;
  dim: number;
  /** Feature rows per image (grid^2). */
  tokensPerImage: number;
  dataset: string;
  datasetLength: number;
  fraction: number;
  seed: number;
  imagesPerShard: number;
  /** Dataset indices of the kept images, in row order. */
  images: number[];
  shards: { file: string; images: number; rows: number }[];
  complete: boolean;
}

export interface DumpFeaturesOptions {
  dataset: Dataset;
  encoder: Encoder;
  outDir: string;
  /** Probability of keeping each image (DiGIT: 0.1). */
  fraction?: number;
  seed?: number;
  imagesPerShard?: number;
  /** Images per encoder call. */
  batchSize?: number;
  /** Default: DiGIT's K-Means transform at the encoder's input size. */
  transform?: ImageTransform;
  log?: KMeansLogger;
  signal?: AbortSignal;
}

export const MANIFEST = "features.json";

export function shardFileName(i: number): string {
  return `features_${String(i).padStart(5, "0")}.npy`;
}

/** Dataset indices kept for a fraction and seed: image i is kept when u(seed, i) < fraction. */
export function keptImages(length: number, fraction: number, seed: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < length; i++) if (fraction >= 1 || uniformAt(seed, i) < fraction) out.push(i);
  return out;
}

export async function readManifest(path: string): Promise<FeatureManifest> {
  const m = JSON.parse(await Deno.readTextFile(path)) as FeatureManifest;
  if (m.format !== "digit-features") {
    throw new Error(`${path}: not a feature manifest (format '${m.format}')`);
  }
  return m;
}

function sameRun(a: FeatureManifest, b: FeatureManifest): string | null {
  for (
    const k of [
      "encoder",
      "dim",
      "tokensPerImage",
      "dataset",
      "datasetLength",
      "fraction",
      "seed",
      "imagesPerShard",
    ] as const
  ) {
    if (a[k] !== b[k]) return `${k} was ${JSON.stringify(a[k])}, now ${JSON.stringify(b[k])}`;
  }
  return null;
}

/**
 * The manifest a dump will have (`complete: false`): which images are kept and how they are
 * grouped into feature files. It depends only on the dataset, the encoder and the options,
 * so every process of a sharded dump computes the same one.
 */
export function planFeatureDump(opts: DumpFeaturesOptions): FeatureManifest {
  const { dataset, encoder } = opts;
  const fraction = opts.fraction ?? 0.1;
  const seed = opts.seed ?? 0;
  const perShard = opts.imagesPerShard ?? 512;
  if (!(fraction > 0 && fraction <= 1)) {
    throw new Error(`dump-features: fraction must be in (0, 1], got ${fraction}`);
  }
  if (!Number.isInteger(perShard) || perShard < 1) {
    throw new Error(`dump-features: imagesPerShard must be >= 1, got ${perShard}`);
  }
  const L = encoder.gridSize * encoder.gridSize;
  const D = encoder.featureDim;
  const images = keptImages(dataset.length, fraction, seed);
  if (images.length === 0) {
    throw new Error(
      `dump-features: a fraction of ${fraction} keeps none of the ${dataset.length} images of ${dataset.name}`,
    );
  }
  const shards: FeatureManifest["shards"] = [];
  for (let s = 0; s * perShard < images.length; s++) {
    const n = Math.min(perShard, images.length - s * perShard);
    shards.push({ file: shardFileName(s), images: n, rows: n * L });
  }
  return {
    format: "digit-features",
    version: 1,
    encoder: encoder.name,
    dim: D,
    tokensPerImage: L,
    dataset: dataset.name,
    datasetLength: dataset.length,
    fraction,
    seed,
    imagesPerShard: perShard,
    images,
    shards,
    complete: false,
  };
}

/** Encodes feature file `s` of the manifest into `outDir` (skipped when already complete there). */
async function writeFeatureFile(
  opts: DumpFeaturesOptions,
  manifest: FeatureManifest,
  s: number,
  outDir: string,
): Promise<void> {
  const { dataset, encoder } = opts;
  const batchSize = opts.batchSize ?? 8;
  const transform = opts.transform ?? cropTransform(encoder.inputSize, "random", true);
  const entry = manifest.shards[s];
  const path = `${outDir}/${entry.file}`;
  if (shardIsComplete(path, entry.rows, manifest.dim)) {
    opts.log?.info(`dump-features: ${entry.file} already complete, skipped`);
    return;
  }
  const writer = new NpyMatrixWriter(path, entry.rows, manifest.dim);
  try {
    const first = s * manifest.imagesPerShard;
    for (let b = 0; b < entry.images; b += batchSize) {
      opts.signal?.throwIfAborted();
      const idx = manifest.images.slice(first + b, first + Math.min(b + batchSize, entry.images));
      const picked = await Promise.all(
        idx.map(async (i) =>
          transform((await dataset.get(i)).image, new Rng(hashBits(manifest.seed, i)))
        ),
      );
      const rows = await tidyAsync(async () =>
        await encoder.encode(encoder.preprocess(stackImages(picked))).data()
      );
      writer.append(rows as Float32Array);
    }
    writer.close();
  } catch (e) {
    writer.abort();
    throw e;
  }
}

/** The kept fraction as given, e.g. 0.1 (not 0.1000000000000000055). */
function shownFraction(m: FeatureManifest): string {
  return String(Number(m.fraction.toPrecision(6)));
}

/** Writes (or completes) the feature shards; returns the manifest. */
export async function dumpFeatures(opts: DumpFeaturesOptions): Promise<FeatureManifest> {
  const { dataset, outDir } = opts;
  const manifest = planFeatureDump(opts);
  const shards = manifest.shards;
  await Deno.mkdir(outDir, { recursive: true });
  const manifestPath = `${outDir}/${MANIFEST}`;
  try {
    const old = await readManifest(manifestPath);
    const diff = sameRun(old, manifest);
    if (diff) {
      throw new Error(
        `dump-features: ${outDir} holds features of another run (${diff}); use an empty folder`,
      );
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    await Deno.writeTextFile(manifestPath, JSON.stringify(manifest));
  }

  const log = opts.log;
  log?.info(
    `dump-features: keeping ${manifest.images.length} of the ${dataset.length} images (fraction ${
      shownFraction(manifest)
    }), ${shards.length} files of up to ${manifest.imagesPerShard} in ${outDir}`,
  );
  // Progress counts the kept images, so it ends at 100%.
  let done = 0;
  for (let s = 0; s < shards.length; s++) {
    opts.signal?.throwIfAborted();
    await writeFeatureFile(opts, manifest, s, outDir);
    await Deno.writeTextFile(
      manifestPath,
      JSON.stringify({ ...manifest, complete: s === shards.length - 1 }),
    );
    done += shards[s].images;
    log?.progress?.("dump-features images", done, manifest.images.length);
  }
  manifest.complete = true;
  await Deno.writeTextFile(manifestPath, JSON.stringify(manifest));
  return manifest;
}

/**
 * One process's part of a sharded dump: the feature files of `slice` (contiguous file
 * indices, see core/shard.ts shardSlice over the manifest's files), written to `outDir`
 * with the unfinished manifest beside them. A feature file is the unit because its images
 * are encoded in fixed batches from its start, so each file is the same bytes whichever
 * process writes it.
 */
export async function dumpFeatureSlice(
  opts: DumpFeaturesOptions,
  slice: (fileCount: number) => { start: number; end: number },
): Promise<FeatureManifest> {
  const manifest = planFeatureDump(opts);
  const { start, end } = slice(manifest.shards.length);
  await Deno.mkdir(opts.outDir, { recursive: true });
  await Deno.writeTextFile(`${opts.outDir}/${MANIFEST}`, JSON.stringify(manifest));
  opts.log?.info(
    `dump-features: feature files ${start}..${
      end - 1
    } of ${manifest.shards.length} in ${opts.outDir}`,
  );
  const total = manifest.shards.slice(start, end).reduce((sum, f) => sum + f.images, 0);
  let done = 0;
  for (let s = start; s < end; s++) {
    opts.signal?.throwIfAborted();
    await writeFeatureFile(opts, manifest, s, opts.outDir);
    done += manifest.shards[s].images;
    opts.log?.progress?.("dump-features images", done, total);
  }
  return manifest;
}

/**
 * Combines the slices of a sharded dump (`parts`, in shard order, each with the file range
 * it wrote) into `outDir`: the feature files are hard-linked (copied where links fail) and
 * the manifest is written complete, byte for byte what a single-process dump writes.
 */
export async function mergeFeatureSlices(
  parts: readonly { dir: string; start: number; end: number }[],
  outDir: string,
  link: (from: string, to: string) => Promise<void>,
): Promise<FeatureManifest> {
  if (parts.length === 0) throw new Error("dump-features merge: no shards");
  const manifest = await readManifest(`${parts[0].dir}/${MANIFEST}`);
  let next = 0;
  for (const part of parts) {
    const mine = await readManifest(`${part.dir}/${MANIFEST}`);
    const diff = sameRun(manifest, mine) ??
      (JSON.stringify(mine.images) !== JSON.stringify(manifest.images)
        ? "the kept images differ"
        : null);
    if (diff) {
      throw new Error(
        `dump-features merge: ${part.dir} is from another run than ${parts[0].dir} (${diff})`,
      );
    }
    if (part.start !== next) {
      throw new Error(
        `dump-features merge: ${part.dir} starts at file ${part.start}, expected ${next}`,
      );
    }
    next = part.end;
  }
  if (next !== manifest.shards.length) {
    throw new Error(
      `dump-features merge: the shards cover ${next} of ${manifest.shards.length} feature files`,
    );
  }
  await Deno.mkdir(outDir, { recursive: true });
  for (const part of parts) {
    for (let s = part.start; s < part.end; s++) {
      const entry = manifest.shards[s];
      const from = `${part.dir}/${entry.file}`;
      if (!shardIsComplete(from, entry.rows, manifest.dim)) {
        throw new Error(`dump-features merge: ${from} is missing or incomplete`);
      }
      await link(from, `${outDir}/${entry.file}`);
    }
  }
  manifest.complete = true;
  await Deno.writeTextFile(`${outDir}/${MANIFEST}`, JSON.stringify(manifest));
  return manifest;
}

function shardIsComplete(path: string, rows: number, dim: number): boolean {
  try {
    const info = npyMatrixInfo(path);
    return info.rows === rows && info.cols === dim;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
