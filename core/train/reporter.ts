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
 * TensorBoard tags: train/loss, train/lr, train/grad_norm, train/<unit>_per_sec, valid/loss.
 */

import { formatDuration, humanCount, ProgressBar, type ProgressOptions } from "../log/progress.ts";
import { TensorBoardWriter } from "../log/tensorboard.ts";
import { TextLog } from "../log/text_log.ts";
import type { Logger } from "../registry.ts";
import type { LogRecord, TrainHooks, TrainResult } from "./trainer.ts";

export interface TrainReporterOptions {
  /** Stopping request (the step's ctx.signal); handed to the trainer through `hooks`. */
  signal?: AbortSignal;
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
    this.text.log(`start ${this.label} in ${dir}`);
    // Ctrl-C: the trainer saves at its next step boundary; note it and make the logs durable now.
    this.#onAbort = () => {
      this.text.log("interrupt requested: saving a checkpoint at the end of this step");
      this.tb.flush();
    };
    opts.signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** The trainer's hooks (and the stopping signal): pass to `train` or a model's train function. */
  get hooks(): TrainHooks {
    return {
      signal: this.opts.signal,
      onLog: (r) => this.onLog(r),
      onProgress: (step, total) => this.onProgress(step, total),
      onSave: (path, step) => this.onSave(path, step),
    };
  }

  onProgress(step: number, total: number): void {
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
      // The bar's clock starts now, after this first step: drawing it would claim an absurd rate.
      return;
    }
    // The last step is drawn by onLog (the trainer always logs it), with its loss.
    if (step < total) this.#bar.update(step - (this.#firstStep - 1));
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
    // The trainer counts items between log records; give the bar the same count.
    const seconds = Math.max(0, r.elapsed - this.#lastElapsed);
    this.#lastElapsed = r.elapsed;
    if (this.#bar) {
      const items = Number.isFinite(r.itemsPerSecond) ? r.itemsPerSecond * seconds : 0;
      this.#bar.update(r.step - (this.#firstStep - 1), { loss: r.loss, items });
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

  /** Write the outcome and close everything. */
  finish(result: TrainOutcome | { result: TrainOutcome }): void {
    const r = "result" in result ? result.result : result;
    const took = formatDuration(this.#lastElapsed);
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

function writeAll(file: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) at += file.writeSync(bytes.subarray(at));
}
