/**
 * Loading DiGIT's released stage-2 checkpoints (fairseq `checkpoint_last.pt`): a pickled
 * dict with `cfg` (omegaconf) and `model` (the state dict). `decoder.*` keys go to the
 * transformer, `vqgan.*` keys to the VQGAN; `centroids`, `centroid_norm`,
 * `pretrained_encoder.*` and `decoder.version` are not part of stage 2's network.
 *
 * The variant comes from `cfg.model._name` (st2vtlm = AR, st2vtlm_nar = MaskGIT) and the
 * head count from `cfg.model.decoder_attention_heads`; everything else from the shapes.
 * Sequence lengths are not stored: 16x16 = 256 tokens unless given.
 */

import type { HostTensor, StateDict } from "../../core/io/host_tensor.ts";
import { isHostTensor } from "../../core/io/host_tensor.ts";
import {
  checkpointExists,
  loadCheckpoint,
  modelMeta,
  modelWeights,
  readCheckpointMeta,
  readLegacySidecar,
} from "../../core/io/checkpoint.ts";
import { configToPlain } from "../../core/io/py_config.ts";
import { loadTorch } from "../../core/io/torch.ts";
import { Rng } from "../../core/random.ts";
import { VQGAN, type VqganConfig } from "../vqgan/vqgan.ts";
import { inferVqganConfig, vqganStateDict } from "../vqgan/load.ts";
import { SPECIALS, type Stage2Config, Stage2Model, type Stage2Variant } from "./model.ts";

export interface LoadStage2Options {
  variant?: Stage2Variant;
  heads?: number;
  /** Semantic tokens per image (default 256). */
  prefixLength?: number;
  /** VQ tokens per image (default 256). */
  length?: number;
  /** Architecture details of the VQGAN not in its weights (GroupNorm groups, image size). */
  vqgan?: Partial<VqganConfig>;
}

export interface LoadedStage2 {
  model: Stage2Model;
  /** The VQGAN stored in the same checkpoint, when it has `vqgan.*` keys. */
  vqgan: VQGAN | null;
  /** The checkpoint's fairseq config as plain data (null when absent). */
  fairseqConfig: Record<string, unknown> | null;
}

function shape(sd: StateDict, key: string, file: string): number[] {
  const t: HostTensor | undefined = sd.get(key);
  if (!t) throw new Error(`stage2 checkpoint ${file}: key '${key}' is missing`);
  return t.shape;
}

/** The stage-2 config implied by `decoder.*` shapes plus the fairseq cfg. */
export function inferStage2Config(
  sd: StateDict,
  cfg: Record<string, unknown> | null,
  opts: LoadStage2Options,
  file = "<memory>",
): Stage2Config {
  // omegaconf cfg: cfg.model.*; older argparse args: flat, with the model name in `arch`.
  const model = (cfg?.model && typeof cfg.model === "object" ? cfg.model : cfg ?? {}) as Record<
    string,
    unknown
  >;
  const name = model._name ?? model.arch;
  const variant = opts.variant ??
    (name === "st2vtlm_nar" ? "nar" : name === "st2vtlm" || name === undefined ? "ar" : null);
  if (!variant) {
    throw new Error(
      `stage2 checkpoint ${file}: model._name '${
        String(name)
      }' is not st2vtlm or st2vtlm_nar (the VQ-only baseline st2vtlm_vq has no semantic prefix)`,
    );
  }
  const [rows, dim] = shape(sd, "decoder.embed_tokens.weight", file);
  const vqDict = shape(sd, "decoder.output_projection.weight", file)[0];
  let layers = 0;
  while (sd.has(`decoder.layers.${layers}.fc1.weight`)) layers++;
  const heads = opts.heads ??
    (typeof model.decoder_attention_heads === "number" ? model.decoder_attention_heads : 16);
  return {
    variant,
    clusters: rows - vqDict - SPECIALS.count,
    codebookSize: vqDict - SPECIALS.count,
    prefixLength: opts.prefixLength ?? 256,
    length: opts.length ?? 256,
    layers,
    dim,
    heads,
    ffnDim: shape(sd, "decoder.layers.0.fc1.weight", file)[0],
    dropout: 0,
  };
}

/** The `decoder.*` weights our model holds (fairseq's version buffer dropped). */
function decoderWeights(sd: StateDict, model: Stage2Model): StateDict {
  const out: StateDict = new Map();
  for (const [k, v] of sd) {
    if (!k.startsWith("decoder.") || k === "decoder.version") continue;
    out.set(k, v);
  }
  // fairseq tables have max_target_positions+2 rows; ours at least 1026. Pad with zeros
  // (rows past the checkpoint's maximum are never reached by its sequence lengths).
  for (const key of ["decoder.embed_positions.weight", "decoder.embed_positions_1.weight"]) {
    const t = out.get(key);
    const want = model.decoder.embed_positions.weight.shape[0];
    if (t && t.shape[0] < want) {
      const data = new Float32Array(want * t.shape[1]);
      data.set(t.data);
      out.set(key, { ...t, shape: [want, t.shape[1]], data });
    }
  }
  return out;
}

