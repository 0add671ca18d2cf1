/**
 * A terminal progress bar for training and sampling loops:
 *
 *   train [##########··········]  512/1000  51%  loss 3.2145  10.4k tok/s  ETA 02:31
 *
 * The loss shown is an exponential moving average of the losses handed in, bias-corrected,
 * as tqdm smooths its rate (`smoothing`, default 0.3): one noisy step does not make the
 * figure jump, yet it follows the latest steps rather than a stale log line.
 *
 * On a TTY it redraws one line in place (at most every `redrawMs`). When the output is not
 * a terminal (CI, `> file`), it prints a plain line every `intervalSec` seconds and at the
 * end, so logs stay readable.
 */

export interface ProgressOptions {
  total: number;
  label?: string;
  /** Unit of the throughput figure: "tok" gives "tok/s", "img" gives "img/s". */
  unit?: string;
  /** Plain-line interval when not a TTY (default 10 s). */
  intervalSec?: number;
  /** Minimum time between TTY redraws (default 100 ms). */
  redrawMs?: number;
  /** Defaults: Deno.stdout and its isTerminal(). */
  write?: (text: string) => void;
  isTTY?: boolean;
  /** Terminal width for the bar (default 100). */
  columns?: number;
  /** Clock in ms (tests). */
  now?: () => number;
  /** Weight of the newest loss in the shown average, in (0, 1]; 1 shows the raw loss. */
  smoothing?: number;
}

export interface ProgressInfo {
  loss?: number;
  /** Units processed by this step (tokens, images...), for the throughput figure. */
  items?: number;
  /** Extra key/values shown after the loss. */
  extra?: Record<string, number | string>;
  /**
   * Seconds since the work began, by the caller's clock. The bar adopts it so that its
   * "took" matches the caller's own summary (the bar may be created after the first step).
   */
  elapsed?: number;
}

/**
 * tqdm's EMA: `avg = a * x + (1 - a) * avg`, divided by `1 - (1 - a)^n` so that the first
 * values are not pulled towards the zero it starts from.
 */
export class SmoothedValue {
  #sum = 0;
  #calls = 0;
  constructor(readonly smoothing = 0.3) {
    if (!(smoothing > 0 && smoothing <= 1)) {
      throw new Error(`smoothing must be in (0, 1], got ${smoothing}`);
    }
  }

  add(x: number): void {
    this.#sum = this.smoothing * x + (1 - this.smoothing) * this.#sum;
    this.#calls++;
  }

  get value(): number | undefined {
    if (this.#calls === 0) return undefined;
    return this.#sum / (1 - (1 - this.smoothing) ** this.#calls);
  }
}

/** 1234 -> "1.23k", 12345678 -> "12.3M". */
export function humanCount(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${(v / 1e3).toPrecision(3)}k`;
  return a >= 100 ? v.toFixed(0) : v.toPrecision(3);
}

/** Seconds to "MM:SS" or "H:MM:SS". */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "--:--";
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (x: number) => String(x).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

export class ProgressBar {
  private readonly opts: ProgressOptions;
  private readonly now: () => number;
  private readonly write: (text: string) => void;
  private readonly tty: boolean;
  private readonly start: number;
  private lastDraw = -Infinity;
  private lastPlain: number;
  private step = 0;
  private items = 0;
  private readonly loss: SmoothedValue;
  /** Caller's elapsed seconds minus ours, from the last `elapsed` handed in. */
  private offset = 0;
  private extra?: Record<string, number | string>;
  private done = false;

  constructor(opts: ProgressOptions) {
    if (!(opts.total > 0)) throw new Error(`ProgressBar: total must be > 0, got ${opts.total}`);
    this.opts = opts;
    this.now = opts.now ?? (() => performance.now());
    const enc = new TextEncoder();
    this.write = opts.write ?? ((t) => Deno.stdout.writeSync(enc.encode(t)));
    this.tty = opts.isTTY ?? Deno.stdout.isTerminal();
    this.start = this.now();
    this.lastPlain = this.start;
    this.loss = new SmoothedValue(opts.smoothing ?? 0.3);
  }

  /** Count a loss in the shown average without drawing (the next update draws it). */
  addLoss(loss: number): void {
    this.loss.add(loss);
  }

  /** Record that `step` (1-based count of finished steps) is done. */
  update(step: number, info: ProgressInfo = {}): void {
    this.step = Math.min(step, this.opts.total);
    this.items += info.items ?? 0;
    if (info.loss !== undefined) this.loss.add(info.loss);
    if (info.extra) this.extra = info.extra;
    const t = this.now();
    if (info.elapsed !== undefined) this.offset = info.elapsed - (t - this.start) / 1000;
    const finished = this.step >= this.opts.total;
    if (this.tty) {
      if (finished || t - this.lastDraw >= (this.opts.redrawMs ?? 100)) {
        this.lastDraw = t;
        this.write(`\r${this.render(t)}\x1b[K`);
      }
    } else if (finished || t - this.lastPlain >= (this.opts.intervalSec ?? 10) * 1000) {
      this.lastPlain = t;
      this.write(`${this.render(t)}\n`);
    }
    if (finished) this.finish();
  }

  /** End the bar (newline on a TTY). Safe to call twice. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.tty) this.write("\n");
  }

  /** The status line at time t (ms). */
  render(t = this.now()): string {
    const { total } = this.opts;
    const elapsed = (t - this.start) / 1000 + this.offset;
    const frac = this.step / total;
    const parts: string[] = [];
    if (this.opts.label) parts.push(this.opts.label);
    if (this.tty) {
      const width = Math.max(10, Math.min(30, (this.opts.columns ?? 100) - 70));
      const full = Math.round(frac * width);
      parts.push(`[${"#".repeat(full)}${"·".repeat(width - full)}]`);
    }
    parts.push(
      `${String(this.step).padStart(String(total).length)}/${total}`,
      `${Math.floor(frac * 100)}%`,
    );
    const loss = this.loss.value;
    if (loss !== undefined) parts.push(`loss ${loss.toFixed(4)}`);
    for (const [k, v] of Object.entries(this.extra ?? {})) {
      parts.push(`${k} ${typeof v === "number" ? humanCount(v) : v}`);
    }
    if (elapsed > 0) {
      if (this.items > 0) {
        parts.push(`${humanCount(this.items / elapsed)} ${this.opts.unit ?? "it"}/s`);
      } else parts.push(`${humanCount(this.step / elapsed)} steps/s`);
    }
    const eta = this.step > 0 ? (elapsed / this.step) * (total - this.step) : NaN;
    parts.push(
      this.step >= total ? `took ${formatDuration(elapsed)}` : `ETA ${formatDuration(eta)}`,
    );
    return parts.join("  ");
  }
}
