/**
 * Settings of `train-ssl-encoder`. Groups follow the other training steps (fairseq-style:
 * common, checkpoint, model, dataset, optimization, optimizer, lr_scheduler, output). The
 * defaults are the recipe measured best on 32x32 shapes within the demo's time budget (the
 * plugin's header, plugins/ssl/plugin.ts, lists the measurements).
 */

import { type Infer, s, type Schema } from "../../core/config.ts";
import { SIMCLR_AUGMENT } from "./augment.ts";

const pos = { min: 0 };

/** An object group that may be left out: its default is the group with every key defaulted. */
function group<T>(schema: Schema<T>): Schema<T> {
  return schema.default(schema.check({}));
}
const unit = { min: 0, max: 1 };

export const sslTrainConfigSchema = s.object({
  common: group(s.object({
    seed: s.int().default(1),
    log_interval: s.int({ min: 1 }).default(10),
  })),
  checkpoint: group(s.object({
    save_interval_updates: s.int({ min: 1 }).default(100),
  })),
  dataset: group(s.object({
    source: s.any({
      description:
        "core/data DatasetSpec (square images), e.g. {kind: shapes, size: 32, length: 2048, seed: 0}",
    })
      .default({ kind: "shapes", size: 32, length: 2048, seed: 0 }),
    /** Images per update; each is seen as two views, so the loss compares 2 x batch_size embeddings. */
    batch_size: s.int({ min: 2 }).default(128),
  })),
  model: group(s.object({
    input: s.enum(["rgb", "edges"]).default("edges")
      .describe(
        "edges: a fixed Sobel-magnitude front end, colour-free by construction (learns shapes much faster)",
      ),
    grid: s.int({ min: 1 }).default(8).describe(
      "patch grid side of the features (8 for 32 px: the demo's token grid)",
    ),
    stem_kernel: s.int({ min: 1 }).default(3),
    stem_stride: s.int({ min: 1 }).default(2),
    widths: s.array(s.int({ min: 1 })).default([32, 64]).describe(
      "stem, then one per halving down to the grid",
    ),
    depth: s.int(pos).default(2).describe(
      "residual conv3x3 blocks at the grid (each widens the receptive field)",
    ),
    groups: s.int({ min: 1 }).default(8).describe("GroupNorm groups"),
    proj_hidden: s.int({ min: 1 }).default(128),
    proj_dim: s.int({ min: 1 }).default(64),
  })),
  augment: group(s.object({
    // SimCLR crops from 20% of the area; on 32 px shapes that often cuts the shape away, and
    // 70% measured best (bag-of-tokens probe 53% vs 44% after 100 updates).
    crop_scale: s.array(s.number(unit), { minLength: 2 }).default([0.7, 1]),
    crop_ratio: s.array(s.number({ positive: true }), { minLength: 2 }).default(
      SIMCLR_AUGMENT.cropRatio,
    ),
    rotation: s.number({ min: 0, max: 180 }).default(0)
      .describe(
        "largest crop rotation in degrees (shapes are drawn at any angle; 0 where orientation is the class)",
      ),
    hflip: s.number(unit).default(SIMCLR_AUGMENT.hflip),
    vflip: s.number(unit).default(SIMCLR_AUGMENT.vflip),
    jitter_prob: s.number(unit).default(SIMCLR_AUGMENT.jitterProb),
    brightness: s.number(unit).default(SIMCLR_AUGMENT.brightness),
    contrast: s.number(unit).default(SIMCLR_AUGMENT.contrast),
    saturation: s.number(unit).default(SIMCLR_AUGMENT.saturation),
    hue: s.number({ min: 0, max: 0.5 }).default(SIMCLR_AUGMENT.hue),
    grayscale_prob: s.number(unit).default(SIMCLR_AUGMENT.grayscaleProb),
    blur_prob: s.number(unit).default(0),
    blur_sigma: s.array(s.number({ positive: true }), { minLength: 2 }).default(
      SIMCLR_AUGMENT.blurSigma,
    ),
    noise: s.number(unit).default(0).describe(
      "largest std of added pixel noise (hides per-image grain)",
    ),
  })),
  loss: group(s.object({
    temperature: s.number({ positive: true }).default(0.2).describe("NT-Xent temperature"),
    patch_weight: s.number(pos).default(1)
      .describe(
        "weight of the patch-to-image term (each patch must find its image's other view); 0: SimCLR alone",
      ),
    dense_weight: s.number(pos).default(0)
      .describe(
        "weight of the dense term (each patch must find the same spot in the other view, among all patches)",
      ),
  })),
  optimization: group(s.object({
    max_update: s.int({ min: 1 }).default(150),
    lr: s.number(pos).default(3e-3),
    clip_norm: s.number(pos).default(1.0),
  })),
  optimizer: group(s.object({
    adam_betas: s.array(s.number(unit)).default([0.9, 0.999]),
    weight_decay: s.number(pos).default(1e-4),
  })),
  lr_scheduler: group(s.object({
    warmup_updates: s.int(pos).default(10),
  })),
  output: group(s.object({
    dir: s.string({ nonEmpty: true }).describe(
      "experiment folder; in a task, the step's own folder",
    ).optional(),
  })),
});

export type SslTrainConfig = Infer<typeof sslTrainConfigSchema>;
