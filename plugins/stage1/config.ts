/**
 * Stage-1 training settings. Keys mirror DiGIT's `config/stage1/dino_base.yaml`
 * (fairseq groups) where they mean the same thing, so a DiGIT user recognises them.
 */

import { type Infer, s } from "../../core/config.ts";

const pos = { min: 0 };

export const stage1ConfigSchema = s.object({
  common: s.object({
    seed: s.int().default(1),
    log_interval: s.int({ min: 1 }).default(10),
  }).default({ seed: 1, log_interval: 10 }),
  checkpoint: s.object({
    save_interval_updates: s.int({ min: 1 }).default(500),
  }).default({ save_interval_updates: 500 }),
  task: s.object({
    /** Token file written by the tokenizer (train split). */
    tokens: s.string({ nonEmpty: true, description: "token file of the training set (deno task train tokenizer)" }),
    valid_tokens: s.string({ description: "token file of the validation set" }).optional(),
    /** K-Means clusters; checked against the token file. */
    target_vocab_size: s.int({ min: 1 }),
  }),
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
    clip_norm: s.number(pos).default(1.0),
  }),
  optimizer: s.object({
    adam_betas: s.array(s.number({ min: 0, max: 1 })).default([0.9, 0.98]),
    weight_decay: s.number(pos).default(0.01),
  }).default({ adam_betas: [0.9, 0.98], weight_decay: 0.01 }),
  lr_scheduler: s.object({
    warmup_updates: s.int(pos).default(0),
    warmup_init_lr: s.number(pos).default(1e-7),
  }).default({ warmup_updates: 0, warmup_init_lr: 1e-7 }),
  model: s.object({
    preset: s.enum(["tiny", "small", "medium", "base", "large"]).optional(),
    decoder_embed_dim: s.int({ min: 1 }).optional(),
    decoder_ffn_embed_dim: s.int({ min: 1 }).optional(),
    decoder_layers: s.int({ min: 1 }).optional(),
    decoder_attention_heads: s.int({ min: 1 }).optional(),
    dropout: s.number({ min: 0, max: 1 }).default(0.1),
    class_conditional: s.bool().default(false),
    num_classes: s.int({ min: 1 }).default(1000),
  }),
  output: s.object({
    /** Experiment folder; defaults to the step's own folder under the task's outputs. */
    dir: s.string({ nonEmpty: true }).optional(),
  }).default({}),
});

export type Stage1TrainConfig = Infer<typeof stage1ConfigSchema>;
