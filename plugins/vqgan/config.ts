/**
 * VQGAN training settings (configs/vqgan/*.yaml). DiGIT never trains its VQGAN (it uses
 * MAGE's frozen checkpoint); these keys exist so that small VQGANs can be trained from
 * scratch on small images. Group names follow the stage-1/2 configs (fairseq groups).
 */

import { type Infer, s } from "../../core/config.ts";

const pos = { min: 0 };

export const vqganTrainConfigSchema = s.object({
  common: s.object({
    seed: s.int().default(1),
    log_interval: s.int({ min: 1 }).default(10),
  }).default({ seed: 1, log_interval: 10 }),
  checkpoint: s.object({
    save_interval_updates: s.int({ min: 1 }).default(500),
  }).default({ save_interval_updates: 500 }),
  model: s.object({
    preset: s.enum(["mage", "cpu16", "cpu32", "cpu64"]).default("cpu32"),
    ch: s.int({ min: 1 }).optional(),
    ch_mult: s.array(s.int({ min: 1 })).optional(),
    num_res_blocks: s.int({ min: 0 }).describe(
      "residual blocks per level (0: only the two middle blocks)",
    ).optional(),
    z_channels: s.int({ min: 1 }).describe(
      "channels of z; also the codebook dimension unless code_dim is set",
    ).optional(),
    n_embed: s.int({ min: 2 }).describe("codebook size").optional(),
    /** ViT-VQGAN's factorised codes: look codes up in this many dimensions (1x1 projections in and out). */
    code_dim: s.int({ min: 1 }).describe(
      "codebook dimension when below z_channels (default: z_channels)",
    ).optional(),
    /** ViT-VQGAN's l2-normalised lookup (cosine similarity). */
    l2_codes: s.bool().describe("l2-normalise z and the codes before the lookup").default(false),
    /** Fold p x p pixels into channels before the encoder (and back after the decoder): no full-resolution convs. */
    patch: s.int({ min: 1 }).describe("space-to-depth fold before conv_in (1: none)").default(1),
    /** false: no GroupNorm + swish before the encoder's and decoder's conv_out (keeps colour). */
    out_norm: s.bool().describe("GroupNorm + swish before conv_out (MaskGIT)").default(true),
    norm: s.enum(["group", "none"]).describe(
      "GroupNorm in the residual blocks (MaskGIT), or none (blocks start as the identity)",
    ).default("group"),
    norm_groups: s.int({ min: 1 }).optional(),
    resolution: s.int({ min: 1 }).describe("image side; defaults to the preset's").optional(),
  }).default({ preset: "cpu32", l2_codes: false, patch: 1, out_norm: true, norm: "group" }),
  dataset: s.object({
    batch_size: s.int({ min: 1 }).default(16),
    /** A core/data dataset description, e.g. { kind: shapes, size: 32 } (images must be square). */
    source: s.any({
      description: "core/data DatasetSpec, e.g. {kind: shapes, size: 32, length: 10000}",
    }).optional(),
    /** Images loaded for training (from the start of the dataset). */
    train_images: s.int({ min: 1 }).default(2048),
    /** Held-out images (right after the training ones) for validation and the preview. */
    valid_images: s.int(pos).default(64),
  }).default({ batch_size: 16, train_images: 2048, valid_images: 64 }),
  loss: s.object({
    reconstruction: s.enum(["l1", "l2"]).default("l2"),
    /** Weight of the codebook term (commitment gets beta on top of it). */
    codebook_weight: s.number(pos).default(1),
    beta: s.number(pos).default(0.25),
    /** taming's weighting: beta*codebook + commitment. */
    legacy: s.bool().default(false),
    /** Every N updates, codes unused since the last restart move onto random encoder outputs (0: off). */
    dead_code_restart: s.int(pos).default(0),
    /**
     * Updates trained as a plain autoencoder (the quantiser bypassed) before quantising: a
     * small model learns colour and shape quickly that way, and the codebook then starts
     * where the encoder's outputs are.
     */
    vq_warmup: s.int(pos).default(0),
    /** At the end of the warm-up, fit the codebook by k-means to the encoder's outputs on training images. */
    kmeans_init: s.bool().default(false),
  }).default({
    reconstruction: "l2",
    codebook_weight: 1,
    beta: 0.25,
    legacy: false,
    dead_code_restart: 0,
    vq_warmup: 0,
    kmeans_init: false,
  }),
  optimization: s.object({
    max_update: s.int({ min: 1 }),
    lr: s.number({ min: 0 }),
    clip_norm: s.number(pos).default(1.0),
  }),
  optimizer: s.object({
    /** taming trains its VQGANs with Adam betas (0.5, 0.9). */
    adam_betas: s.array(s.number({ min: 0, max: 1 })).default([0.5, 0.9]),
    weight_decay: s.number(pos).default(0),
  }).default({ adam_betas: [0.5, 0.9], weight_decay: 0 }),
  lr_scheduler: s.object({
    kind: s.enum(["cosine", "constant", "inverse_sqrt"]).default("cosine"),
    warmup_updates: s.int(pos).default(0),
  }).default({ kind: "cosine", warmup_updates: 0 }),
  preview: s.object({
    /** Held-out images shown (original above reconstruction) in reconstructions.png. */
    count: s.int(pos).default(16),
  }).default({ count: 16 }),
  output: s.object({
    /** Experiment folder; in a task, defaults to the step's own folder. */
    dir: s.string({ nonEmpty: true }).optional(),
  }).default({}),
});

export type VqganTrainConfig = Infer<typeof vqganTrainConfigSchema>;
