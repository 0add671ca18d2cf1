/**
 * Inception-v3 pool3 statistics of an image folder (a FID reference set, typically), by
 * blocks, so that the work can be sharded and the result still be one run's bytes:
 *
 *   files (sorted) -> blocks of `block` images -> each block's moments on its own
 *                  -> the blocks' moments folded in order (stats.ts mergeMoments) -> mu, sigma
 *
 * A shard computes whole blocks and stores their moments (float64, never the features); the
 * merge folds every shard's blocks in order: the same arithmetic as one process. Blocks are
 * multiples of the batch size, so every image is extracted in the same batch either way.
 */

import type { ImageBatch } from "../../core/interfaces.ts";
import { joinPath } from "../../core/tasks.ts";
import type { InceptionFeatureExtractor } from "../inception/extractor.ts";
import { POOL3_DIM } from "../inception/model.ts";
import { ImageFolder } from "./folder.ts";
import { FeatureStats, type GaussianStats, mergeMoments, type Moments } from "./stats.ts";
import { statsFromMoments } from "./stats.ts";

export interface BlockOptions {
  batchSize: number;
  /** Images per block; a multiple of batchSize. */
  block: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** The moments of every block of files [start, end) (start on a block boundary). */
export async function blockMoments(
  extractor: Pick<InceptionFeatureExtractor, "extract">,
  folder: ImageFolder,
  range: { start: number; end: number },
  opts: BlockOptions,
): Promise<Moments[]> {
  if (opts.block % opts.batchSize !== 0) {
    throw new Error(
      `feature-stats: block ${opts.block} must be a multiple of batch_size ${opts.batchSize}`,
    );
  }
  const out: Moments[] = [];
  for (let start = range.start; start < range.end; start += opts.block) {
    const end = Math.min(range.end, start + opts.block);
    const stats = new FeatureStats(POOL3_DIM);
    const batches = folder.batches(opts.batchSize, { range: { start, end }, signal: opts.signal });
    for await (const batch of batches) {
      stats.update((await extractor.extract(batch as ImageBatch)).pool3);
      opts.onProgress?.(start - range.start + stats.count, range.end - range.start);
    }
    out.push(stats.moments());
  }
  return out;
}

/** Blocks folded in order into mean and covariance. */
export function foldBlocks(blocks: readonly Moments[], dim = POOL3_DIM): GaussianStats {
  const total: Moments = { mean: new Float64Array(dim), m2: new Float64Array(dim * dim), count: 0 };
  for (const b of blocks) mergeMoments(total, b, dim);
  return statsFromMoments(total, dim);
}

const BLOCKS_JSON = "blocks.json", BLOCKS_DATA = "blocks.f64";
/** The file every shard writes (the merge checks the slices with it). */
export const BLOCKS_FILE = BLOCKS_JSON;

/** A shard's block moments: counts in blocks.json, then mean and m2 of each block in blocks.f64. */
export async function writeBlocks(dir: string, blocks: readonly Moments[], dim: number) {
  const data = new Float64Array(blocks.length * (dim + dim * dim));
  blocks.forEach((b, i) => {
    data.set(b.mean, i * (dim + dim * dim));
    data.set(b.m2, i * (dim + dim * dim) + dim);
  });
  await Deno.writeFile(joinPath(dir, BLOCKS_DATA), new Uint8Array(data.buffer));
  await Deno.writeTextFile(
    joinPath(dir, BLOCKS_JSON),
    JSON.stringify({ dim, counts: blocks.map((b) => b.count) }) + "\n",
  );
}

export async function readBlocks(dir: string): Promise<Moments[]> {
  const { dim, counts } = JSON.parse(await Deno.readTextFile(joinPath(dir, BLOCKS_JSON))) as {
    dim: number;
    counts: number[];
  };
  const bytes = await Deno.readFile(joinPath(dir, BLOCKS_DATA));
  const per = dim + dim * dim;
  if (bytes.length !== counts.length * per * 8) {
    throw new Error(
      `${dir}: ${BLOCKS_DATA} holds ${bytes.length} bytes, not ${counts.length} blocks of dim ${dim}`,
    );
  }
  const data = new Float64Array(bytes.buffer, bytes.byteOffset, bytes.length / 8);
  return counts.map((count, i) => ({
    count,
    mean: data.slice(i * per, i * per + dim),
    m2: data.slice(i * per + dim, (i + 1) * per),
  }));
}

/** Opens the folder and checks that it holds at least two images (a covariance needs them). */
export async function openReference(path: string): Promise<ImageFolder> {
  const folder = await ImageFolder.open(path, "feature-stats: images");
  if (folder.files.length < 2) {
    throw new Error(
      `feature-stats: '${path}' holds ${folder.files.length} image(s); statistics need at least 2`,
    );
  }
  return folder;
}
