/**
 * SimCLR training of the SSL encoder through the shared training loop (AdamW, cosine
 * schedule, clipping, exact resume, checkpoints in `<outDir>/checkpoints/last`).
 *
 * Each update takes `batch_size` images, draws two augmented views of each from a generator
 * forked by the update number (so a resumed run draws the same views), and minimises
 * NT-Xent on the projected embeddings. When training ends, the encoder alone (no head, no
 * optimiser state) is written to `<outDir>/encoder`, a self-describing checkpoint whose
 * metadata says `kind: "ssl-encoder"` and carries the architecture: that is what the
 * `ssl-encoder` encoder loads.
 */

import { readImages } from "../../core/data/read_images.ts";
import type { Dataset } from "../../core/data/dataset.ts";
import { type DatasetSpec, openDataset } from "../../core/data/mod.ts";
import type { ImageBatch } from "../../core/interfaces.ts";
import { saveCheckpoint } from "../../core/io/checkpoint.ts";
import { hostStateDict } from "../../core/nn/module.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import { train, type TrainHooks, type TrainResult } from "../../core/train/trainer.ts";
import {
  augmentBatch,
  type AugmentConfig,
  correspondingCells,
  type ViewGeometry,
} from "./augment.ts";
import type { SslTrainConfig } from "./config.ts";
import { ntXent, patchCorrespondence, patchToImage } from "./loss.ts";
import { SslEncoderNet, type SslModelConfig } from "./model.ts";

export const SSL_KIND = "ssl-encoder";

/** What `<outDir>/encoder.json` records besides the weights. */
export interface SslEncoderMeta {
  kind: typeof SSL_KIND;
  config: SslModelConfig;
  /** Where the weights came from, for people reading the file. */
  trained: { method: "simclr"; updates: number; dataset: unknown };
}

export function modelConfigFrom(cfg: SslTrainConfig, imageSize: number): SslModelConfig {
  const m = cfg.model;
  return {
    input: m.input,
    imageSize,
    grid: m.grid,
    stemKernel: m.stem_kernel,
    stemStride: m.stem_stride,
    widths: m.widths,
    depth: m.depth,
    groups: m.groups,
    projHidden: m.proj_hidden,
    projDim: m.proj_dim,
  };
}

export function augmentConfigFrom(cfg: SslTrainConfig): AugmentConfig {
  const a = cfg.augment;
  return {
    cropScale: [a.crop_scale[0], a.crop_scale[1]],
    cropRatio: [a.crop_ratio[0], a.crop_ratio[1]],
    rotation: a.rotation,
    hflip: a.hflip,
    vflip: a.vflip,
    jitterProb: a.jitter_prob,
    brightness: a.brightness,
    contrast: a.contrast,
    saturation: a.saturation,
    hue: a.hue,
    grayscaleProb: a.grayscale_prob,
    blurProb: a.blur_prob,
    blurSigma: [a.blur_sigma[0], a.blur_sigma[1]],
    noise: a.noise,
  };
}

/** Every image of a dataset in one batch (the SSL step trains on small datasets held in memory). */
export async function loadImages(dataset: Dataset, signal?: AbortSignal): Promise<ImageBatch> {
  return await readImages(dataset, { what: "train-ssl-encoder", square: true, signal });
}

export interface SslRun {
  model: SslEncoderNet;
  result: TrainResult;
  /** Path of the encoder checkpoint (no extension; the marker is `<path>.json`). */
  encoder: string;
}

export interface SslTrainHooks extends TrainHooks {
  resume?: boolean;
}

export async function trainSslFromConfig(
  cfg: SslTrainConfig,
  outDir: string,
  hooks: SslTrainHooks = {},
): Promise<SslRun> {
  const dataset = await openDataset(cfg.dataset.source as DatasetSpec);
  return await trainSsl(cfg, await loadImages(dataset, hooks.signal), outDir, hooks);
}

export async function trainSsl(
  cfg: SslTrainConfig,
  images: ImageBatch,
  outDir: string,
  hooks: SslTrainHooks = {},
): Promise<SslRun> {
  const B = cfg.dataset.batch_size;
  if (images.count < B) {
    throw new Error(
      `train-ssl-encoder: ${images.count} training images are fewer than one batch of ${B} (lower dataset.batch_size)`,
    );
  }
  const mc = modelConfigFrom(cfg, images.height);
  const aug = augmentConfigFrom(cfg);
  const model = new SslEncoderNet(mc, new Rng(cfg.common.seed));
  const batchesPerEpoch = Math.floor(images.count / B);
  const { seed } = cfg.common;
  const S = images.height;

  const result = await train<{ rows: Int32Array; tick: number }>(
    {
      model,
      batchesPerEpoch,
      batch: (epoch, index, order) => {
        const perm = new Rng(seed).fork(1000 + epoch).permutation(images.count);
        return {
          rows: perm.subarray(order[index] * B, order[index] * B + B),
          tick: epoch * batchesPerEpoch + index,
        };
      },
      loss: ({ rows, tick }) => {
        // Both views of the whole batch go through the network as one batch of 2B: bigger GEMMs.
        const gen = new Rng(seed + 17).fork(tick);
        const views = new Float32Array(2 * B * 3 * S * S);
        const geometry1: ViewGeometry[] = [], geometry2: ViewGeometry[] = [];
        views.set(augmentBatch(images, rows, aug, gen.fork(0), geometry1), 0);
        views.set(augmentBatch(images, rows, aug, gen.fork(1), geometry2), B * 3 * S * S);
        const fmap = model.features(ops.tensor(views, [2 * B, 3, S, S]));
        const z = model.project(fmap);
        const t = cfg.loss.temperature, w = cfg.loss.patch_weight, wd = cfg.loss.dense_weight;
        let loss = ntXent(z, t);
        const patches = w > 0 || wd > 0 ? model.projectPatches(fmap) : null;
        if (patches && w > 0) loss = ops.add(loss, ops.mul(patchToImage(patches, z, t), w));
        if (patches && wd > 0) {
          const n = B * mc.grid * mc.grid;
          const pairs = correspondingCells(geometry1, geometry2, S, mc.grid);
          const dense = patchCorrespondence(
            ops.slice(patches, 0, 0, n),
            ops.slice(patches, 0, n, 2 * n),
            pairs.first,
            pairs.second,
            t,
          );
          loss = ops.add(loss, ops.mul(dense, wd));
        }
        return loss;
      },
      itemsPerBatch: ({ rows }) => rows.length,
    },
    {
      maxSteps: cfg.optimization.max_update,
      schedule: {
        kind: "cosine",
        lr: cfg.optimization.lr,
        total: cfg.optimization.max_update,
        warmup: cfg.lr_scheduler.warmup_updates,
        minLr: cfg.optimization.lr * 0.01,
      },
      betas: [cfg.optimizer.adam_betas[0] ?? 0.9, cfg.optimizer.adam_betas[1] ?? 0.999],
      weightDecay: cfg.optimizer.weight_decay,
      clipNorm: cfg.optimization.clip_norm,
      accumulate: 1,
      logInterval: cfg.common.log_interval,
      saveInterval: cfg.checkpoint.save_interval_updates,
      validInterval: 0,
      seed,
    },
    `${outDir}/checkpoints`,
    hooks,
    hooks.resume ?? true,
  );

  model.eval();
  const encoder = `${outDir}/encoder`;
  const meta: SslEncoderMeta = {
    kind: SSL_KIND,
    config: mc,
    trained: { method: "simclr", updates: result.step, dataset: cfg.dataset.source },
  };
  await saveCheckpoint(encoder, await hostStateDict(model), meta);
  return { model, result, encoder };
}
