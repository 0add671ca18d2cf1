/**
 * Random-weight pipelines (never trained) in two sizes, for the browser tests and for timing
 * the page: `tiny` (16 px images, 4x4 token grids, one-layer transformers) keeps headless
 * Chromium runs short; `demo` has the shapes of tasks/demo.yaml's models (32 px images, 8x8
 * grids, the `tiny` GPT preset, 64 clusters, 10 classes, a 256-code VQGAN), so timings
 * match what the demo's trained parts would take.
 */

import { Rng } from "../../core/random.ts";
import type { DigitParts } from "../../plugins/preview/model.ts";
import { Stage1GPT } from "../../plugins/stage1/model.ts";
import { Stage2Model, type Stage2Variant } from "../../plugins/stage2/model.ts";
import { VQGAN, VQGAN_PRESETS } from "../../plugins/vqgan/vqgan.ts";

export type PartsSize = "tiny" | "demo";

/** Three parts that fit together (checkParts passes), on the current default backend. */
export function randomParts(size: PartsSize, variant: Stage2Variant, seed = 1): DigitParts {
  const gen = new Rng(seed);
  if (size === "tiny") {
    const gpt = { layers: 1, dim: 32, heads: 2, ffnDim: 64, dropout: 0 };
    const stage1 = new Stage1GPT({ ...gpt, clusters: 16, classes: 4, length: 16 }, gen);
    const stage2 = new Stage2Model(
      { ...gpt, variant, clusters: 16, codebookSize: 32, prefixLength: 16, length: 16 },
      gen,
    );
    const vqgan = new VQGAN({
      ...VQGAN_PRESETS.cpu16,
      ch: 8,
      chMult: [1, 1, 1],
      zChannels: 8,
      embedDim: 8,
      nEmbed: 32,
      normGroups: 4,
    }, gen);
    return {
      stage1: stage1.eval(),
      stage2: stage2.eval(),
      vqgan: vqgan.eval(),
      source: `random ${size} ${variant}`,
    };
  }
  const gpt = { layers: 2, dim: 64, heads: 4, ffnDim: 256, dropout: 0 };
  const stage1 = new Stage1GPT({ ...gpt, clusters: 64, classes: 10, length: 64 }, gen);
  const stage2 = new Stage2Model(
    { ...gpt, variant, clusters: 64, codebookSize: 256, prefixLength: 64, length: 64 },
    gen,
  );
  // tasks/demo.yaml's VQGAN: cpu32 with ch 16, ch_mult [1, 2, 2], z 16, 256 codes.
  const vqgan = new VQGAN({
    ...VQGAN_PRESETS.cpu32,
    ch: 16,
    chMult: [1, 2, 2],
    zChannels: 16,
    embedDim: 16,
    nEmbed: 256,
    normGroups: 8,
  }, gen);
  return {
    stage1: stage1.eval(),
    stage2: stage2.eval(),
    vqgan: vqgan.eval(),
    source: `random ${size} ${variant}`,
  };
}
