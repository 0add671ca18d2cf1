/**
 * The stage-2 ablations of the README ("Where it breaks"): token files that stand in for the
 * semantic tokens, and the entropy table that says how much of a VQ code a token fixes.
 *
 *   deno run -A examples/stage2_ablation.ts codebook-tokens VQGAN_CKPT VQ_TOKENS OUT_DIR
 *       K-Means(64) of the VQGAN's codebook; a token is the cluster of the image's code at that
 *       position: tokens that fix colour and pattern. Writes OUT_DIR/{train,valid}.tokens, the
 *       valid set from 256 held-out shapes (seed 1).
 *   deno run -A examples/stage2_ablation.ts coverage-tokens OUT_DIR [--variation centred]
 *       K-Means(64) of each 4x4 patch's shape coverage (from the renderer): tokens that fix local
 *       shape and nothing of colour. Train: 2048 shapes of seed 0; valid: 256 of seed 1.
 *   deno run -A examples/stage2_ablation.ts entropy TOKENS CODES
 *       Plug-in entropies (nats) of the codes alone, given the token at the same position, and
 *       given the position; the codes may be another token file (e.g. coverage tokens).
 *
 * Point `train-stage2` (task.tokens) and `generate-images` (tokens) at the files written here.
 */

import { parseArgs } from "node:util";
import { renderShape, sampleShapeParams, type ShapeVariation } from "../core/data/shapes.ts";
import { ShapesDataset } from "../core/data/shapes.ts";
import { readTokenFile, type TokenFile, writeTokenFile } from "../core/io/tokens.ts";
import * as ops from "../core/ops/mod.ts";
import { hashBits, Rng } from "../core/random.ts";
import { CentroidIndex } from "../plugins/kmeans/assign.ts";
import { fitKMeans } from "../plugins/kmeans/lloyd.ts";
import { memorySource } from "../plugins/kmeans/source.ts";
import { encodeDataset } from "../plugins/vqgan/encode.ts";
import { loadVqgan } from "../plugins/vqgan/load.ts";

const K = 64;

/** K-Means(K) of `rows` (n x dim) and the label of every row. */
async function cluster(rows: Float32Array, dim: number, more: Float32Array[] = []) {
  const { centroids } = await fitKMeans(memorySource(rows, dim), { k: K, seed: 3 });
  const index = new CentroidIndex(centroids, K, dim);
  const label = (x: Float32Array) =>
    Int32Array.from(index.assign(ops.tensor(x, [x.length / dim, dim])).dataSync());
  return [label(rows), ...more.map(label)];
}

async function codebookTokens(vqganPath: string, codesPath: string, out: string) {
  const vqgan = await loadVqgan(vqganPath);
  await Deno.mkdir(out, { recursive: true });
  const validCodes = `${out}/vq_valid.tokens`;
  const valid = new ShapesDataset({ size: vqgan.imageSize, length: 256, seed: 1 });
  await encodeDataset(vqgan, valid, validCodes);
  const weight = vqgan.quantize.embedding.weight;
  const [clusterOf] = await cluster(weight.dataSync() as Float32Array, weight.shape[1]);
  for (const [from, to] of [[codesPath, "train.tokens"], [validCodes, "valid.tokens"]]) {
    const codes = await readTokenFile(from);
    const tokens = codes.tokens.map((c) => clusterOf[c]);
    await writeTokenFile(`${out}/${to}`, { ...codes, tokens, vocab: K, source: "codebook" });
  }
}

/** Per image, the 8x8 grid of 16-d coverage patches (4x4 pixels each) of 32x32 shapes. */
function coveragePatches(seed: number, count: number, variation: ShapeVariation) {
  const patches = new Float32Array(count * 64 * 16);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    // The item stream of ShapesDataset: label i % 10, seed hashBits(seed, i).
    const label = i % 10, itemSeed = hashBits(seed, i);
    const params = sampleShapeParams(label, 32, new Rng(itemSeed), variation);
    const { coverage } = renderShape(params, 32, itemSeed ^ 0x9e3779b9);
    labels[i] = label;
    for (let cell = 0; cell < 64; cell++) {
      const gy = Math.floor(cell / 8), gx = cell % 8;
      for (let p = 0; p < 16; p++) {
        const y = gy * 4 + Math.floor(p / 4), x = gx * 4 + (p % 4);
        patches[(i * 64 + cell) * 16 + p] = coverage[y * 32 + x];
      }
    }
  }
  return { patches, labels };
}

async function coverageTokens(out: string, variation: ShapeVariation) {
  await Deno.mkdir(out, { recursive: true });
  const train = coveragePatches(0, 2048, variation), valid = coveragePatches(1, 256, variation);
  const [trainTokens, validTokens] = await cluster(train.patches, 16, [valid.patches]);
  for (
    const [name, tokens, labels] of [
      ["train.tokens", trainTokens, train.labels],
      ["valid.tokens", validTokens, valid.labels],
    ] as const
  ) {
    const file: TokenFile = {
      tokens,
      count: labels.length,
      height: 8,
      width: 8,
      vocab: K,
      labels,
      source: `coverage of shapes (${variation})`,
    };
    await writeTokenFile(`${out}/${name}`, file);
  }
}

/** H(code | key) in nats, plug-in estimate over every (image, position). */
function conditionalEntropy(codes: TokenFile, key: (image: number, pos: number) => number) {
  const L = codes.height * codes.width;
  const joint = new Map<string, number>(), marginal = new Map<number, number>();
  for (let n = 0; n < codes.count; n++) {
    for (let i = 0; i < L; i++) {
      const k = key(n, i), pair = `${k}:${codes.tokens[n * L + i]}`;
      joint.set(pair, (joint.get(pair) ?? 0) + 1);
      marginal.set(k, (marginal.get(k) ?? 0) + 1);
    }
  }
  let h = 0;
  const total = codes.count * L;
  for (const [pair, c] of joint) {
    h -= (c / total) * Math.log(c / marginal.get(Number(pair.split(":")[0]))!);
  }
  return h;
}

async function entropy(tokensPath: string, codesPath: string) {
  const tokens = await readTokenFile(tokensPath), codes = await readTokenFile(codesPath);
  const L = codes.height * codes.width;
  if (tokens.count !== codes.count || tokens.height * tokens.width !== L) {
    throw new Error(`${tokensPath} and ${codesPath} do not hold the same grids`);
  }
  const fmt = (h: number) => h.toFixed(3);
  console.log(`H(code)                  ${fmt(conditionalEntropy(codes, () => 0))} nats`);
  console.log(
    `H(code | token there)    ${
      fmt(conditionalEntropy(codes, (n, i) => tokens.tokens[n * L + i]))
    }`,
  );
  console.log(`H(code | position)       ${fmt(conditionalEntropy(codes, (_n, i) => i))}`);
}

if (import.meta.main) {
  const { positionals, values } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { variation: { type: "string", default: "full" } },
  });
  const [command, ...rest] = positionals;
  if (command === "codebook-tokens" && rest.length === 3) {
    await codebookTokens(rest[0], rest[1], rest[2]);
  } else if (command === "coverage-tokens" && rest.length === 1) {
    await coverageTokens(rest[0], values.variation as ShapeVariation);
  } else if (command === "entropy" && rest.length === 2) {
    await entropy(rest[0], rest[1]);
  } else {
    console.error("usage: see the header of examples/stage2_ablation.ts");
    Deno.exit(2);
  }
}
