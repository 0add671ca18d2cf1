/**
 * Everything a training run reports, behind the trainer's hooks: one object per run that
 * writes the experiment folder's `train.log` (plain text) and `tb/` (TensorBoard scalars),
 * draws the progress bar, and echoes log records to the step's logger.
 *
 *   using report = new TrainReporter(dir, ctx.log, { signal: ctx.signal, label: "stage 1", unit: "tok" });
 *   report.finish(await train(job, settings, `${dir}/checkpoints`, report.hooks));
 *
 * `finish` writes the outcome (finished, or interrupted with the checkpoint to resume from)
 * and closes the files; `using` (or `close()` in a `finally`) closes them on errors too.
 * Everything is written as it happens, so a crash or a second Ctrl-C loses at most the
 * last fsync.
 *
 * train.log starts with a header: the device (and GPU adapter), the BLAS the CPU backend
 * uses, the git commit of this code, and the resolved config.
 *
 * TensorBoard: scalars train/loss, train/lr, train/grad_norm, train/<unit>_per_sec,
 * valid/loss; the config as text (tag "config"); image grids from the `images` option at
 * each validation (tags "images/<name>"); and at `finish`, the hparams plugin's view of the
 * run: the config's scalar leaves as hyperparameters and the final metrics
 * (final/train_loss, final/valid_loss and what `finish` is given).
 */

import { defaultBackend } from "../device.ts";
import type { RgbImage } from "../image/rgb.ts";
import { formatDuration, humanCount, ProgressBar, type ProgressOptions } from "../log/progress.ts";
import { type HParamValue, TensorBoardWriter } from "../log/tensorboard.ts";
import { TextLog } from "../log/text_log.ts";
import { blasDescription } from "../native/openblas.ts";
import type { Logger } from "../registry.ts";
import type { LogRecord, TrainHooks, TrainResult } from "./trainer.ts";

/** Named image grids for TensorBoard, e.g. { samples: grid } or { reconstructions: grid }. */
export type ImageGrids = Record<string, RgbImage>;

/**
 * The trainer's hooks as the reporter implements them. `loss` in onProgress is the step's
 * loss where the trainer can read it for free (the CPU); `onValidate` runs after each
 * validation with the model still in eval mode, so `images` can use it.
 */
export interface ReporterHooks extends TrainHooks {
  /** false: train from scratch even when a checkpoint exists (a forced step). */
  resume: boolean;
  onProgress(step: number, total: number, loss?: number): void;
  onValidate(step: number, validLoss: number): Promise<void>;
}

export interface TrainReporterOptions {
  /** Stopping request (the step's ctx.signal); handed to the trainer through `hooks`. */
  signal?: AbortSignal;
  /** Start over rather than resume from `checkpoints/last` (the step's ctx.fresh). */
  fresh?: boolean;
  /** Names the run on the bar and in log lines, e.g. "stage 1". */
  label?: string;
  /** What the trainer's items are: "tok" gives "tok/s" and the tag train/tok_per_sec. */
  unit?: string;
  /**
   * "bar" (default): a ProgressBar on stderr (redrawn in place on a terminal, a plain line
   * every 10 s otherwise). "logger": progress goes to `log.progress` instead (servers, tests).
   */
  progress?: "bar" | "logger";
  /** Overrides for the ProgressBar (write, isTTY, intervalSec, now...). */
  bar?: Partial<ProgressOptions>;
  /** Echo each log record to `log.info` (default true). */
  echo?: boolean;
  /** Clocks for tests: ms since epoch for train.log, seconds for TensorBoard. */
  now?: () => number;
  /**
   * The resolved config, for the train.log header, TensorBoard's text tab and the hparams
   * tab. Default: DIR/config.json when the step wrote one.
   */
  config?: unknown;
  /**
   * Image grids to show in TensorBoard, made at each validation (stage 1 has none; the
   * VQGAN has reconstructions). Called with the step; the model is in eval mode.
   */
  images?: (step: number) => ImageGrids | Promise<ImageGrids>;
  /** The device line of the header (default: the default backend's description). */
  device?: string;
}

