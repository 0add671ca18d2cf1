/**
 * `trainStage2`: the pixel decoder trained on paired (semantic, VQ) token sets with DiGIT's
 * recipe (AdamW 0.9/0.98, inverse-sqrt warm-up, label smoothing 0.1 over all outputs,
 * clipping, update_freq) through the shared training loop. AR scores all L+1 targets;
 * NAR scores the masked codes only. Validation reports plain NLL on the same kind of
 * targets, comparable with `vqUnigramEntropy`. Checkpoints go to `<dir>/checkpoints`, each
 * recording `{ kind, config }` in its meta (read back by `loadStage2`).
 */

import { noGrad } from "../../core/autograd.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { train, type TrainHooks, type TrainResult } from "../../core/train/trainer.ts";
import { fairseqTrainSettings } from "../transformer/fairseq_config.ts";
import type { Stage2TrainConfig } from "./config.ts";
import { arBatch, checkPairSet, IGNORE, narBatch, type PairSet, readPairSet } from "./data.ts";
import { stage2Meta } from "./load.ts";
import { STAGE2_PRESETS, type Stage2Config, Stage2Model } from "./model.ts";

/** The model a config asks for: a preset with explicit keys on top. */
export function stage2ModelConfig(
  cfg: Stage2TrainConfig,
  set: Pick<PairSet, "prefixLength" | "length">,
): Stage2Config {
  const m = cfg.model;
  const p = STAGE2_PRESETS[m.preset ?? "small"];
  return {
    variant: m._name === "st2vtlm_nar" ? "nar" : "ar",
    clusters: cfg.task.source_vocab_size,
    codebookSize: cfg.task.target_vocab_size,
    prefixLength: set.prefixLength,
    length: set.length,
    layers: m.decoder_layers ?? p.layers,
    dim: m.decoder_embed_dim ?? p.dim,
    heads: m.decoder_attention_heads ?? p.heads,
    ffnDim: m.decoder_ffn_embed_dim ?? p.ffnDim,
    dropout: m.dropout,
    ...(m.semantic_input === "aligned" ? { semanticInput: "aligned" as const } : {}),
    ...(m.semantic_context > 1 ? { semanticContext: m.semantic_context } : {}),
  };
}

export interface Stage2Run {
  model: Stage2Model;
  result: TrainResult;
}

/** Inputs and targets of one batch: AR teacher forcing or NAR masking (drawn from `gen`). */
export function stage2Batch(
  model: Stage2Model,
  set: PairSet,
  rows: ArrayLike<number>,
  gen: Rng,
): { ids: Tensor; targets: Tensor; scored: number } {
  if (model.cfg.variant === "nar") {
    const b = narBatch(model, set, rows, gen);
    return { ids: b.ids, targets: b.targets, scored: b.masked };
  }
  return { ...arBatch(model, set, rows), scored: rows.length * (set.length + 1) };
}

export async function trainStage2(
  cfg: Stage2TrainConfig,
  trainSet: PairSet,
  validSet: PairSet | null,
  dir: string,
  hooks: TrainHooks & { resume?: boolean } = {},
): Promise<Stage2Run> {
  if (trainSet.count < cfg.dataset.batch_size) {
    throw new Error(
      `stage2: the token files have ${trainSet.count} image pairs, fewer than one batch of dataset.batch_size = ${cfg.dataset.batch_size}`,
    );
  }
  const mc = stage2ModelConfig(cfg, trainSet);
  const model = new Stage2Model(mc, new Rng(cfg.common.seed));
  checkPairSet(trainSet, model);
  if (validSet) checkPairSet(validSet, model);
  for (const [name, set] of [["train", trainSet], ["valid", validSet]] as const) {
    if (!set) continue;
    for (const c of set.semantic) {
      if (c < 0 || c >= mc.clusters) {
        throw new Error(
          `stage2: ${name} semantic token ${c} is outside task.source_vocab_size ${mc.clusters}`,
        );
      }
    }
    for (const v of set.vq) {
      if (v < 0 || v >= mc.codebookSize) {
        throw new Error(
          `stage2: ${name} VQ token ${v} is outside task.target_vocab_size ${mc.codebookSize}`,
        );
      }
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  const B = cfg.dataset.batch_size;
  const batches = Math.max(1, Math.floor(trainSet.count / B));
  const V = model.vqDictSize;
  const seed = cfg.common.seed;

  const validate = validSet
    ? async () => {
      let total = 0, n = 0;
      // A fixed masking stream, so NAR validation losses are comparable across evaluations.
      const gen = new Rng(seed).fork(999_999);
      for (let i = 0; i < validSet.count; i += B) {
        const rows = Array.from({ length: Math.min(B, validSet.count - i) }, (_, j) => i + j);
        const { loss, scored } = tidy(() =>
          noGrad(() => {
            const { ids, targets, scored } = stage2Batch(model, validSet, rows, gen);
            return {
              loss: ops.crossEntropy(ops.reshape(model.forward(ids), [-1, V]), targets, {
                reduction: "sum",
                ignoreIndex: IGNORE,
              }),
              scored,
            };
          })
        );
        total += await loss.item();
        loss.dispose();
        n += scored;
      }
      return total / Math.max(1, n);
    }
    : undefined;

  const result = await train<{ rows: number[]; tick: number }>(
    {
      model,
      batchesPerEpoch: batches,
      batch: (epoch, index, order) => {
        const perm = new Rng(seed).fork(1000 + epoch).permutation(trainSet.count);
        return {
          rows: Array.from(perm.subarray(order[index] * B, order[index] * B + B)),
          tick: epoch * batches + index,
        };
      },
      loss: ({ rows, tick }, gen) => {
        // NAR masks are a pure function of (seed, micro-batch number): resume-exact.
        const { ids, targets } = stage2Batch(
          model,
          trainSet,
          rows,
          new Rng(seed + 1).fork(tick),
        );
        const logits = model.forward(ids, gen);
        return ops.crossEntropy(ops.reshape(logits, [-1, V]), targets, {
          labelSmoothing: cfg.criterion.label_smoothing,
          ignoreIndex: IGNORE,
        });
      },
      itemsPerBatch: ({ rows }) => rows.length * (trainSet.length + 1),
      validate,
      meta: stage2Meta(mc),
    },
    fairseqTrainSettings(cfg, { validate: validSet !== null }),
    `${dir}/checkpoints`,
    hooks,
    hooks.resume ?? true,
  );
  return { model, result };
}

/** The whole job from a config: read the task's token files, train into `dir`. */
export async function trainStage2FromConfig(
  cfg: Stage2TrainConfig,
  dir: string,
  hooks: TrainHooks & { resume?: boolean } = {},
): Promise<Stage2Run> {
  const trainSet = await readPairSet(cfg.task.tokens, cfg.task.vq_tokens);
  const t = cfg.task;
  if (trainSet.clusters !== t.source_vocab_size || trainSet.codebookSize !== t.target_vocab_size) {
    throw new Error(
      `stage2: the token files have ${trainSet.clusters} clusters / ${trainSet.codebookSize} codes but task.source_vocab_size / target_vocab_size are ${t.source_vocab_size} / ${t.target_vocab_size}`,
    );
  }
  if (!!t.valid_tokens !== !!t.valid_vq_tokens) {
    throw new Error("stage2: give both task.valid_tokens and task.valid_vq_tokens, or neither");
  }
  const validSet = t.valid_tokens ? await readPairSet(t.valid_tokens, t.valid_vq_tokens!) : null;
  return await trainStage2(cfg, trainSet, validSet, dir, hooks);
}
