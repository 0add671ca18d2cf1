/**
 * DiGIT's released stage-1 checkpoints (fairseq `checkpoint_last.pt`, spec digit.md §9.3) as a
 * ready Stage1GPT, plus the two things the tokenizer needs from the same file: the K-Means
 * centroids and the DINOv2 weights.
 *
 * The file is a torch.save dict. `cfg` (an omegaconf DictConfig, or the plain dict fairseq's
 * trainer writes) gives the sizes; `model` holds
 *   decoder.*              the GPT, keys as our TransformerDecoder names them
 *   decoder.version        fairseq's format marker, not a weight
 *   centroids (D, K)       the transpose of km_8k.npy
 *   centroid_norm (1, K)   squared norms of the centroids
 *   pretrained_encoder.*   the frozen DINOv2
 * The decoder loads strictly: one error lists every missing, unexpected or mis-shaped key.
 */

import { IoFormatError } from "../../core/io/errors.ts";
import { type HostTensor, makeHostTensor, type StateDict } from "../../core/io/host_tensor.ts";
import { configToPlain } from "../../core/io/py_config.ts";
import { loadTorch } from "../../core/io/torch.ts";
import { SPECIALS, type Stage1Config, Stage1GPT } from "./model.ts";
import { POSITION_OFFSET } from "../transformer/decoder.ts";

export interface DigitStage1 {
  /** The GPT with the checkpoint's weights, in eval mode. */
  model: Stage1GPT;
  /** K-Means centroids (K, D), laid out as km_8k.npy. */
  centroids: HostTensor;
  /** `pretrained_encoder.*` with the prefix removed (empty when the file has none). */
  encoderWeights: StateDict;
}

export interface DigitStage1Options {
  /** Tokens per image: 16x16 = 256 for DiGIT's 224-pixel DINOv2 grids. */
  length?: number;
}

/**
 * fairseq's defaults for the keys a cfg may omit: `TransformerLanguageModelConfig`
 * (fairseq/models/transformer_lm.py) and DEFAULT_MAX_TARGET_POSITIONS. Sizes the weights show
 * (width, depth, FFN, positions) are read from them first; the head count cannot be.
 */
const FAIRSEQ_DEFAULTS = {
  decoder_embed_dim: 512,
  decoder_ffn_embed_dim: 2048,
  decoder_layers: 6,
  decoder_attention_heads: 8,
  max_target_positions: 1024,
  dropout: 0.1,
};
const ENCODER_PREFIX = "pretrained_encoder.";
const POSITIONS_KEY = "decoder.embed_positions.weight";

/** Reads a fairseq stage-1 checkpoint file. */
export async function loadDigitStage1(
  path: string,
  opts: DigitStage1Options = {},
): Promise<DigitStage1> {
  return digitStage1FromCheckpoint(await loadTorch(path), path, opts);
}

/** The same from an already unpickled checkpoint (`file` names it in errors). */
export function digitStage1FromCheckpoint(
  checkpoint: unknown,
  file: string,
  opts: DigitStage1Options = {},
): DigitStage1 {
  const fail = (detail: string): never => {
    throw new IoFormatError(file, detail);
  };
  if (!(checkpoint instanceof Map)) fail("not a fairseq checkpoint (top level is not a dict)");
  const ck = checkpoint as Map<string, unknown>;
  const weights = ck.get("model");
  if (!(weights instanceof Map)) {
    fail(`no 'model' state dict (top-level keys: ${[...ck.keys()].join(", ")})`);
  }
  const sd = weights as StateDict;
  const cfg = configToPlain(ck.get("cfg") ?? ck.get("args"), file);
  if (typeof cfg !== "object" || cfg === null) {
    fail("no 'cfg' (or legacy 'args') to size the model");
  }

  const decoder: StateDict = new Map();
  const encoderWeights: StateDict = new Map();
  for (const [key, t] of sd) {
    if (key.startsWith("decoder.") && key !== "decoder.version") decoder.set(key, t);
    else if (key.startsWith(ENCODER_PREFIX)) {
      encoderWeights.set(key.slice(ENCODER_PREFIX.length), t);
    }
  }
  const config = stage1ConfigOf(
    cfg as Record<string, unknown>,
    decoder,
    opts.length ?? 256,
    sd.get("centroids")?.shape[1],
    fail,
  );
  const centroids = centroidsOf(sd, config.clusters, fail);

  const model = new Stage1GPT(config);
  try {
    const rows = model.decoder.embed_positions.count;
    const table = decoder.get(POSITIONS_KEY);
    if (table && table.shape.length === 2 && table.shape[0] !== rows) {
      decoder.set(POSITIONS_KEY, resizePositions(table, rows));
    }
    model.loadStateDict(decoder, { strict: true, what: `DiGIT stage-1 decoder in ${file}` });
  } catch (e) {
    model.dispose();
    throw e;
  }
  model.eval();
  return { model, centroids, encoderWeights };
}

