/** The CLI's logger: lines to stderr, progress redrawn in place on a terminal. */

import type { Logger } from "../core/registry.ts";

export interface ConsoleLoggerOptions {
  verbose?: boolean;
  /** Redraw progress on one line (a terminal) instead of printing it now and then. */
  tty?: boolean;
  /** Seconds between progress lines when not on a terminal. */
  interval?: number;
}

/**
 * "kmeans: kmeans: iteration 3" -> "kmeans: iteration 3". The task runner prefixes a step's
 * lines with the step's name, and a module that also names itself (for use without that
 * prefix) would otherwise be named twice when the step is named after it.
 */
export function withoutRepeatedName(text: string): string {
  const m = /^([^\s:][^:\n]*): \1(?=[: ]|$)/.exec(text);
  return m ? text.slice(m[1].length + 2) : text;
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
    write(withoutRepeatedName(text) + "\n");
  };

  return {
    info: (m) => line(m),
    warn: (m) => line(`warning: ${withoutRepeatedName(m)}`),
    debug: (m) => {
      if (options.verbose) line(`debug: ${m}`);
    },
    progress(label, done, total) {
      const finished = done >= total;
      const now = Date.now();
      const last = lastPrint.get(label) ?? -Infinity;
      const pct = total > 0 ? ` (${Math.floor((100 * done) / total)}%)` : "";
      const text = withoutRepeatedName(`${label} ${done}/${total}${pct}`);
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
