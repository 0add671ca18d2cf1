/**
 * The demo's baselines: the same stage-1, stage-2 and VQGAN models as the trained ones,
 * freshly initialised and never trained, saved in the layout the loaders read
 * (`<dir>/checkpoints/last` plus the model's config). Sampling them shows what training
 * buys: all three untrained is the "untrained pipeline"; untrained generators through the
 * trained VQGAN show what stage 1 and stage 2 learned on top of the VQGAN.
 *
 * The config files go where the loaders find them but the preview server's search does not
 * (it skips `checkpoints/` folders), so `deno task serve` keeps serving the trained models:
 * stage 1's config rides in the checkpoint's meta, stage 2's and the VQGAN's sit in
 * `checkpoints/stage2.json` and `checkpoints/vqgan.json`.
 */

import { saveCheckpoint } from "../../core/io/checkpoint.ts";
import { hostStateDict } from "../../core/nn/module.ts";
import { Generator } from "../../core/random.ts";
import { type Stage1Config, Stage1GPT } from "../stage1/model.ts";
import { type Stage2Config, Stage2Model } from "../stage2/model.ts";
import { VQGAN, type VqganConfig } from "../vqgan/vqgan.ts";

async function readJson(path: string, what: string): Promise<unknown> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`untrained-models: cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

/** A fresh stage-1 GPT shaped like the one trained in `trainedDir` (its model.json). */
export async function writeUntrainedStage1(
  trainedDir: string,
  outDir: string,
  seed: number,
): Promise<void> {
  const cfg = await readJson(
    `${trainedDir}/model.json`,
    "the stage-1 model config",
  ) as Stage1Config;
  const model = new Stage1GPT(cfg, new Generator(seed));
  try {
    await Deno.mkdir(`${outDir}/checkpoints`, { recursive: true });
    await saveCheckpoint(`${outDir}/checkpoints/last`, await hostStateDict(model), {
      model: cfg,
      untrained: true,
    });
  } finally {
    model.dispose();
  }
}

/** A fresh stage-2 decoder shaped like the one trained in `trainedDir` (its stage2.json). */
export async function writeUntrainedStage2(
  trainedDir: string,
  outDir: string,
  seed: number,
): Promise<void> {
  const doc = await readJson(`${trainedDir}/stage2.json`, "the stage-2 model config") as {
    config?: Stage2Config;
  };
  if (!doc.config) throw new Error(`untrained-models: ${trainedDir}/stage2.json has no 'config'`);
  const model = new Stage2Model(doc.config, new Generator(seed));
  try {
    await Deno.mkdir(`${outDir}/checkpoints`, { recursive: true });
    await Deno.writeTextFile(
      `${outDir}/checkpoints/stage2.json`,
      JSON.stringify({ kind: "stage2", config: doc.config }, null, 2) + "\n",
    );
    await saveCheckpoint(`${outDir}/checkpoints/last`, await hostStateDict(model), {
      untrained: true,
    });
  } finally {
    model.dispose();
  }
}

/** A fresh VQGAN shaped like the one trained in `trainedDir` (its vqgan.json). */
export async function writeUntrainedVqgan(
  trainedDir: string,
  outDir: string,
  seed: number,
): Promise<void> {
  const doc = await readJson(`${trainedDir}/vqgan.json`, "the VQGAN config") as {
    config?: VqganConfig;
  };
  if (!doc.config) throw new Error(`untrained-models: ${trainedDir}/vqgan.json has no 'config'`);
  const model = new VQGAN(doc.config, new Generator(seed));
  try {
    await Deno.mkdir(`${outDir}/checkpoints`, { recursive: true });
    await Deno.writeTextFile(
      `${outDir}/checkpoints/vqgan.json`,
      JSON.stringify({ kind: "vqgan", config: doc.config }, null, 2) + "\n",
    );
    await saveCheckpoint(`${outDir}/checkpoints/last`, await hostStateDict(model), {
      untrained: true,
    });
  } finally {
    model.dispose();
  }
}
