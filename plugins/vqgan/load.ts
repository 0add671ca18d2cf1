/**
 * Loading VQGAN weights from any of the files a user meets:
 *   - MAGE's `vqgan_jax_strongaug.ckpt`: the 168 module keys, maybe wrapped in "state_dict";
 *   - a DiGIT stage-2 checkpoint: the same keys under `vqgan.` inside its "model" dict;
 *   - our own training checkpoints (`<dir>/checkpoints/last`, optimiser state left out),
 *     whose meta records `{ kind: "vqgan", config }` (older runs: `<dir>/vqgan.json`).
 * The architecture is read off the tensor shapes (a codebook narrower than z means factorised
 * codes); the GroupNorm group count, the image size, the patch fold and l2 lookup are not in
 * the weights (defaults: 32, a 16x16 grid, 1, false; our checkpoints record them).
 */

import type { HostTensor, StateDict } from "../../core/io/host_tensor.ts";
import {
  checkpointExists,
  loadCheckpoint,
  modelMeta,
  modelWeights,
  readCheckpointMeta,
  readLegacySidecar,
} from "../../core/io/checkpoint.ts";
import { loadStateDict } from "../../core/io/state_dict.ts";
import { Rng } from "../../core/random.ts";
import { VQGAN, type VqganConfig } from "./vqgan.ts";

const PREFIX = "vqgan.";

/** The VQGAN's own keys: `vqgan.*` when present (DiGIT checkpoints), else everything. */
export function vqganStateDict(sd: StateDict): StateDict {
  const sub: StateDict = new Map();
  for (const [k, v] of sd) if (k.startsWith(PREFIX)) sub.set(k.slice(PREFIX.length), v);
  return sub.size > 0 ? sub : modelWeights(sd);
}

function shapeOf(sd: StateDict, key: string): number[] {
  const t: HostTensor | undefined = sd.get(key);
  if (!t) {
    throw new Error(
      `vqgan weights: key '${key}' is missing (${sd.size} keys, e.g. ${
        [...sd.keys()].slice(0, 4).join(", ")
      })`,
    );
  }
  return t.shape;
}

/** The architecture implied by a state dict's shapes (normGroups/resolution from `defaults`). */
export function inferVqganConfig(sd: StateDict, defaults: Partial<VqganConfig> = {}): VqganConfig {
  const ch = shapeOf(sd, "encoder.conv_in.weight")[0];
  const chMult: number[] = [];
  while (sd.has(`encoder.down.${chMult.length}.block.0.conv1.weight`)) {
    chMult.push(shapeOf(sd, `encoder.down.${chMult.length}.block.0.conv1.weight`)[0] / ch);
  }
  let numResBlocks = 0;
  while (sd.has(`encoder.down.0.block.${numResBlocks}.conv1.weight`)) numResBlocks++;
  // With no blocks per level (num_res_blocks 0) the levels leave no weights: the checkpoint records them.
  if (chMult.length === 0) chMult.push(...(defaults.chMult ?? [1]));
  const [nEmbed, embedDim] = shapeOf(sd, "quantize.embedding.weight");
  const zChannels = shapeOf(sd, "encoder.conv_out.weight")[0];
  const levels = chMult.length;
  // The patch fold and l2 lookup leave no trace of their own in the shapes: the checkpoint records them.
  const patch = defaults.patch ?? 1;
  const f = patch * 2 ** (levels - 1);
  const grid = defaults.resolution ? defaults.resolution / f : 16;
  const channels = chMult.map((m) => m * ch);
  return {
    ch,
    chMult,
    numResBlocks,
    zChannels,
    embedDim,
    nEmbed,
    inChannels: shapeOf(sd, "encoder.conv_in.weight")[1] / (patch * patch),
    outCh: shapeOf(sd, "decoder.conv_out.weight")[0] / (patch * patch),
    resolution: grid * f,
    normGroups: defaults.normGroups ??
      (channels.every((c) => c % 32 === 0) ? 32 : gcdAll(channels)),
    eps: defaults.eps ?? 1e-6,
    beta: defaults.beta ?? 0.25,
    ...(defaults.patch !== undefined ? { patch } : {}),
    ...(defaults.l2Codes !== undefined ? { l2Codes: defaults.l2Codes } : {}),
    // Blocks without GroupNorm (norm: none) have no norm1 weights.
    ...(defaults.norm !== undefined || !sd.has("encoder.mid.block_1.norm1.weight")
      ? { norm: sd.has("encoder.mid.block_1.norm1.weight") ? "group" as const : "none" as const }
      : {}),
    // A model built without the output norms has no norm_out weights.
    ...(defaults.outNorm !== undefined || !sd.has("encoder.norm_out.weight")
      ? { outNorm: sd.has("encoder.norm_out.weight") }
      : {}),
  };
}

