/**
 * `deno task train stage1`: the stage-1 GPT trained by next-token prediction on
 * semantic tokens with fairseq's recipe (AdamW 0.9/0.98, inverse-sqrt warm-up, label
 * smoothing 0.1, clipping, update_freq), through the shared training loop.
 */

import { noGrad } from "../../core/autograd.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import { tidy } from "../../core/tensor.ts";
import { train, type TrainHooks, type TrainResult } from "../../core/train/trainer.ts";
import { fairseqTrainSettings } from "../transformer/fairseq_config.ts";
import type { Stage1TrainConfig } from "./config.ts";
import { stage1Tensors, type TokenSet } from "./data.ts";
import { stage1Meta } from "./load.ts";
import { SPECIALS, STAGE1_PRESETS, type Stage1Config, Stage1GPT } from "./model.ts";

/** The model shape a config asks for: a preset, with explicit keys overriding it. */
export function modelConfigFrom(
  cfg: Stage1TrainConfig,
  set: Pick<TokenSet, "length">,
): Stage1Config {
  const m = cfg.model;
  const preset = STAGE1_PRESETS[m.preset ?? "small"];
  return {
    clusters: cfg.task.target_vocab_size,
    classes: m.class_conditional ? m.num_classes : 0,
    layers: m.decoder_layers ?? preset.layers,
    dim: m.decoder_embed_dim ?? preset.dim,
    heads: m.decoder_attention_heads ?? preset.heads,
    ffnDim: m.decoder_ffn_embed_dim ?? preset.ffnDim,
    length: set.length,
    dropout: m.dropout,
  };
}

export interface Stage1Run {
  model: Stage1GPT;
  result: TrainResult;
}

export async function trainStage1(
  cfg: Stage1TrainConfig,
  trainSet: TokenSet,
  validSet: TokenSet | null,
  dir: string,
  hooks: TrainHooks & { resume?: boolean } = {},
): Promise<Stage1Run> {
  if (trainSet.clusters !== cfg.task.target_vocab_size) {
    throw new Error(
      `stage1: the token file has ${trainSet.clusters} clusters but task.target_vocab_size is ${cfg.task.target_vocab_size}`,
    );
  }
  if (cfg.model.class_conditional && !trainSet.labels) {
    throw new Error("stage1: model.class_conditional is true but the token file has no labels");
  }
  if (trainSet.count < cfg.dataset.batch_size) {
    throw new Error(
      `stage1: the token file has ${trainSet.count} images, fewer than one batch of dataset.batch_size = ${cfg.dataset.batch_size}`,
    );
  }
  if (cfg.model.class_conditional) checkClasses(trainSet.labels!, cfg.model.num_classes);
  const mc = modelConfigFrom(cfg, trainSet);
  const model = new Stage1GPT(mc, new Rng(cfg.common.seed));
  const B = cfg.dataset.batch_size;
  const batches = Math.max(1, Math.floor(trainSet.count / B));
  const start = (set: TokenSet) => (row: number) =>
    model.startToken(mc.classes ? set.labels![row] : undefined);
  const V = mc.clusters + SPECIALS.count;
  const dropRate = mc.classes ? cfg.model.class_dropout_prob : 0;
  // The drop decisions come first from the step's generator, so that they are part of the
  // exactly resumed random stream; with rate 0 nothing is drawn and older runs are unchanged.
  const dropClasses = (startOf: (row: number) => number, rows: number[], gen: Rng) => {
    if (dropRate === 0) return startOf;
    const dropped = new Set(rows.filter(() => gen.uniform() < dropRate));
    return (row: number) => dropped.has(row) ? SPECIALS.eos : startOf(row);
  };
  const eps = cfg.criterion.label_smoothing;

  const validate = validSet
    ? async () => {
      let total = 0, n = 0;
      for (let i = 0; i < validSet.count; i += B) {
        const rows = Array.from({ length: Math.min(B, validSet.count - i) }, (_, j) => i + j);
        const loss = tidy(() =>
          noGrad(() => {
            const { ids, targets } = stage1Tensors(validSet, rows, start(validSet));
            const logits = model.forward(ids);
            // Validation reports plain NLL (no smoothing), comparable with the unigram entropy.
            return ops.crossEntropy(ops.reshape(logits, [-1, V]), targets, { reduction: "sum" })
              .keep();
          })
        );
        total += await loss.item();
        loss.dispose();
        n += rows.length * (validSet.length + 1);
      }
      return total / n;
    }
    : undefined;

  const result = await train(
    {
      model,
      batchesPerEpoch: batches,
      batch: (_epoch, index, order) => {
        // Batches are fixed slices of a per-epoch permutation of images.
        const perm = new Rng(cfg.common.seed).fork(1000 + _epoch).permutation(trainSet.count);
        return Array.from(perm.subarray(order[index] * B, order[index] * B + B));
      },
      loss: (rows, gen) => {
        const { ids, targets } = stage1Tensors(
          trainSet,
          rows,
          dropClasses(start(trainSet), rows, gen),
        );
        const logits = model.decoder.forward(ids, { causal: true, gen });
        return ops.crossEntropy(ops.reshape(logits, [-1, V]), targets, { labelSmoothing: eps });
      },
      itemsPerBatch: (rows) => rows.length * (trainSet.length + 1),
      validate,
      meta: stage1Meta(mc, mc.classes ? trainSet.classNames?.slice(0, mc.classes) : undefined),
    },
    fairseqTrainSettings(cfg, { validate: validSet !== null }),
    `${dir}/checkpoints`,
    hooks,
    hooks.resume ?? true,
  );
  return { model, result };
}

/** A class-conditional model needs labels in range and at least two classes to tell apart. */
function checkClasses(labels: Int32Array, numClasses: number): void {
  const seen = new Set<number>();
  for (const y of labels) {
    if (y < 0 || y >= numClasses) {
      throw new Error(
        `stage1: the token file has label ${y}, outside 0..${
          numClasses - 1
        } (model.num_classes = ${numClasses})`,
      );
    }
    seen.add(y);
  }
  if (seen.size < 2) {
    throw new Error(
      `stage1: model.class_conditional is true but every image has class ${
        [...seen][0]
      }; a class-conditional model needs at least two classes`,
    );
  }
}
