/**
 * The plain-text run log (outputs/EXP/train.log): one line per event, appended and
 * written through immediately so a crash loses nothing.
 *
 *   2026-11-24T20:31:05Z step 1200 loss=3.2145 lr=0.0003 tok/s=10432
 *   2026-11-24T20:31:05Z saved checkpoint outputs/exp/ckpt_1200
 */

export interface TextLogOptions {
  /** Also print each line to the console. */
  echo?: boolean;
  /** Clock (ms since epoch) for tests. */
  now?: () => number;
}

/** Numbers with a sensible number of digits for logs. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return v.toPrecision(5).replace(/\.?0+$/, "");
}

export class TextLog {
  private file: Deno.FsFile;
  private readonly encoder = new TextEncoder();
  private readonly now: () => number;

  constructor(readonly path: string, private readonly opts: TextLogOptions = {}) {
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
    if (dir) Deno.mkdirSync(dir, { recursive: true });
    this.file = Deno.openSync(path, { create: true, append: true });
    this.now = opts.now ?? Date.now;
  }

  /** Append one line (newlines inside `message` are kept on separate prefixed lines). */
  log(message: string): void {
    const stamp = new Date(this.now()).toISOString().replace(/\.\d{3}Z$/, "Z");
    const text = message.split("\n").map((l) => `${stamp} ${l}`).join("\n") + "\n";
    const bytes = this.encoder.encode(text);
    let off = 0;
    while (off < bytes.length) off += this.file.writeSync(bytes.subarray(off));
    if (this.opts.echo) console.log(text.trimEnd());
  }

  /** "step N k=v k=v ..." */
  scalars(step: number, values: Record<string, number>): void {
    const parts = Object.entries(values).map(([k, v]) => `${k}=${formatNumber(v)}`);
    this.log(`step ${step} ${parts.join(" ")}`);
  }

  close(): void {
    this.file.close();
  }
}
