/** The plain train.log format and the progress bar's TTY / plain output on a fake clock. */

import { expect, it } from "./lib/test.ts";
import { formatNumber, TextLog } from "../core/log/text_log.ts";
import { formatDuration, humanCount, ProgressBar } from "../core/log/progress.ts";

it("text log: timestamped lines, appended", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/exp/train.log`;
    const log = new TextLog(path, { now: () => Date.UTC(2026, 10, 24, 20, 31, 5, 123) });
    log.scalars(1200, { loss: 3.214512, lr: 0.0003, "tok/s": 10432 });
    log.log("saved checkpoint\nsecond line");
    log.close();
    const again = new TextLog(path, { now: () => 0 });
    again.log("resumed");
    again.close();
    expect(Deno.readTextFileSync(path)).toBe(
      "2026-11-24T20:31:05Z step 1200 loss=3.2145 lr=3.000e-4 tok/s=10432\n" +
        "2026-11-24T20:31:05Z saved checkpoint\n2026-11-24T20:31:05Z second line\n" +
        "1970-01-01T00:00:00Z resumed\n",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  expect(formatNumber(0.5)).toBe("0.5");
  expect(formatNumber(12345678.9)).toBe("1.235e+7");
});

it("progress: plain lines every interval when not a TTY, redraws on a TTY", () => {
  let t = 0;
  const out: string[] = [];
  const bar = new ProgressBar({
    total: 100,
    label: "train",
    unit: "tok",
    intervalSec: 10,
    isTTY: false,
    write: (s) => out.push(s),
    now: () => t,
  });
  for (let step = 1; step <= 100; step++) {
    t += 500; // 0.5 s per step, 1000 tokens per step
    bar.update(step, { loss: 4 - step / 100, items: 1000 });
  }
  // A line at 10 s, 20 s, ..., 50 s (steps 20..100) plus none extra at the end (100 is at 50 s).
  expect(out.length).toBe(5);
  // The loss shown is tqdm's bias-corrected EMA (smoothing 0.3) of 4 - step/100: it trails
  // the raw 3.80 and 3.00 by about (1 - 0.3) / 0.3 steps' worth of decrease.
  expect(out[0]).toBe("train   20/100  20%  loss 3.8232  2.00k tok/s  ETA 00:40\n");
  expect(out[4]).toBe("train  100/100  100%  loss 3.0233  2.00k tok/s  took 00:50\n");

  const tty: string[] = [];
  t = 0;
  const b2 = new ProgressBar({
    total: 4,
    isTTY: true,
    columns: 80,
    write: (s) => tty.push(s),
    now: () => t,
  });
  t = 1000;
  b2.update(1);
  t = 1050; // within 100 ms: not redrawn
  b2.update(2);
  t = 4000;
  b2.update(4);
  expect(tty.length).toBe(3); // step 1, final, newline
  expect(tty[0]).toBe("\r[###·······]  1/4  25%  1.00 steps/s  ETA 00:03\x1b[K");
  expect(tty[2]).toBe("\n");
  expect(humanCount(123456)).toBe("123k");
  expect(formatDuration(3725)).toBe("1:02:05");
});
