/** The CLI's logger: lines to stderr, progress redrawn in place on a terminal. */

import type { Logger } from "../core/registry.ts";

export interface ConsoleLoggerOptions {
  verbose?: boolean;
  /** Redraw progress on one line (a terminal) instead of printing it now and then. */
  tty?: boolean;
  /** Seconds between progress lines when not on a terminal. */
  interval?: number;
}

export function consoleLogger(
  write: (text: string) => void,
  options: ConsoleLoggerOptions = {},
): Logger {
  const interval = (options.interval ?? 10) * 1000;
  let lastPrint = new Map<string, number>();
  let drawing = false; // a progress line is on screen without its newline

  const line = (text: string) => {
    if (drawing) write("\n");
    drawing = false;
    write(text + "\n");
  };

  return {
    info: (m) => line(m),
    warn: (m) => line(`warning: ${m}`),
    debug: (m) => {
      if (options.verbose) line(`debug: ${m}`);
    },
    progress(label, done, total) {
      const finished = done >= total;
      const now = Date.now();
      const last = lastPrint.get(label) ?? -Infinity;
      const pct = total > 0 ? ` (${Math.floor((100 * done) / total)}%)` : "";
      const text = `${label} ${done}/${total}${pct}`;
      if (options.tty) {
        if (!finished && now - last < 100) return;
        write(`\r\x1b[2K${text}${finished ? "\n" : ""}`);
        drawing = !finished;
      } else {
        if (!finished && now - last < interval) return;
        line(text);
      }
      lastPrint.set(label, now);
      if (finished) lastPrint = new Map([...lastPrint].filter(([k]) => k !== label));
    },
  };
}
