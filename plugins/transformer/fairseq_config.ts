/**
 * The fairseq config groups that stage 1 and stage 2 share (DiGIT's `config/stage{1,2}/*.yaml`
 * use the same ones), and how they map onto the shared training loop's settings: Adam with
 * inverse-sqrt warm-up, label-smoothed cross entropy, update_freq, clip_norm.
 */

import { type Infer, s } from "../../core/config.ts";
import type { Schedule } from "../../core/optim/schedules.ts";
import type { TrainSettings } from "../../core/train/trainer.ts";

const nonNegative = { min: 0 };

export const fairseqGroups = {
  common: s.object({
    seed: s.int().default(1),
    log_interval: s.int({ min: 1 }).default(10),
  }).default({ seed: 1, log_interval: 10 }),
  checkpoint: s.object({
    save_interval_updates: s.int({ min: 1 }).default(500),
  }).default({ save_interval_updates: 500 }),
  dataset: s.object({
    batch_size: s.int({ min: 1 }).default(8),
  }).default({ batch_size: 8 }),
  criterion: s.object({
    label_smoothing: s.number({ min: 0, max: 1 }).default(0.1),
  }).default({ label_smoothing: 0.1 }),
  optimization: s.object({
    max_update: s.int({ min: 1 }),
    lr: s.number({ min: 0 }),
    update_freq: s.int({ min: 1 }).default(1),
    clip_norm: s.number(nonNegative).default(1.0),
  }),
  optimizer: s.object({
    adam_betas: s.array(s.number({ min: 0, max: 1 })).default([0.9, 0.98]),
    weight_decay: s.number(nonNegative).default(0.01),
  }).default({ adam_betas: [0.9, 0.98], weight_decay: 0.01 }),
  lr_scheduler: s.object({
    // DiGIT's recipes use inverse_sqrt; a run of a few hundred updates ends lower under cosine,
    // which anneals to min_lr where inverse_sqrt still runs at a quarter of its peak.
    _name: s.enum(["inverse_sqrt", "cosine"]).default("inverse_sqrt"),
    warmup_updates: s.int(nonNegative).default(0),
    warmup_init_lr: s.number(nonNegative).default(1e-7),
    min_lr: s.number(nonNegative).default(0).describe("cosine: the rate at max_update"),
  }).default({ _name: "inverse_sqrt", warmup_updates: 0, warmup_init_lr: 1e-7, min_lr: 0 }),
  output: s.object({
    /** Experiment folder; in a task, defaults to the step's own folder. */
    dir: s.string({ nonEmpty: true }).optional(),
  }).default({}),
};

/** The decoder-size keys of a transformer_lm model group (a preset fills the rest). */
export const decoderSizeFields = {
  preset: s.enum(["tiny", "small", "medium", "base", "large"]).optional(),
  decoder_embed_dim: s.int({ min: 1 }).optional(),
  decoder_ffn_embed_dim: s.int({ min: 1 }).optional(),
  decoder_layers: s.int({ min: 1 }).optional(),
  decoder_attention_heads: s.int({ min: 1 }).optional(),
  dropout: s.number({ min: 0, max: 1 }).default(0.1),
};

/** What the groups the training loop reads hold once validated. */
export type FairseqTrainConfig = {
  [K in "common" | "checkpoint" | "optimization" | "optimizer" | "lr_scheduler"]: Infer<
    (typeof fairseqGroups)[K]
  >;
};

/** fairseq's `lr_scheduler` group as a core schedule. */
function scheduleOf(cfg: FairseqTrainConfig): Schedule {
  const { lr, max_update } = cfg.optimization;
  const { _name, warmup_updates, warmup_init_lr, min_lr } = cfg.lr_scheduler;
  return _name === "cosine"
    ? { kind: "cosine", lr, total: max_update, warmup: warmup_updates, minLr: min_lr }
    : { kind: "inverse_sqrt", lr, warmup: warmup_updates, initLr: warmup_init_lr };
}

/** The loop's settings for a fairseq config; validation runs at every checkpoint when there is a validation set. */
export function fairseqTrainSettings(
  cfg: FairseqTrainConfig,
  opts: { validate: boolean },
): TrainSettings {
  return {
    maxSteps: cfg.optimization.max_update,
    schedule: scheduleOf(cfg),
    betas: [cfg.optimizer.adam_betas[0] ?? 0.9, cfg.optimizer.adam_betas[1] ?? 0.98],
    weightDecay: cfg.optimizer.weight_decay,
    clipNorm: cfg.optimization.clip_norm,
    accumulate: cfg.optimization.update_freq,
    logInterval: cfg.common.log_interval,
    saveInterval: cfg.checkpoint.save_interval_updates,
    validInterval: opts.validate ? cfg.checkpoint.save_interval_updates : 0,
    seed: cfg.common.seed,
  };
}