/** Weights of a DiGIT stage-2 checkpoint into a model (strict on `decoder.*`). */
export function loadStage2Weights(
  model: Stage2Model,
  sd: StateDict,
  what = "stage-2 weights",
): void {
  model.loadStateDict(decoderWeights(sd, model), { strict: true, what });
}

export async function loadDigitStage2(
  path: string,
  opts: LoadStage2Options = {},
): Promise<LoadedStage2> {
  const root = await loadTorch(path);
  if (!(root instanceof Map)) {
    throw new Error(`stage2 checkpoint ${path}: expected a pickled dict, got ${typeof root}`);
  }
  const raw = root.get("model");
  if (!(raw instanceof Map)) {
    throw new Error(
      `stage2 checkpoint ${path}: no 'model' state dict (keys: ${[...root.keys()].join(", ")})`,
    );
  }
  const sd: StateDict = new Map();
  for (const [k, v] of raw) if (isHostTensor(v)) sd.set(String(k), v);
  const plain = root.has("cfg")
    ? configToPlain(root.get("cfg"))
    : root.has("args")
    ? configToPlain(root.get("args"))
    : null;
  const fairseqConfig = plain && typeof plain === "object" && !(plain instanceof Map)
    ? plain as Record<string, unknown>
    : null;
  const cfg = inferStage2Config(sd, fairseqConfig, opts, path);
  const model = new Stage2Model(cfg);
  loadStage2Weights(model, sd, `stage-2 checkpoint ${path}`);
  model.eval();
  let vqgan: VQGAN | null = null;
  if ([...sd.keys()].some((k) => k.startsWith("vqgan."))) {
    const vsd = vqganStateDict(sd);
    vqgan = new VQGAN(inferVqganConfig(vsd, opts.vqgan));
    vqgan.loadStateDict(vsd, { strict: true, what: `VQGAN in ${path}` });
    vqgan.eval();
  }
  return { model, vqgan, fairseqConfig };
}

/** The checkpoint kinds of stage-2 models trained here: AR (st2vtlm) and MaskGIT (st2vtlm_nar). */
export const STAGE2_KINDS = { ar: "stage2-ar", nar: "stage2-maskgit" } as const;

/** The meta a stage-2 checkpoint records. */
export function stage2Meta(config: Stage2Config): { kind: string; config: Stage2Config } {
  return { kind: STAGE2_KINDS[config.variant], config };
}

/** The Stage2Config of one of our checkpoints (`<dir>/checkpoints/last`, no `.json`). */
export async function readStage2Config(path: string, meta?: unknown): Promise<Stage2Config> {
  meta ??= await readCheckpointMeta(path);
  const m = modelMeta(meta);
  if (m) {
    const kinds: string[] = Object.values(STAGE2_KINDS);
    if (!kinds.includes(m.kind)) {
      throw new Error(`stage2: ${path} is a '${m.kind}' checkpoint, not ${kinds.join(" or ")}`);
    }
    return m.config as Stage2Config;
  }
  // Runs from before checkpoints described themselves: stage2.json beside checkpoints/.
  const doc = await readLegacySidecar(path, "stage2.json") as { config?: Stage2Config } | undefined;
  if (!doc?.config) {
    throw new Error(
      `stage2: ${path} records no model config (no meta.kind, no stage2.json beside it); cannot tell the model's shape`,
    );
  }
  return doc.config;
}

/** A stage-2 model from one of our training checkpoints (`<dir>/checkpoints/last`). */
export async function loadStage2Checkpoint(
  path: string,
  opts: Pick<LoadStage2Options, "variant"> = {},
): Promise<Stage2Model> {
  const base = path.replace(/\.json$/, "");
  const ck = await loadCheckpoint(base);
  const config = await readStage2Config(base, ck.meta);
  const model = new Stage2Model({ ...config, ...(opts.variant ? { variant: opts.variant } : {}) });
  try {
    model.loadStateDict(modelWeights(ck.weights), {
      strict: true,
      what: `stage-2 checkpoint ${base}`,
    });
  } catch (e) {
    model.dispose();
    throw e;
  }
  model.eval();
  return model;
}

/**
 * A never-trained stage-2 model shaped like the checkpoint at `path`, its weights drawn from
 * `seed` (the demo's baselines, built through the registry like the trained parts).
 */
export async function untrainedStage2(path: string, seed: number): Promise<Stage2Model> {
  return new Stage2Model(await readStage2Config(path.replace(/\.json$/, "")), new Rng(seed));
}

/**
 * A stage-2 model from DiGIT's fairseq checkpoint (.pt) or from one of our training
 * checkpoints (`<dir>/checkpoints/last`, its config in the checkpoint's meta).
 */
export async function loadStage2(
  path: string,
  opts: LoadStage2Options = {},
): Promise<LoadedStage2> {
  const base = path.replace(/\.json$/, "");
  if (!(await checkpointExists(base))) return await loadDigitStage2(path, opts);
  return { model: await loadStage2Checkpoint(base, opts), vqgan: null, fairseqConfig: null };
}