function gcdAll(xs: number[]): number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  return Math.min(32, xs.reduce(gcd));
}

export interface LoadVqganOptions {
  /** The architecture; read from the checkpoint's meta or from the shapes otherwise. */
  config?: Partial<VqganConfig>;
}

/** The checkpoint kind of a VQGAN trained here. */
export const VQGAN_KIND = "vqgan";

/** The meta a VQGAN checkpoint records. */
export function vqganMeta(config: VqganConfig): { kind: string; config: VqganConfig } {
  return { kind: VQGAN_KIND, config };
}

/**
 * The config one of our checkpoints records: `meta.config` (kind `vqgan`), else, for runs from
 * before checkpoints described themselves, a `vqgan.json` beside `checkpoints/`.
 */
async function recordedConfig(path: string, meta: unknown): Promise<Partial<VqganConfig>> {
  const m = modelMeta(meta);
  if (m) {
    if (m.kind !== VQGAN_KIND) {
      throw new Error(`vqgan: ${path} is a '${m.kind}' checkpoint, not '${VQGAN_KIND}'`);
    }
    return m.config as VqganConfig;
  }
  const doc = await readLegacySidecar(path, "vqgan.json") as { config?: VqganConfig } | undefined;
  return doc?.config ?? {};
}

/** The full VqganConfig one of our checkpoints records (`<dir>/checkpoints/last`). */
export async function readVqganConfig(path: string): Promise<VqganConfig> {
  const base = path.replace(/\.json$/, "");
  const cfg = await recordedConfig(base, await readCheckpointMeta(base));
  if (!("ch" in cfg)) throw new Error(`vqgan: ${base} records no model config`);
  return cfg as VqganConfig;
}

/** Weights of a file, or of one of our checkpoints (`<dir>/last`: a marker JSON + safetensors). */
export async function readWeights(path: string): Promise<StateDict> {
  return (await readWeightsAndConfig(path)).weights;
}

async function readWeightsAndConfig(
  path: string,
): Promise<{ weights: StateDict; config: Partial<VqganConfig> }> {
  if (await checkpointExists(path)) {
    const ck = await loadCheckpoint(path);
    return { weights: ck.weights, config: await recordedConfig(path, ck.meta) };
  }
  return { weights: await loadStateDict(path), config: {} };
}

/** Build a VQGAN from a weights file (strict: every key must match). */
export async function loadVqgan(path: string, opts: LoadVqganOptions = {}): Promise<VQGAN> {
  const file = path.replace(/\.json$/, "");
  const read = await readWeightsAndConfig(file);
  const sd = vqganStateDict(read.weights);
  // Options left undefined (absent CLI/YAML keys) must not hide what the checkpoint recorded.
  const given = Object.fromEntries(
    Object.entries(opts.config ?? {}).filter(([, v]) => v !== undefined),
  );
  const cfg = inferVqganConfig(sd, { ...read.config, ...given });
  const model = new VQGAN(cfg);
  try {
    model.loadStateDict(sd, { strict: true, what: `VQGAN weights ${file}` });
  } catch (e) {
    model.dispose();
    throw e;
  }
  model.eval();
  return model;
}

/**
 * A never-trained VQGAN shaped like one of our checkpoints, its weights drawn from `seed` (the
 * demo's baselines, built through the registry like the trained decoder).
 */
export async function untrainedVqgan(path: string, seed: number): Promise<VQGAN> {
  return new VQGAN(await readVqganConfig(path), new Rng(seed));
}

/** Load a state dict (already in memory) into a VQGAN, accepting the `vqgan.` prefix. */
export function loadVqganStateDict(model: VQGAN, sd: StateDict, what = "VQGAN weights"): void {
  model.loadStateDict(vqganStateDict(sd), { strict: true, what });
}