/** Stage1Config from the fairseq cfg, cross-checked against the weights. */
function stage1ConfigOf(
  cfg: Record<string, unknown>,
  decoder: StateDict,
  length: number,
  centroidCount: number | undefined,
  fail: (detail: string) => never,
): Stage1Config {
  // fairseq >= 0.10 nests groups; argparse-era `args` is flat.
  const model = (asObject(cfg.model) ?? cfg) as Record<string, unknown>;
  const task = (asObject(cfg.task) ?? cfg) as Record<string, unknown>;
  const group = cfg.model ? "cfg.model." : "cfg.";
  const taskGroup = cfg.task ? "cfg.task." : "cfg.";
  const value = (obj: Record<string, unknown>, key: string) => resolveInterpolation(cfg, obj[key]);
  const int = (obj: Record<string, unknown>, prefix: string, key: string, fallback?: number) => {
    const v = value(obj, key) ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      fail(`${prefix}${key} is ${JSON.stringify(v)}, expected a positive integer`);
    }
    return v as number;
  };

  // Sizes the weights show, used where the cfg omits a key.
  const shapeOf = (key: string) => decoder.get(key)?.shape;
  const tokens = shapeOf("decoder.embed_tokens.weight");
  let depth = 0;
  while (decoder.has(`decoder.layers.${depth}.fc1.weight`)) depth++;
  const positions = shapeOf(POSITIONS_KEY);

  const clusters = int(task, taskGroup, "target_vocab_size", centroidCount);
  const dim = int(
    model,
    group,
    "decoder_embed_dim",
    tokens?.[1] ?? FAIRSEQ_DEFAULTS.decoder_embed_dim,
  );
  const config: Stage1Config = {
    clusters,
    classes: 0,
    layers: int(model, group, "decoder_layers", depth || FAIRSEQ_DEFAULTS.decoder_layers),
    dim,
    heads: int(model, group, "decoder_attention_heads", FAIRSEQ_DEFAULTS.decoder_attention_heads),
    ffnDim: int(
      model,
      group,
      "decoder_ffn_embed_dim",
      shapeOf("decoder.layers.0.fc1.weight")?.[0] ?? FAIRSEQ_DEFAULTS.decoder_ffn_embed_dim,
    ),
    length,
    dropout: Number(value(model, "dropout") ?? FAIRSEQ_DEFAULTS.dropout),
  };
  if (dim % config.heads !== 0) {
    fail(
      `${group}decoder_embed_dim ${dim} is not a multiple of decoder_attention_heads ${config.heads}`,
    );
  }

  // Stage1GPT is fairseq's stlm as DiGIT configures it; refuse variants it cannot represent.
  const problems: string[] = [];
  const expect = (key: string, want: unknown) => {
    const v = value(model, key);
    if (v !== undefined && v !== null && v !== want) {
      problems.push(`${group}${key} = ${JSON.stringify(v)} (supported: ${JSON.stringify(want)})`);
    }
  };
  expect("decoder_normalize_before", false);
  expect("decoder_learned_pos", true);
  expect("share_decoder_input_output_embed", false);
  expect("no_scale_embedding", false);
  expect("layernorm_embedding", false);
  expect("activation_fn", "gelu");
  expect("decoder_input_dim", dim);
  expect("decoder_output_dim", dim);
  if (problems.length) fail(`unsupported stage-1 architecture: ${problems.join("; ")}`);

  // Class tokens are extra rows of the token table (spec §0.1): their count is in the weights.
  const dictSize = clusters + SPECIALS.count;
  const table = decoder.get("decoder.embed_tokens.weight");
  const extra = table ? table.shape[0] - dictSize : 0;
  const conditional = value(model, "class_conditional") === true;
  if (conditional && extra <= 0) {
    fail(
      `${group}class_conditional is true but decoder.embed_tokens.weight has ${
        table?.shape[0]
      } rows, no more than the ${dictSize} symbols of a ${clusters}-cluster dictionary`,
    );
  }
  if (!conditional && extra !== 0) {
    fail(
      `decoder.embed_tokens.weight has ${table!.shape[0]} rows but an unconditional model ` +
        `with target_vocab_size ${clusters} has ${dictSize}`,
    );
  }
  if (conditional) config.classes = extra;

  // fairseq's learned table has max_target_positions + padding_idx + 1 rows.
  const tableMax = positions ? positions[0] - POSITION_OFFSET : undefined;
  const inModel = value(model, "max_target_positions") ?? null;
  const named = inModel ?? value(task, "max_target_positions") ?? null;
  const maxKey = `${inModel !== null ? group : taskGroup}max_target_positions`;
  const maxTarget = named === null
    ? tableMax ?? FAIRSEQ_DEFAULTS.max_target_positions
    : (typeof named === "number" && Number.isInteger(named) && named > 0
      ? named
      : fail(`${maxKey} is ${JSON.stringify(named)}, expected a positive integer`));
  if (tableMax !== undefined && tableMax !== maxTarget) {
    fail(
      `${POSITIONS_KEY} has ${positions![0]} rows (max_target_positions ${tableMax}), but ` +
        `${maxKey} is ${maxTarget} (${maxTarget + POSITION_OFFSET} rows)`,
    );
  }
  if (length + 1 > maxTarget) {
    fail(
      `${length} tokens per image need ${length + 1} positions; the model has ${maxTarget} ` +
        `(${named === null ? POSITIONS_KEY : maxKey})`,
    );
  }
  return config;
}

