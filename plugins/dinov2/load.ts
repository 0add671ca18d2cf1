/**
 * Building a DINOv2 model from a checkpoint: the official `dinov2_*_pretrain.pth` files, a
 * DiGIT training checkpoint (weights under `pretrained_encoder.`), or any file
 * core/io reads (safetensors, npz). The architecture is read from the shapes; naming one
 * that differs is an error that names both sizes. Loading is strict: missing, unexpected
 * and mis-shaped keys are all listed in one error.
 */

import type { StateDict } from "../../core/io/host_tensor.ts";
import { loadStateDict } from "../../core/io/state_dict.ts";
import { assertSameSize, configFromStateDict, presetConfig, type ViTConfig } from "./config.ts";
import type { PosEmbedRecipe } from "./pos_embed.ts";
import { DinoVisionTransformer } from "./vision_transformer.ts";

/** The prefix DiGIT's fairseq models give the frozen encoder's weights. */
export const DIGIT_ENCODER_PREFIX = "pretrained_encoder.";

export interface LoadDinov2Options {
  /** A preset name (vitb14_reg, ...) the checkpoint must match; default: whatever it holds. */
  arch?: string;
  /** Override the head count (not visible in the weights) for a non-standard width. */
  heads?: number;
  recipe?: PosEmbedRecipe;
  /**
   * Key prefix to strip. Default: "pretrained_encoder." when the checkpoint has such keys
   * (a DiGIT checkpoint), else none.
   */
  prefix?: string;
}

/** Keeps the keys under `prefix` (without it). */
export function stripPrefix(sd: StateDict, prefix: string, source: string): StateDict {
  const out: StateDict = new Map();
  for (const [k, v] of sd) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  if (out.size === 0) {
    throw new Error(
      `dinov2: ${source} has no key starting with '${prefix}' (e.g. ${
        [...sd.keys()].slice(0, 4).join(", ")
      })`,
    );
  }
  return out;
}

/**
 * Training checkpoints saved with block_chunks > 0 name blocks `blocks.<chunk>.<index>.`
 * (the index stays global); the released weights use `blocks.<index>.`. This renames the former.
 */
export function unchunkBlocks(sd: StateDict): StateDict {
  const chunked = /^blocks\.\d+\.(\d+)\.(.*)$/;
  if (![...sd.keys()].some((k) => chunked.test(k))) return sd;
  const out: StateDict = new Map();
  for (const [k, v] of sd) {
    const m = chunked.exec(k);
    out.set(m ? `blocks.${m[1]}.${m[2]}` : k, v);
  }
  return out;
}

/** The DINOv2 weights inside a state dict, DiGIT's prefix removed when present. */
export function encoderWeights(sd: StateDict, source: string, prefix?: string): StateDict {
  if (prefix !== undefined) {
    return unchunkBlocks(prefix === "" ? sd : stripPrefix(sd, prefix, source));
  }
  const digit = [...sd.keys()].some((k) => k.startsWith(DIGIT_ENCODER_PREFIX));
  return unchunkBlocks(digit ? stripPrefix(sd, DIGIT_ENCODER_PREFIX, source) : sd);
}

/** A model with the checkpoint's weights (strict). `source` is a path or a loaded state dict. */
export async function loadDinov2(
  source: string | StateDict,
  opts: LoadDinov2Options = {},
): Promise<DinoVisionTransformer> {
  const name = typeof source === "string" ? source : "the state dict";
  const raw = typeof source === "string" ? await loadStateDict(source) : source;
  const sd = encoderWeights(raw, name, opts.prefix);
  const found = configFromStateDict(sd);
  let cfg: ViTConfig = found;
  if (opts.arch !== undefined) {
    cfg = presetConfig(opts.arch);
    assertSameSize(cfg, found, name);
  }
  if (opts.heads !== undefined) cfg = { ...cfg, heads: opts.heads };
  const model = new DinoVisionTransformer(cfg, { recipe: opts.recipe });
  try {
    model.loadStateDict(sd, { strict: true, what: `DINOv2 ${cfg.name} from ${name}` });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model.eval();
}
