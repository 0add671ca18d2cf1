/**
 * Stage-2 training settings. Keys mirror DiGIT's `config/stage2/dino_base.yaml` and
 * `dino_base_nar.yaml` (fairseq groups); `model._name` picks the variant as there:
 * `st2vtlm` (AR) or `st2vtlm_nar` (MaskGIT).
 */

import { type Infer, s } from "../../core/config.ts";

const pos = { min: 0 };

export const stage2ConfigSchema = s.object({
  common: s.object({
    seed: s.int().default(1),
    log_interval: s.int({ min: 1 }).default(10),
  }).default({ seed: 1, log_interval: 10 }),
  checkpoint: s.object({
    save_interval_updates: s.int({ min: 1 }).default(500),
  }).default({ save_interval_updates: 500 }),
  task: s.object({
    /** Semantic token file of the training images (written by the tokenizer). */
    tokens: s.string({ nonEmpty: true, description: "semantic token file of the training set" }),
    /** VQGAN codes of the same images in the same order (written by encode-vqgan). */
    vq_tokens: s.string({ nonEmpty: true, description: "VQ token file of the training set (same images, same order)" }),
    valid_tokens: s.string({ description: "semantic token file of the validation set" }).optional(),
    valid_vq_tokens: s.string({ description: "VQ token file of the validation set" }).optional(),
    /** K-Means clusters (DiGIT: 8192). */
    source_vocab_size: s.int({ min: 1 }),
    /** VQGAN codebook size (DiGIT: 1024). */
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
    _name: s.enum(["st2vtlm", "st2vtlm_nar"]).default("st2vtlm"),
    preset: s.enum(["tiny", "small", "medium", "base", "large"]).optional(),
    decoder_embed_dim: s.int({ min: 1 }).optional(),
    decoder_ffn_embed_dim: s.int({ min: 1 }).optional(),
    decoder_layers: s.int({ min: 1 }).optional(),
    decoder_attention_heads: s.int({ min: 1 }).optional(),
    dropout: s.number({ min: 0, max: 1 }).default(0.1),
    /** The frozen VQGAN whose codes are predicted (used by the pipeline, not by training). */
    vqgan_ckpt_path: s.string().optional(),
  }).default({ _name: "st2vtlm", dropout: 0.1 }),
  output: s.object({
    /** Experiment folder; in a task, defaults to the step's own folder. */
    dir: s.string({ nonEmpty: true }).optional(),
  }).default({}),
});

export type Stage2TrainConfig = Infer<typeof stage2ConfigSchema>;
