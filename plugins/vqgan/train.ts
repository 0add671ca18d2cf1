/**
 * Training a VQGAN from scratch on small images (DiGIT itself keeps MAGE's VQGAN frozen):
 * pixel reconstruction (L1 or L2) + codebook + beta*commitment, optional dead-code
 * restarts, through the shared training loop (AdamW, schedule, clipping, exact resume,
 * checkpoints in `<outDir>/checkpoints/{last,best}`, each recording `{ kind: "vqgan", config }`
 * in its meta, read back by loadVqgan). Writes `<outDir>/reconstructions.png`.
 */

import { writePng } from "../../core/image/codec.ts";
import type { ImageBatch } from "../../core/interfaces.ts";
import * as ops from "../../core/ops/mod.ts";
import type { Schedule } from "../../core/optim/schedules.ts";
import { Rng } from "../../core/random.ts";
import type { Dataset } from "../../core/data/dataset.ts";
import { type DatasetSpec, openDataset } from "../../core/data/mod.ts";
import { readImages } from "../../core/data/read_images.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { train, type TrainHooks, type TrainResult } from "../../core/train/trainer.ts";
import { noGrad } from "../../core/autograd.ts";
import { fitKMeans } from "../kmeans/lloyd.ts";
import { memorySource } from "../kmeans/source.ts";
import type { VqganTrainConfig } from "./config.ts";
import { ContactSheet, imageAt, imagesToTensor, psnr } from "./images.ts";
import { vqganMeta } from "./load.ts";
import { VQGAN, VQGAN_PRESETS, type VqganConfig } from "./vqgan.ts";

/** The architecture a config asks for: its preset with explicit keys on top. */
export function vqganConfigFrom(cfg: VqganTrainConfig, imageSize?: number): VqganConfig {
  const m = cfg.model;
  const p = VQGAN_PRESETS[m.preset];
  const z = m.z_channels ?? p.zChannels;
  return {
    ...p,
    ch: m.ch ?? p.ch,
    chMult: m.ch_mult ?? p.chMult,
    numResBlocks: m.num_res_blocks ?? p.numResBlocks,
    zChannels: z,
    embedDim: m.code_dim ?? z,
    nEmbed: m.n_embed ?? p.nEmbed,
    normGroups: m.norm_groups ?? p.normGroups,
    resolution: m.resolution ?? imageSize ?? p.resolution,
    beta: cfg.loss.beta,
    // Recorded in the checkpoint even at their defaults: loaders cannot read them off the weights.
    patch: m.patch,
    l2Codes: m.l2_codes,
    outNorm: m.out_norm,
    norm: m.norm,
  };
}

/** Load the first `limit` images of a dataset into one batch (small datasets only). */
export async function collectImages(
  dataset: Dataset,
  limit = Infinity,
  first = 0,
  signal?: AbortSignal,
): Promise<ImageBatch & { labels: Int32Array }> {
  return await readImages(dataset, { what: "vqgan", first, count: limit, signal });
}

/**
 * Moves codes that no image used during the last interval onto encoder outputs of a
 * recent batch (plus a little noise), so that a small codebook does not collapse. Code
 * usage is counted on the device (a scatter-add per step), and the host reads it only at
 * interval boundaries, asynchronously: no per-step reads, so WebGPU never stalls on it.
 */
class DeadCodeRestarter {
  /** (nEmbed, 1) uses of each code since the last boundary, on the device. */
  #usage: Tensor | null = null;
  /** The code-space latents of a boundary step, kept until `update` re-seeds from them. */
  #boundary: { tick: number; z: Tensor } | null = null;
  constructor(readonly model: VQGAN, readonly interval: number, readonly seed: number) {}