/**
 * The position table at the row count Stage1GPT builds (max(1024, length + 1) + 2). Only rows
 * 0..length + 2 are ever read for `length` tokens, and the checkpoint has those (checked against
 * max_target_positions above); rows it lacks are zero, as fairseq's padding row is, and rows
 * past Stage1GPT's table are positions no sequence reaches.
 */
function resizePositions(t: HostTensor, rows: number): HostTensor {
  const [have, dim] = t.shape;
  const out = new Float32Array(rows * dim);
  out.set(t.data.subarray(0, Math.min(have, rows) * dim));
  return makeHostTensor([rows, dim], out, t.sourceDtype);
}

/** centroids (D, K) in the file -> (K, D) as km_8k.npy holds them. */
function centroidsOf(sd: StateDict, clusters: number, fail: (d: string) => never): HostTensor {
  const c = sd.get("centroids");
  if (!c) fail("no 'centroids' in the model state dict (a DiGIT stage-1 checkpoint has (D, K))");
  const t = c as HostTensor;
  if (t.shape.length !== 2 || t.shape[1] !== clusters || t.dtype !== "f32") {
    fail(
      `'centroids' is ${t.dtype} [${t.shape}], expected float (D, ${clusters}) for ` +
        `target_vocab_size ${clusters}`,
    );
  }
  const norm = sd.get("centroid_norm");
  if (norm && (norm.shape.length !== 2 || norm.shape[0] !== 1 || norm.shape[1] !== clusters)) {
    fail(`'centroid_norm' is [${norm.shape}], expected [1,${clusters}]`);
  }
  const [d, k] = t.shape;
  const out = new Float32Array(k * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < k; j++) out[j * d + i] = t.data[i * k + j];
  }
  return makeHostTensor([k, d], out, t.sourceDtype);
}

function asObject(v: unknown): Record<string, unknown> | null {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Map)
    ? v as Record<string, unknown>
    : null;
}

/**
 * fairseq saves its cfg without resolving omegaconf interpolations, so a value may read
 * "${task.max_target_positions}". Plain `${a.b}` references are followed; anything else
 * (resolvers such as `${oc.env:X}`) is returned as written.
 */
function resolveInterpolation(root: Record<string, unknown>, v: unknown, depth = 0): unknown {
  if (typeof v !== "string" || depth > 8) return v;
  const m = /^\$\{([A-Za-z_][\w.]*)\}$/.exec(v);
  if (!m) return v;
  let cur: unknown = root;
  for (const part of m[1].split(".")) {
    const obj = asObject(cur);
    if (!obj || !(part in obj)) return v;
    cur = obj[part];
  }
  return resolveInterpolation(root, cur, depth + 1);
}
