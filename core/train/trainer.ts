/**
 * A training loop shared by every model: gradient accumulation, global-norm clipping,
 * a learning-rate schedule, AdamW, periodic validation, and crash-safe checkpoints that
 * resume exactly (same data order, same dropout masks, same optimiser state), so a
 * resumed run reproduces the uninterrupted run's losses.
 *
 * The loop reads the loss back only at log intervals: on WebGPU every read costs a
 * device sync (>= 10 ms in Deno).
 */

import { backward } from "../autograd.ts";
import {
  checkpointExists,
  loadCheckpoint,
  modelWeights,
  OPTIM_PREFIX,
  saveCheckpoint,
} from "../io/checkpoint.ts";
import type { HostTensor } from "../io/host_tensor.ts";
import { checkStateDict, type StateDictReport } from "../io/state_dict.ts";
import { hostStateDict, type Module } from "../nn/module.ts";
import * as ops from "../ops/mod.ts";
import { AdamW } from "../optim/adamw.ts";
import { clipGradNorm, clipGradNormOnDevice } from "../optim/clip.ts";
import type { OptimizerState } from "../optim/optimizer.ts";
import { lrAt, type Schedule } from "../optim/schedules.ts";
import { Rng, type RngState } from "../random.ts";
import { type Tensor, tidy } from "../tensor.ts";

export interface TrainSettings {
  maxSteps: number;
  schedule: Schedule;
  betas: [number, number];
  weightDecay: number;
  /** 0 disables clipping. */
  clipNorm: number;
  /** Micro-batches per update (fairseq's update_freq). */
  accumulate: number;
  logInterval: number;
  saveInterval: number;
  /** 0 disables validation. */
  validInterval: number;
  seed: number;
}

/** What a model contributes to the loop. */
export interface TrainJob<B> {
  model: Module;
  /** Number of micro-batches in one pass over the data. */
  batchesPerEpoch: number;
  /** The i-th micro-batch of an epoch, in the epoch's seeded order. */
  batch(epoch: number, index: number, order: Int32Array): B | Promise<B>;
  /** Scalar loss for a batch (dropout draws from gen). */
  loss(batch: B, gen: Rng): Tensor;
  /** Items (tokens, images) per micro-batch, for throughput. */
  itemsPerBatch(batch: B): number;
  /** Mean validation loss (model is in eval mode while it runs). */
  validate?(): Promise<number>;
  /**
   * Extra JSON fields recorded in every checkpoint's meta, e.g. `{ kind, config }` so that
   * loaders can rebuild the model from the checkpoint alone (core/io/checkpoint.ts ModelMeta).
   */
  meta?: Record<string, unknown>;
}

export interface LogRecord {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  itemsPerSecond: number;
  elapsed: number;
  validLoss?: number;
}

export interface TrainHooks {
  onLog?(r: LogRecord): void;
  onSave?(path: string, step: number): void;
  /** `loss`: the step's mean loss where reading it is free (the CPU); undefined on a GPU. */
  onProgress?(step: number, total: number, loss?: number): void;
  /** After each validation, the model still in eval mode (e.g. image grids for TensorBoard). */
  onValidate?(step: number, validLoss: number): void | Promise<void>;
  signal?: AbortSignal;
}

interface TrainState {
  step: number;
  epoch: number;
  position: number;
  dropout: RngState;
  bestValid: number | null;
  losses: number[];
  /**
   * The log line in progress when the checkpoint was written (steps since the last log
   * line), so that a resumed run logs what the uninterrupted run logs. Absent in
   * checkpoints from before it was kept: those resume with an empty sum, as they used to.
   */
  pending?: PendingLog;
}

/** What the next log line sums over. */
interface PendingLog {
  /** The f32 running loss sum as its bit pattern (exact, and JSON keeps NaN and inf); null: none. */
  lossBits: number | null;
  microBatches: number;
  items: number;
  /** The last gradient norm read. */
  gradNorm: number;
}

function f32Bits(value: number): number {
  return new Uint32Array(Float32Array.of(value).buffer)[0];
}

function bitsF32(bits: number): number {
  return new Float32Array(Uint32Array.of(bits).buffer)[0];
}

/** A checkpoint could not be written (disk full, read-only folder...): names the checkpoint. */
export class CheckpointWriteError extends Error {
  constructor(readonly path: string, options: { cause: unknown }) {
    const reason = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(`cannot write checkpoint ${path}: ${reason}`, options);
    this.name = "CheckpointWriteError";
  }
}

/**
 * The checkpoint a run would resume from holds another architecture (the step's model
 * settings changed since it was written). Raised before any training, instead of a
 * state-dict dump half-way through loading; the task runner adds the step's name.
 */