  /** Count a step's codes; keep its encoder output when it ends an interval (called inside the loss). */
  record(tick: number, indices: Tensor, z: Tensor): void {
    const ids = ops.reshape(indices.detach(), [-1]);
    const counts = ops.scatterAdd(
      ops.fill([ids.shape[0], 1], 1, ids.backend),
      ids,
      this.model.cfg.nEmbed,
    );
    const usage = (this.#usage ? ops.add(this.#usage, counts) : counts.alias()).keep();
    this.#usage?.dispose();
    this.#usage = usage;
    if ((tick + 1) % this.interval === 0) {
      this.#boundary?.z.dispose();
      this.#boundary = { tick, z: z.detach().keep() };
    }
  }

  /** After a boundary step: re-seed the codes it found unused, and start counting afresh. */
  async update(): Promise<{ step: number; codes: number } | null> {
    const p = this.#boundary;
    if (!p || !this.#usage) return null;
    this.#boundary = null;
    const usage = (await this.#usage.data()) as Float32Array;
    const z = (await p.z.data()) as Float32Array;
    const [B, d, H, W] = p.z.shape;
    p.z.dispose();
    this.#usage.dispose();
    this.#usage = null;
    const dead: number[] = [];
    usage.forEach((u, i) => u === 0 && dead.push(i));
    if (dead.length === 0) return null;
    const gen = new Rng(this.seed).fork(p.tick);
    const w = this.model.quantize.embedding.weight;
    const table = Float32Array.from((await w.data()) as Float32Array);
    const plane = H * W;
    for (const code of dead) {
      // A random position (b, y, x) of the batch; z is (B, d, H, W).
      const r = gen.int(B * plane);
      const b = Math.floor(r / plane), yx = r % plane;
      for (let k = 0; k < d; k++) {
        table[code * d + k] = z[(b * d + k) * plane + yx] + 0.01 * gen.normal();
      }
    }
    tidy(() => {
      const fresh = ops.tensor(table, w.shape);
      w.backend.copyInto(w.view(), fresh.view());
    });
    return { step: p.tick + 1, codes: dead.length };
  }

  dispose(): void {
    this.#usage?.dispose();
    this.#usage = null;
    this.#boundary?.z.dispose();
    this.#boundary = null;
  }
}

function scheduleFrom(cfg: VqganTrainConfig): Schedule {
  const { lr, max_update } = cfg.optimization;
  const warmup = cfg.lr_scheduler.warmup_updates;
  switch (cfg.lr_scheduler.kind) {
    case "cosine":
      return { kind: "cosine", lr, total: max_update, warmup, minLr: lr * 0.01 };
    case "constant":
      return warmup > 0 ? { kind: "linear_warmup", lr, warmup } : { kind: "constant", lr };
    case "inverse_sqrt":
      return { kind: "inverse_sqrt", lr, warmup, initLr: 1e-7 };
  }
}

export interface VqganTrainHooks extends TrainHooks {
  /** Held-out images: validation loss (pixel MSE) and the reconstruction preview. */
  valid?: ImageBatch;
  resume?: boolean;
  onRestart?(step: number, codes: number): void;
}

export interface VqganRun {
  model: VQGAN;
  result: TrainResult;
  /** PSNR (dB) of the held-out (or first training) images reconstructed after training. */
  psnr: number;
}

/**
 * The whole job from a config: open `dataset.source`, take `train_images` then
 * `valid_images` held-out images, train, write everything under `outDir`.
 */
export async function trainVqganFromConfig(
  cfg: VqganTrainConfig,
  outDir: string,
  hooks: VqganTrainHooks = {},
): Promise<VqganRun> {
  if (!cfg.dataset.source) {
    throw new Error("vqgan: dataset.source is not set (e.g. {kind: shapes, size: 32})");
  }
  const ds = await openDataset(cfg.dataset.source as DatasetSpec);
  const train = await collectImages(ds, cfg.dataset.train_images, 0, hooks.signal);
  const valid = cfg.dataset.valid_images > 0 && ds.length > train.count
    ? await collectImages(ds, cfg.dataset.valid_images, train.count, hooks.signal)
    : undefined;
  return await trainVqgan(cfg, train, outDir, { valid, ...hooks });
}

/** Reconstruct images through the VQGAN (encode, quantise, decode) as uint8. */
export async function reconstruct(model: VQGAN, images: ImageBatch): Promise<ImageBatch> {
  return await model.decode(await model.encode(images));
}

export async function trainVqgan(
  cfg: VqganTrainConfig,
  data: ImageBatch | Dataset,
  outDir: string,
  hooks: VqganTrainHooks = {},
): Promise<VqganRun> {
  const images = "data" in data ? data : await collectImages(data, Infinity, 0, hooks.signal);
  if (images.height !== images.width) {
    throw new Error(`vqgan: training images must be square, got ${images.height}x${images.width}`);
  }
  const mc = vqganConfigFrom(cfg, images.height);
  if (mc.resolution !== images.height) {
    throw new Error(
      `vqgan: model.resolution ${mc.resolution} does not match ${images.height}x${images.width} training images`,
    );
  }
  await Deno.mkdir(outDir, { recursive: true });
  const model = new VQGAN(mc, new Rng(cfg.common.seed));
  const B = cfg.dataset.batch_size;
  if (images.count < B) {
    throw new Error(`vqgan: ${images.count} training images are fewer than one batch of ${B}`);
  }
  const batchesPerEpoch = Math.floor(images.count / B);
  const restarter = cfg.loss.dead_code_restart > 0
    ? new DeadCodeRestarter(model, cfg.loss.dead_code_restart, cfg.common.seed + 7)
    : null;
  const valid = hooks.valid;
  const warmup = cfg.loss.vq_warmup;
  const pixelLoss = (recon: Tensor, x: Tensor) => {
    const diff = ops.sub(recon, x);
    return ops.mean(cfg.loss.reconstruction === "l1" ? ops.abs(diff) : ops.square(diff));
  };

  const result = await train<{ rows: number[]; tick: number }>(
    {
      model,
      batchesPerEpoch,
      batch: async (epoch, index, order) => {
        const tick = epoch * batchesPerEpoch + index;
        if (cfg.loss.kmeans_init && tick === warmup) {
          const fitted = await fitCodebookToEncoder(
            model,
            images,
            cfg.common.seed + 11,
            hooks.signal,
          );
          hooks.onRestart?.(tick, fitted);
        }
        const restart = await restarter?.update();
        if (restart) hooks.onRestart?.(restart.step, restart.codes);
        const perm = new Rng(cfg.common.seed).fork(1000 + epoch).permutation(images.count);
        const rows = Array.from(perm.subarray(order[index] * B, order[index] * B + B));
        return { rows, tick };
      },
      loss: ({ rows, tick }) => {
        const x = stackRows(images, rows);
        const z = model.encoder.forward(x);
        if (tick < warmup) return pixelLoss(model.decoder.forward(model.quantize.bypass(z)), x);
        const vq = model.quantize.forward(z);
        restarter?.record(tick, vq.indices, vq.latent);
        const rec = pixelLoss(model.decoder.forward(vq.quantized), x);
        return ops.add(
          rec,
          ops.mul(model.quantize.loss(vq, cfg.loss.legacy), cfg.loss.codebook_weight),
        );
      },
      itemsPerBatch: ({ rows }) => rows.length,
      validate: valid ? () => pixelMse(model, valid) : undefined,
      meta: vqganMeta(mc),
    },
    {
      maxSteps: cfg.optimization.max_update,
      schedule: scheduleFrom(cfg),
      betas: [cfg.optimizer.adam_betas[0] ?? 0.5, cfg.optimizer.adam_betas[1] ?? 0.9],
      weightDecay: cfg.optimizer.weight_decay,
      clipNorm: cfg.optimization.clip_norm,
      accumulate: 1,
      logInterval: cfg.common.log_interval,
      saveInterval: cfg.checkpoint.save_interval_updates,
      validInterval: valid ? cfg.checkpoint.save_interval_updates : 0,
      seed: cfg.common.seed,
    },
    `${outDir}/checkpoints`,
    hooks,
    hooks.resume ?? true,
  ).finally(() => restarter?.dispose());

  model.eval();
  const shown = valid ?? images;
  const n = Math.min(cfg.preview.count, shown.count);
  const sample = {
    ...shown,
    count: n,
    data: shown.data.subarray(0, n * shown.height * shown.width * 3),
  };
  const recon = await reconstruct(model, sample);
  if (n > 0) await writePng(`${outDir}/reconstructions.png`, pairsSheet(sample, recon).image);
  return { model, result, psnr: psnr(sample, recon) };
}

/**
 * K-means of the encoder's code-space vectors on up to 512 training images (spherical for
 * l2 codes), copied into the codebook: after the warm-up every code starts where encoder
 * outputs are, so none is dead from the start. Returns the number of codes set.
 */
async function fitCodebookToEncoder(
  model: VQGAN,
  images: ImageBatch,
  seed: number,
  signal?: AbortSignal,
): Promise<number> {
  const q = model.quantize;
  const n = Math.min(images.count, 512);
  const chunks: Float32Array[] = [];
  for (let i = 0; i < n; i += 64) {
    signal?.throwIfAborted();
    const rows = tidy(() =>
      noGrad(() => {
        const u = q.toCodeSpace(
          model.encoder.forward(imagesToTensor(images, i, Math.min(64, n - i))),
        );
        return ops.contiguous(ops.permute(u, [0, 2, 3, 1]));
      })
    );
    chunks.push(Float32Array.from((await rows.data()) as Float32Array));
    rows.dispose();
  }
  const data = new Float32Array(chunks.reduce((t, c) => t + c.length, 0));
  chunks.reduce((at, c) => (data.set(c, at), at + c.length), 0);
  const { centroids } = await fitKMeans(memorySource(data, q.dim), {
    k: q.codes,
    iterations: 15,
    seed,
    spherical: q.l2,
    maxPointsPerCentroid: 0,
    minPointsPerCentroid: 0,
    signal,
  });
  const w = q.embedding.weight;
  tidy(() => w.backend.copyInto(w.view(), ops.tensor(centroids, w.shape).view()));
  return q.codes;
}

/** The chosen images as one (n, 3, H, W) tensor. */
function stackRows(images: ImageBatch, rows: number[]): Tensor {
  const per = images.height * images.width * 3;
  const data = new Uint8Array(rows.length * per);
  rows.forEach((r, i) => data.set(images.data.subarray(r * per, (r + 1) * per), i * per));
  return imagesToTensor({ ...images, data, count: rows.length });
}

/** Mean squared pixel error in [0, 1] units over a held-out batch. */
async function pixelMse(model: VQGAN, images: ImageBatch): Promise<number> {
  let total = 0;
  for (let i = 0; i < images.count; i += model.batchSize) {
    const n = Math.min(model.batchSize, images.count - i);
    const se = tidy(() => {
      const x = imagesToTensor(images, i, n);
      const y = model.decodeTensor(model.encodeTensor(x));
      return ops.sum(ops.square(ops.sub(y, x)));
    });
    total += await se.item();
    se.dispose();
  }
  return total / (images.count * 3 * images.height * images.width);
}

/** Originals on even rows, reconstructions right below them. */
function pairsSheet(originals: ImageBatch, recon: ImageBatch): ContactSheet {
  const columns = Math.min(8, originals.count);
  const rows = Math.ceil(originals.count / columns);
  const sheet = new ContactSheet(
    rows * 2 * columns,
    columns,
    originals.height,
    originals.width,
    Math.max(originals.height, 64),
  );
  for (let r = 0; r < rows; r++) {
    for (const src of [originals, recon]) {
      for (let c = 0; c < columns; c++) {
        const i = r * columns + c;
        sheet.add(
          i < src.count ? imageAt(src, i) : {
            width: src.width,
            height: src.height,
            data: new Uint8Array(src.width * src.height * 3).fill(255),
          },
        );
      }
    }
  }
  return sheet;
}
