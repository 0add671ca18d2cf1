/**
 * The demo's baselines: the same stage-1, stage-2 and VQGAN models as the trained ones,
 * freshly initialised and never trained, saved as the loaders read them
 * (`<dir>/checkpoints/last`, whose meta records `{ kind, config, untrained: true }`).
 * Sampling them shows what training buys: all three untrained is the "untrained pipeline";
 * untrained generators through the trained VQGAN show what stage 1 and stage 2 learned on
 * top of the VQGAN. The part search (plugins/pipeline/parts.ts) passes over checkpoints
 * marked `untrained`, so `deno task serve` keeps serving the trained models.
 */

import { saveCheckpoint } from "../../core/io/checkpoint.ts";
import type { Module } from "../../core/nn/module.ts";
import { hostStateDict } from "../../core/nn/module.ts";
import { Rng } from "../../core/random.ts";
import { readStage1Config, stage1Meta } from "../stage1/load.ts";
import { Stage1GPT } from "../stage1/model.ts";
import { readStage2Config, stage2Meta } from "../stage2/load.ts";
import { Stage2Model } from "../stage2/model.ts";
import { VQGAN } from "../vqgan/vqgan.ts";
import { readVqganConfig, vqganMeta } from "../vqgan/weights.ts";

async function configOf<T>(read: (path: string) => Promise<T>, dir: string, what: string) {
  try {
    return await read(`${dir}/checkpoints/last`);
  } catch (e) {
    throw new Error(
      `untrained-models: cannot read the ${what} config of ${dir}: ${(e as Error).message}`,
    );
  }
}

async function writeUntrained(model: Module, outDir: string, meta: object): Promise<void> {
  try {
    await Deno.mkdir(`${outDir}/checkpoints`, { recursive: true });
    await saveCheckpoint(`${outDir}/checkpoints/last`, await hostStateDict(model), {
      ...meta,
      untrained: true,
    });
  } finally {
    model.dispose();
  }
}

/** A fresh stage-1 GPT shaped like the one trained in `trainedDir`. */
export async function writeUntrainedStage1(
  trainedDir: string,
  outDir: string,
  seed: number,
): Promise<void> {
  const cfg = await configOf(readStage1Config, trainedDir, "stage-1");
  await writeUntrained(new Stage1GPT(cfg, new Rng(seed)), outDir, stage1Meta(cfg));
}

/** A fresh stage-2 decoder shaped like the one trained in `trainedDir`. */
export async function writeUntrainedStage2(
  trainedDir: string,
  outDir: string,
  seed: number,
): Promise<void> {
  const cfg = await configOf(readStage2Config, trainedDir, "stage-2");
  await writeUntrained(new Stage2Model(cfg, new Rng(seed)), outDir, stage2Meta(cfg));
}

/** A fresh VQGAN shaped like the one trained in `trainedDir`. */
export async function writeUntrainedVqgan(
  trainedDir: string,
  outDir: string,
  seed: number,
): Promise<void> {
  const cfg = await configOf(readVqganConfig, trainedDir, "VQGAN");
  await writeUntrained(new VQGAN(cfg, new Rng(seed)), outDir, vqganMeta(cfg));
}