export class ArchitectureChangedError extends Error {
  constructor(readonly path: string, readonly report: StateDictReport) {
    const n = report.missing.length + report.unexpected.length + report.mismatched.length;
    const first = report.mismatched.length
      ? `${report.mismatched[0].key} is [${report.mismatched[0].got}] there, [${
        report.mismatched[0].expected
      }] now`
      : report.missing.length
      ? `${report.missing[0]} is new`
      : `${report.unexpected[0]} is gone`;
    super(
      `the checkpoint ${path} was trained with another architecture than the one configured now (${n} tensor(s) differ; e.g. ${first}); re-run from scratch (--force-step) or write to another --outputs`,
    );
    this.name = "ArchitectureChangedError";
  }
}

export interface TrainResult {
  step: number;
  losses: number[];
  bestValid: number | null;
  interrupted: boolean;
}

/** Train `job` under `settings`, saving to `<dir>/last` (and `<dir>/best`). */
export async function train<B>(
  job: TrainJob<B>,
  settings: TrainSettings,
  dir: string,
  hooks: TrainHooks = {},
  resume = true,
): Promise<TrainResult> {
  await Deno.mkdir(dir, { recursive: true });
  const params = job.model.namedParameters();
  const opt = new AdamW(params.map(([, p]) => p), {
    lr: lrAt(1, settings.schedule),
    betas: settings.betas,
    weightDecay: settings.weightDecay,
  });
  const state: TrainState = {
    step: 0,
    epoch: 0,
    position: 0,
    dropout: new Rng(settings.seed + 1).state(),
    bestValid: null,
    losses: [],
  };
  const last = `${dir}/last`;
  if (resume && await checkpointExists(last)) await restore(last, job.model, opt, state);
  const dropout = new Rng();
  dropout.setState(state.dropout);
  let order = epochOrder(settings.seed, state.epoch, job.batchesPerEpoch);
  let pending: Tensor | null = null; // summed losses since the last log, on the device
  let pendingNorm: Tensor | null = null; // the latest gradient norm, when clipping on the device
  // A resumed run carries on with the log line the checkpoint was taken in the middle of.
  let restoredLossBits = state.pending?.lossBits ?? null;
  let pendingSteps = state.pending?.microBatches ?? 0;
  let items = state.pending?.items ?? 0;
  let lastNorm = state.pending?.gradNorm ?? 0;
  delete state.pending;
  /** The state to checkpoint, with the log line in progress read back from the device. */
  const snapshot = async (): Promise<TrainState> => {
    if (pendingNorm) lastNorm = (await pendingNorm.item()) / settings.accumulate;
    const lossBits = pending ? f32Bits(await pending.item()) : restoredLossBits;
    return {
      ...state,
      dropout: dropout.state(),
      pending: { lossBits, microBatches: pendingSteps, items, gradNorm: lastNorm },
    };
  };
  let clock = performance.now();
  const start = clock;
  let interrupted = false;
  let lastYield = clock;
  // Reading a loss costs a device sync on WebGPU; on the CPU it is free, so the progress
  // bar gets every step's loss there.
  const readable = job.model.parameters()[0]?.backend.readSync !== undefined;
  job.model.train();
  try {
    while (state.step < settings.maxSteps) {
      // CPU steps never return to the event loop; yield now and then so that a SIGINT
      // listener can run and abort the signal.
      if (hooks.signal && performance.now() - lastYield > 50) {
        await new Promise((r) => setTimeout(r, 0));
        lastYield = performance.now();
      }
      if (hooks.signal?.aborted) {
        interrupted = true;
        break;
      }
      let stepLoss = 0;
      for (let micro = 0; micro < settings.accumulate; micro++) {
        if (state.position >= job.batchesPerEpoch) {
          state.epoch++;
          state.position = 0;
          order = epochOrder(settings.seed, state.epoch, job.batchesPerEpoch);
        }
        const batch = await job.batch(state.epoch, state.position++, order);
        items += job.itemsPerBatch(batch);
        const l = tidy(() => {
          const loss = job.loss(batch, dropout);
          backward(loss);
          return loss.keep();
        });
        if (restoredLossBits !== null) {
          // The same f32 value the uninterrupted run holds here, so its sums stay bitwise equal.
          pending = ops.tensor([bitsF32(restoredLossBits)], l.shape, { backend: l.backend }).keep();
          restoredLossBits = null;
        }
        if (readable) stepLoss += await l.item();
        const sum: Tensor = pending ? tidy(() => ops.add(pending!, l)) : l.alias();
        pending?.dispose();
        l.dispose();
        pending = sum.keep();
        pendingSteps++;
      }
      state.step++;
      opt.lr = lrAt(state.step, settings.schedule);
      let scale = 1 / settings.accumulate;
      if (settings.clipNorm > 0) {
        const maxNorm = settings.clipNorm * settings.accumulate;
        if (job.model.parameters()[0]?.backend.readSync) {
          // Reading is free on the CPU: fold the clip into AdamW's gradient scale.
          const c = await clipGradNorm(opt.params, maxNorm);
          lastNorm = c.norm / settings.accumulate;
          scale *= c.scale;
        } else {
          pendingNorm?.dispose();
          pendingNorm = clipGradNormOnDevice(opt.params, maxNorm).keep();
        }
      }
      opt.update(scale);
      opt.zeroGrad();
      hooks.onProgress?.(
        state.step,
        settings.maxSteps,
        readable ? stepLoss / settings.accumulate : undefined,
      );
      const logNow = state.step % settings.logInterval === 0 || state.step === settings.maxSteps;
      let validLoss: number | undefined;
      if (
        job.validate && settings.validInterval > 0 &&
        (state.step % settings.validInterval === 0 || state.step === settings.maxSteps)
      ) {
        job.model.eval();
        validLoss = await job.validate();
        await hooks.onValidate?.(state.step, validLoss);
        job.model.train();
        if (state.bestValid === null || validLoss < state.bestValid) {
          state.bestValid = validLoss;
          await save(`${dir}/best`, job, opt, await snapshot());
          hooks.onSave?.(`${dir}/best`, state.step);
        }
      }
      if (logNow && pending) {
        const loss = (await pending.item()) / pendingSteps;
        if (pendingNorm) lastNorm = (await pendingNorm.item()) / settings.accumulate;
        pending.dispose();
        pending = null;
        const now = performance.now();
        state.losses.push(loss);
        hooks.onLog?.({
          step: state.step,
          loss,
          lr: opt.lr,
          gradNorm: lastNorm,
          itemsPerSecond: items / ((now - clock) / 1000),
          elapsed: (now - start) / 1000,
          validLoss,
        });
        pendingSteps = 0;
        items = 0;
        clock = now;
      }
      if (state.step % settings.saveInterval === 0 || state.step === settings.maxSteps) {
        await save(last, job, opt, await snapshot());
        hooks.onSave?.(last, state.step);
      }
    }
    if (interrupted) {
      await save(last, job, opt, await snapshot());
      hooks.onSave?.(last, state.step);
    }
  } finally {
    pending?.dispose();
    pendingNorm?.dispose();
    opt.dispose();
  }
  return { step: state.step, losses: state.losses, bestValid: state.bestValid, interrupted };
}

