/**
 * Tokenizing a whole dataset into a token file (core/io/tokens.ts: a safetensors file with
 * `tokens` I32 (N, H*W) in raster order without dictionary offset, optional `labels` I32 (N),
 * and metadata format "digit-tokens", vocab K, height, width, source). Stage 1 and stage 2
 * read it with readTokenFile.
 *
 * Images go through Resize(256, bicubic) + CenterCrop(256) by default, then the tokenizer
 * (for DINOv2: normalise, bicubic to 224, "l3" features, nearest centroid).
 */

import type { Dataset } from "../../core/data/dataset.ts";
import { stackImages } from "../../core/data/loader.ts";
import type { Tokenizer } from "../../core/interfaces.ts";
import { type TokenFile, writeTokenFile } from "../../core/io/tokens.ts";
import { hashBits, Rng } from "../../core/random.ts";
import type { KMeansLogger } from "../kmeans/lloyd.ts";
import { acceptedImageSizes, KMeansTokenizer } from "./kmeans_tokenizer.ts";
import { cropTransform, type ImageTransform } from "./transforms.ts";

export interface TokenizeDatasetOptions {
  dataset: Dataset;
  tokenizer: Tokenizer;
  /** Token file to write. */
  out: string;
  /** Images per tokenizer call. */
  batchSize?: number;
  /** Default: Resize + CenterCrop to the encoder's image size (256 for DINOv2). */
  transform?: ImageTransform;
  /** Seed of random transforms (per image). */
  seed?: number;
  /** Store the dataset's labels (default: when it has classes). */
  labels?: boolean;
  log?: KMeansLogger;
  signal?: AbortSignal;
  /**
   * Only images [start, end) (a shard's slice); the file then holds end - start grids.
   * `start` should be a multiple of batchSize so the batches are those of a whole run.
   */
  range?: { start: number; end: number };
}

export async function tokenizeDataset(opts: TokenizeDatasetOptions): Promise<TokenFile> {
  const { dataset, tokenizer } = opts;
  const batchSize = opts.batchSize ?? 16;
  const seed = opts.seed ?? 0;
  const side = tokenizer instanceof KMeansTokenizer
    ? acceptedImageSizes(tokenizer.encoder)[0]
    : 256;
  const transform = opts.transform ?? cropTransform(side, "center", false);
  const withLabels = opts.labels ?? dataset.numClasses > 0;
  const first = opts.range?.start ?? 0;
  const last = opts.range?.end ?? dataset.length;
  if (
    !(Number.isInteger(first) && Number.isInteger(last) && 0 <= first && first <= last &&
      last <= dataset.length)
  ) {
    throw new Error(
      `tokenize: range [${first}, ${last}) is outside the ${dataset.length} images of ${dataset.name}`,
    );
  }
  const N = last - first;
  const L = tokenizer.gridSize * tokenizer.gridSize;
  const tokens = new Int32Array(N * L);
  const labels = withLabels ? new Int32Array(N) : undefined;
  for (let s = 0; s < N; s += batchSize) {
    opts.signal?.throwIfAborted();
    // Dataset indices (global), so each image's transform seed does not depend on the slice.
    const idx = Array.from({ length: Math.min(batchSize, N - s) }, (_, i) => first + s + i);
    const samples = await Promise.all(idx.map((i) => dataset.get(i)));
    const images = samples.map((smp, j) => transform(smp.image, new Rng(hashBits(seed, idx[j]))));
    const grid = await tokenizer.tokenize(stackImages(images));
    tokens.set(grid.tokens, s * L);
    if (labels) samples.forEach((smp, j) => (labels[s + j] = smp.label));
    opts.log?.progress?.("tokenize", s + idx.length, N);
  }
  const file: TokenFile = {
    tokens,
    count: N,
    height: tokenizer.gridSize,
    width: tokenizer.gridSize,
    vocab: tokenizer.vocabSize,
    labels,
    source: `${tokenizer.name} on ${dataset.name}`,
    ...(labels && dataset.classNames ? { classNames: dataset.classNames } : {}),
  };
  await writeTokenFile(opts.out, file);
  opts.log?.info(
    `tokenize: wrote ${N} x ${L} tokens (vocabulary ${tokenizer.vocabSize}) to ${opts.out}`,
  );
  return file;
}