/** The part of a TrainResult the reporter needs. */
export type TrainOutcome = Pick<TrainResult, "step" | "interrupted">;

export class TrainReporter {
  readonly text: TextLog;
  readonly tb: TensorBoardWriter;
  readonly label: string;
  readonly unit: string;
  #bar: ProgressBar | null = null;
  #barWrite: (text: string) => void;
  #barTTY: boolean;
  #firstStep = -1;
  #lastElapsed = 0;
  #lastSave: { path: string; step: number } | null = null;
  #closed = false;
  #onAbort: () => void;
  /**
   * The `images` option, settable after construction: a step whose model is built inside
   * its train function sets it once the model exists.
   */
  images?: (step: number) => ImageGrids | Promise<ImageGrids>;
  readonly #config: unknown;
  readonly #startTime: number;
  /** Whether the trainer hands each step's loss to onProgress (the bar then ignores log means). */
  #stepLosses = false;
  #lastLoss: number | undefined;
  #lastValid: number | undefined;

  constructor(
    readonly dir: string,
    readonly log: Logger,
    private readonly opts: TrainReporterOptions = {},
  ) {
    this.label = opts.label ?? "train";
    this.unit = opts.unit ?? "items";
    this.text = new TextLog(`${dir}/train.log`, { now: opts.now });
    this.tb = new TensorBoardWriter(`${dir}/tb`, opts.now ? { now: () => opts.now!() / 1000 } : {});
    const encoder = new TextEncoder();
    this.#barWrite = opts.bar?.write ?? ((t) => writeAll(Deno.stderr, encoder.encode(t)));
    this.#barTTY = opts.bar?.isTTY ?? Deno.stderr.isTerminal();
    this.#startTime = opts.now ? opts.now() / 1000 : Date.now() / 1000;
    this.#config = opts.config ?? readJson(`${dir}/config.json`);
    this.text.log(`start ${this.label} in ${dir}`);
    for (const line of runHeader(opts.device, this.#config)) this.text.log(line);
    if (this.#config !== undefined) {
      // Indented four spaces: a Markdown code block, so the text tab keeps the layout.
      const json = JSON.stringify(this.#config, null, 2).replace(/^/gm, "    ");
      this.tb.addText("config", json, 0);
    }
    // Ctrl-C: the trainer saves at its next step boundary; note it and make the logs durable now.
    this.#onAbort = () => {
      this.text.log("interrupt requested: saving a checkpoint at the end of this step");
      this.tb.flush();
    };
    opts.signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** The trainer's hooks (and the stopping signal): pass to `train` or a model's train function. */
  get hooks(): ReporterHooks {
    return {
      resume: !this.opts.fresh,
      signal: this.opts.signal,
      onLog: (r) => this.onLog(r),
      onProgress: (step, total, loss) => this.onProgress(step, total, loss),
      onSave: (path, step) => this.onSave(path, step),
      onValidate: (step, validLoss) => this.onValidate(step, validLoss),
    };
  }

  /** After a validation: the `images` grids to TensorBoard (tags images/<name>). */
  async onValidate(step: number, _validLoss: number): Promise<void> {
    const images = this.images ?? this.opts.images;
    if (!images) return;
    const grids = await images(step);
    for (const [name, grid] of Object.entries(grids)) {
      this.tb.addImage(`images/${name}`, grid, step);
    }
    this.text.log(`step ${step} images: ${Object.keys(grids).join(", ")}`);
  }

  onProgress(step: number, total: number, loss?: number): void {
    if (loss !== undefined) this.#stepLosses = true;
    if (this.#firstStep < 0) {
      this.#firstStep = step;
      if (step > 1) this.text.log(`resumed at step ${step - 1} of ${total}`);
    }
    if (this.opts.progress === "logger") {
      this.log.progress(this.label, step, total);
      return;
    }
    if (this.#bar === null) {
      // A resumed run counts only its own steps, so that the rate and ETA are right.
      const done = this.#firstStep - 1;
      const label = done > 0 ? `${this.label} (resumed at ${done})` : this.label;
      this.#bar = new ProgressBar({
        total: Math.max(1, total - done),
        label,
        unit: this.unit,
        write: this.#barWrite,
        isTTY: this.#barTTY,
        ...this.opts.bar,
      });
      if (loss !== undefined) this.#bar.addLoss(loss);
      // The bar's clock starts now, after this first step: drawing it would claim an absurd
      // rate. onLog hands it the trainer's elapsed time, so "took" still counts this step.
      return;
    }
    // The last step is drawn by onLog (the trainer always logs it), with its loss.
    if (step < total) this.#bar.update(step - (this.#firstStep - 1), { loss });
    else if (loss !== undefined) this.#bar.addLoss(loss);
  }

  onLog(r: LogRecord): void {
    const values: Record<string, number> = {
      loss: r.loss,
      lr: r.lr,
      grad_norm: r.gradNorm,
      [`${this.unit}/s`]: r.itemsPerSecond,
    };
    if (r.validLoss !== undefined) values.valid_loss = r.validLoss;
    this.text.scalars(r.step, values);
    const scalars: Record<string, number> = {
      "train/loss": r.loss,
      "train/lr": r.lr,
      "train/grad_norm": r.gradNorm,
      [`train/${this.unit}_per_sec`]: r.itemsPerSecond,
    };
    if (r.validLoss !== undefined) scalars["valid/loss"] = r.validLoss;
    this.tb.addScalars(scalars, r.step);
    this.#lastLoss = r.loss;
    if (r.validLoss !== undefined) this.#lastValid = r.validLoss;
    // The trainer counts items between log records; give the bar the same count.
    const seconds = Math.max(0, r.elapsed - this.#lastElapsed);
    this.#lastElapsed = r.elapsed;
    if (this.#bar) {
      const items = Number.isFinite(r.itemsPerSecond) ? r.itemsPerSecond * seconds : 0;
      // Without per-step losses, the log line's mean is the freshest loss there is.
      const loss = this.#stepLosses ? undefined : r.loss;
      this.#bar.update(r.step - (this.#firstStep - 1), { loss, items, elapsed: r.elapsed });
    }
    if (this.opts.echo ?? true) {
      const valid = r.validLoss !== undefined ? `  valid ${r.validLoss.toFixed(4)}` : "";
      this.#info(
        `step ${r.step}  loss ${r.loss.toFixed(4)}  lr ${r.lr.toExponential(3)}  ` +
          `gnorm ${r.gradNorm.toFixed(3)}  ${humanCount(r.itemsPerSecond)} ${this.unit}/s${valid}`,
      );
    }
  }

  onSave(path: string, step: number): void {
    this.#lastSave = { path, step };
    this.text.log(`saved checkpoint ${path} at step ${step}`);
    this.tb.flush();
    this.log.debug(`saved checkpoint ${path} at step ${step}`);
  }

  /** A free-form line in train.log (and the logger), e.g. "restarted 12 dead codes". */
  note(message: string): void {
    this.text.log(message);
    this.#info(message);
  }

  /** Scalars beyond the standard ones (TensorBoard and train.log). */
  scalars(step: number, values: Record<string, number>): void {
    this.text.scalars(step, values);
    this.tb.addScalars(values, step);
  }

  /**
   * Write the outcome and close everything. `metrics` (e.g. { psnr: 17.7 }) join the final
   * train and valid loss in TensorBoard's hparams tab, as final/<name>.
   */
  finish(
    result: TrainOutcome | { result: TrainOutcome },
    metrics: Record<string, number> = {},
  ): void {
    const r = "result" in result ? result.result : result;
    const took = formatDuration(this.#lastElapsed);
    const final: Record<string, number> = {};
    if (this.#lastLoss !== undefined) final["final/train_loss"] = this.#lastLoss;
    if (this.#lastValid !== undefined) final["final/valid_loss"] = this.#lastValid;
    for (const [k, v] of Object.entries(metrics)) final[`final/${k}`] = v;
    this.tb.addHparams(hparamsOf(this.#config), final, r.step, {
      startTime: this.#startTime,
      success: !r.interrupted,
    });
    if (r.interrupted) {
      const at = this.#lastSave
        ? `checkpoint ${this.#lastSave.path} (step ${this.#lastSave.step})`
        : "no checkpoint";
      this.text.log(`interrupted at step ${r.step}; saved ${at}; re-run to resume`);
      this.#bar?.finish();
      this.log.warn(`${this.label} interrupted at step ${r.step}; ${at} saved, re-run to resume`);
    } else {
      this.text.log(`finished at step ${r.step}`);
      this.#bar?.finish();
      this.log.info(`${this.label} finished at step ${r.step} after ${took} of training`);
    }
    this.close();
  }

  /** Flush and close the files (idempotent). Without `finish`, train.log says the run stopped early. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.opts.signal?.removeEventListener("abort", this.#onAbort);
    this.#bar?.finish();
    try {
      this.tb.flush();
    } finally {
      this.tb.close();
      this.text.close();
    }
  }

  [Symbol.dispose](): void {
    if (!this.#closed) {
      this.text.log("stopped before finishing (see the error above or in the console)");
    }
    this.close();
  }

  /** Clear a half-drawn bar line so that the logger's line starts at column 0. */
  #info(message: string): void {
    if (this.#bar && this.#barTTY) this.#barWrite("\r\x1b[2K");
    this.log.info(message);
  }
}

/** The header lines of train.log: device, BLAS, commit, config. */
function runHeader(device: string | undefined, config: unknown): string[] {
  const lines: string[] = [];
  if (device !== undefined) lines.push(`device: ${device}`);
  else {
    const b = defaultBackend();
    // The CPU's description is its BLAS line; a GPU's names its adapter.
    lines.push(b.name === "cpu" ? "device: cpu" : `device: ${b.name} (${b.description})`);
  }
  lines.push(`blas: ${blasDescription()}`);
  lines.push(`commit: ${gitCommit()}`);
  lines.push(
    config === undefined ? "config: (none given)" : `config:\n${JSON.stringify(config, null, 2)}`,
  );
  return lines;
}

/** `git rev-parse HEAD` of the folder this code lives in; "unknown" without git or permission. */
export function gitCommit(): string {
  try {
    const url = new URL("../..", import.meta.url);
    if (url.protocol !== "file:") return "unknown";
    const out = new Deno.Command("git", {
      args: ["rev-parse", "HEAD"],
      cwd: url.pathname,
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    const sha = new TextDecoder().decode(out.stdout).trim();
    return out.success && /^[0-9a-f]{40,64}$/.test(sha) ? sha : "unknown";
  } catch {
    return "unknown";
  }
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(Deno.readTextFileSync(path));
  } catch {
    return undefined;
  }
}

/** The config's scalar leaves as hyperparameters, keyed by dotted path ("optimization.lr"). */
export function hparamsOf(config: unknown): Record<string, HParamValue> {
  const out: Record<string, HParamValue> = {};
  const walk = (v: unknown, path: string): void => {
    if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") {
      if (path) out[path] = v;
    } else if (Array.isArray(v)) {
      // Short lists (betas, channel multipliers) as one readable value.
      if (v.every((x) => typeof x !== "object")) out[path] = JSON.stringify(v);
    } else if (v !== null && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
    }
  };
  walk(config, "");
  return out;
}

function writeAll(file: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) at += file.writeSync(bytes.subarray(at));
}