/** The permutation of batch indices for an epoch: a pure function of (seed, epoch). */
export function epochOrder(seed: number, epoch: number, n: number): Int32Array {
  return new Rng(seed).fork(epoch).permutation(n);
}

async function save<B>(
  path: string,
  job: TrainJob<B>,
  opt: AdamW,
  state: TrainState,
): Promise<void> {
  try {
    await writeCheckpoint(path, job.model, opt, state, job.meta);
  } catch (e) {
    // A full disk fails in write(), whose OS message names no file; say which checkpoint.
    throw new CheckpointWriteError(path, { cause: e });
  }
}

async function writeCheckpoint(
  path: string,
  model: Module,
  opt: AdamW,
  state: TrainState,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const weights = await hostStateDict(model);
  const optState = await opt.state();
  const names = model.namedParameters().map(([n]) => n);
  for (const [kind, list] of Object.entries(optState.buffers)) {
    list.forEach((data, i) => weights.set(`${OPTIM_PREFIX}${kind}.${names[i]}`, host(data)));
  }
  await saveCheckpoint(path, weights, {
    ...extra,
    train: state,
    optimizer: { kind: optState.kind, step: optState.step, lr: optState.lr },
  });
}

function host(data: Float32Array): HostTensor {
  return { dtype: "f32", shape: [data.length], data, sourceDtype: "f32" };
}

async function restore(path: string, model: Module, opt: AdamW, state: TrainState): Promise<void> {
  const ck = await loadCheckpoint(path);
  const meta = ck.meta as {
    train: TrainState;
    optimizer: { kind: string; step: number; lr: number };
  };
  const weights = modelWeights(ck.weights);
  const expected = new Map([...model.stateDict()].map(([k, t]) => [k, [...t.shape]]));
  const report = checkStateDict(expected, weights, { strict: false, what: `checkpoint ${path}` });
  if (report.missing.length + report.unexpected.length + report.mismatched.length > 0) {
    throw new ArchitectureChangedError(path, report);
  }
  model.loadStateDict(weights, { strict: true, what: `checkpoint ${path}` });
  const names = model.namedParameters().map(([n]) => n);
  const buffers: OptimizerState["buffers"] = {};
  for (const kind of ["m", "v"]) {
    buffers[kind] = names.map((n) => {
      const t = ck.weights.get(`${OPTIM_PREFIX}${kind}.${n}`);
      if (!t) throw new Error(`checkpoint ${path}: optimiser state for '${n}' is missing`);
      return t.data as Float32Array;
    });
  }
  opt.loadState({ ...meta.optimizer, buffers });
  Object.assign(state, meta.train);
}
