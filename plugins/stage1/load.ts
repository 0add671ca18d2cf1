/**
 * Loading a stage-1 GPT from one of our checkpoints. Training records `{ kind: "stage1-gpt",
 * config }` in the checkpoint's meta (core/io/checkpoint.ts ModelMeta); checkpoints from
 * before that carry the config as `meta.model` or in a `model.json` beside `checkpoints/`,
 * which are still read. DiGIT's released fairseq files are read by digit_checkpoint.ts.
 */

import {
  loadCheckpoint,
  modelMeta,
  modelWeights,
  readCheckpointMeta,
  readLegacySidecar,
} from "../../core/io/checkpoint.ts";
import { Rng } from "../../core/random.ts";
import { type Stage1Config, Stage1GPT } from "./model.ts";

/** The checkpoint kind of a stage-1 GPT trained here. */
export const STAGE1_KIND = "stage1-gpt";

/**
 * The meta a stage-1 checkpoint records; `classNames` (the token file's names of the class ids)
 * travel with the model, so whatever serves it can name its classes without the dataset.
 */
export function stage1Meta(
  config: Stage1Config,
  classNames?: readonly string[],
): { kind: string; config: Stage1Config; classNames?: readonly string[] } {
  return { kind: STAGE1_KIND, config, ...(classNames ? { classNames } : {}) };
}

/** The class names a stage-1 checkpoint records, or undefined (older runs, unnamed classes). */
export async function readStage1ClassNames(path: string): Promise<string[] | undefined> {
  const meta = await readCheckpointMeta(path.replace(/\.json$/, ""));
  const names = (meta as { classNames?: unknown } | null)?.classNames;
  return Array.isArray(names) && names.every((n) => typeof n === "string") ? names : undefined;
}

/** The Stage1Config of the checkpoint at `path` (`<dir>/checkpoints/last`, no `.json`). */
export async function readStage1Config(path: string, meta?: unknown): Promise<Stage1Config> {
  meta ??= await readCheckpointMeta(path);
  const m = modelMeta(meta);
  if (m) {
    if (m.kind !== STAGE1_KIND) {
      throw new Error(`stage1: ${path} is a '${m.kind}' checkpoint, not '${STAGE1_KIND}'`);
    }
    return m.config as Stage1Config;
  }
  const legacy = (meta as { model?: Stage1Config } | null)?.model ??
    await readLegacySidecar(path, "model.json") as Stage1Config | undefined;
  if (!legacy) {
    throw new Error(
      `stage1: ${path} records no model config (no meta.kind, no model.json beside it)`,
    );
  }
  return legacy;
}

/** A stage-1 model from one of our checkpoints, `<dir>/checkpoints/<which>` (`.json` optional). */
export async function loadStage1Checkpoint(path: string): Promise<Stage1GPT> {
  const base = path.replace(/\.json$/, "");
  const ck = await loadCheckpoint(base);
  const model = new Stage1GPT(await readStage1Config(base, ck.meta));
  try {
    model.loadStateDict(modelWeights(ck.weights), { what: `stage-1 checkpoint ${base}` });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** A trained stage-1 model from `<dir>/checkpoints/<which>`. */
export async function loadStage1(dir: string, which: "last" | "best" = "last"): Promise<Stage1GPT> {
  return await loadStage1Checkpoint(`${dir}/checkpoints/${which}`);
}

/**
 * A never-trained stage-1 GPT shaped like the checkpoint at `path`, its weights drawn from
 * `seed`: the demo's baselines are built through the registry like the trained parts, so the
 * checkpoint's recorded config (not a copy of it) decides their shape.
 */
export async function untrainedStage1(path: string, seed: number): Promise<Stage1GPT> {
  return new Stage1GPT(await readStage1Config(path.replace(/\.json$/, "")), new Rng(seed));
}
