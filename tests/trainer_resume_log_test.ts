/**
 * Exact resume of the logs: the train.log of a run that is killed (SIGKILL, in a child
 * process) or interrupted (Ctrl-C) between log lines and then resumed must hold, for every
 * step, the line the uninterrupted run wrote. The timestamp and the throughput field
 * (`tok/s=`) are timing, not results: both are stripped before comparing. Also: a checkpoint
 * that cannot be written (disk full) fails with an error naming the checkpoint.
 *
 * Run as a program (`deno run -A tests/trainer_resume_log_test.ts MODE DIR`), this file is the
 * child process: MODE "kill" kills itself with SIGKILL during step KILL_AT, "full" trains on,
 * "enospc" trains into a folder on a tiny filesystem and prints the save error.
 */

import { expect, it } from "./lib/test.ts";
import { rejected } from "./lib/errors.ts";
import { memoryLogger } from "../core/registry.ts";
import { liveStorages } from "../core/tensor.ts";
import { TrainReporter } from "../core/train/reporter.ts";
import { CheckpointWriteError, train, type TrainSettings } from "../core/train/trainer.ts";
import { L, tinyGptJob } from "./helpers/tiny_gpt_job.ts";

const job = tinyGptJob;

/** Saves every 3 steps, logs every 2: a checkpoint at step 3 falls between two log lines. */
const settings: TrainSettings = {
  maxSteps: 10,
  schedule: { kind: "inverse_sqrt", lr: 1e-2, warmup: 3, initLr: 1e-4 },
  betas: [0.9, 0.98],
  weightDecay: 0.01,
  clipNorm: 1,
  accumulate: 2,
  logInterval: 2,
  saveInterval: 3,
  validInterval: 0,
  seed: 3,
};
const KILL_AT = 5; // after the save at step 3 and the log line at step 4

/** One training run writing `dir/train.log`, as the stage plugins run it. */
async function run(
  dir: string,
  opts: { stopAt?: number; kill?: boolean; signal?: AbortController } = {},
): Promise<{ step: number; interrupted: boolean }> {
  const j = job();
  const ctl = opts.signal ?? new AbortController();
  const report = new TrainReporter(dir, memoryLogger(), {
    signal: ctl.signal,
    progress: "logger",
    echo: false,
    unit: "tok",
    now: () => 0,
  });
  try {
    const hooks = report.hooks;
    const result = await train(j, settings, `${dir}/checkpoints`, {
      ...hooks,
      onProgress(step, total) {
        hooks.onProgress?.(step, total);
        if (step !== opts.stopAt) return;
        if (opts.kill) Deno.kill(Deno.pid, "SIGKILL");
        else ctl.abort();
      },
    });
    report.finish(result);
    return { step: result.step, interrupted: result.interrupted };
  } finally {
    report.close();
    j.model.dispose();
  }
}

/** step -> the `step N ...` lines train.log holds for it, timing stripped. */
function stepLines(log: string): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const line of log.split("\n")) {
    const m = /^\S+ (step (\d+) .*)$/.exec(line);
    if (!m) continue;
    const text = m[1].replace(/ tok\/s=\S+/, "");
    const step = Number(m[2]);
    out.set(step, [...(out.get(step) ?? []), text]);
  }
  return out;
}

function assertSameSteps(resumed: string, full: string): void {
  const want = stepLines(full);
  const got = stepLines(resumed);
  expect([...want.keys()]).toEqual([2, 4, 6, 8, 10]);
  expect([...got.keys()].sort((a, b) => a - b)).toEqual([...want.keys()]);
  for (const [step, lines] of got) {
    for (const line of lines) expect(line, `step ${step}`).toBe(want.get(step)![0]);
  }
}

async function withDirs(body: (full: string, resumed: string) => Promise<void>): Promise<void> {
  const full = await Deno.makeTempDir({ prefix: "digit-resume-log-full-" });
  const resumed = await Deno.makeTempDir({ prefix: "digit-resume-log-resumed-" });
  try {
    await body(full, resumed);
  } finally {
    await Deno.remove(full, { recursive: true });
    await Deno.remove(resumed, { recursive: true });
  }
}

const self = new URL(import.meta.url).pathname;
const denoConfig = new URL("../deno.json", import.meta.url).pathname;

function child(mode: string, dir: string, wrap: string[] = []): Promise<Deno.CommandOutput> {
  const deno = [Deno.execPath(), "run", "-A", "--config", denoConfig, self, mode, dir];
  return new Deno.Command(wrap.length > 0 ? wrap[0] : deno[0], {
    args: wrap.length > 0 ? [...wrap.slice(1), ...deno] : deno.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
}

it("SIGKILL between log lines, then resume: train.log's step lines equal the uninterrupted run's", async () => {
  await withDirs(async (full, resumed) => {
    const fullRun = await run(full);
    expect(fullRun.step).toBe(10);

    const killed = await child("kill", resumed);
    expect(killed.signal, new TextDecoder().decode(killed.stderr)).toBe("SIGKILL");
    // The checkpoint at step 3 holds step 3's half of the step-4 log line.
    const meta = JSON.parse(await Deno.readTextFile(`${resumed}/checkpoints/last.json`)).meta;
    expect(meta.train.step).toBe(3);
    expect(meta.train.pending.microBatches).toBe(settings.accumulate);
    expect(meta.train.pending.items).toBe(settings.accumulate * 2 * L);
    expect(typeof meta.train.pending.lossBits).toBe("number");
    const before = stepLines(await Deno.readTextFile(`${resumed}/train.log`));
    expect([...before.keys()], "killed after logging step 4").toEqual([2, 4]);

    const rest = await run(resumed);
    expect(rest.step).toBe(10);
    const log = await Deno.readTextFile(`${resumed}/train.log`);
    expect(log).toMatch(/resumed at step 3 of 10/);
    // Step 4 is logged twice (before the kill and after the resume): both lines must agree.
    expect(stepLines(log).get(4)!.length).toBe(2);
    assertSameSteps(log, await Deno.readTextFile(`${full}/train.log`));
  });
});

it("Ctrl-C between log lines, then resume: the same step lines; nothing leaks", async () => {
  const storages = liveStorages();
  await withDirs(async (full, resumed) => {
    await run(full);
    const first = await run(resumed, { stopAt: 5 });
    expect(first).toEqual({ step: 5, interrupted: true });
    const rest = await run(resumed);
    expect(rest).toEqual({ step: 10, interrupted: false });
    assertSameSteps(
      await Deno.readTextFile(`${resumed}/train.log`),
      await Deno.readTextFile(`${full}/train.log`),
    );
  });
  expect(liveStorages()).toBe(storages);
});

it("a write that fails with ENOSPC names the checkpoint; the previous one stays loadable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "digit-enospc-" });
  const write = Deno.FsFile.prototype.write;
  try {
    const j = job();
    await train(j, { ...settings, maxSteps: 3 }, dir);
    j.model.dispose();
    // What Deno throws for ENOSPC: an OS error whose message names no file.
    Deno.FsFile.prototype.write = () =>
      Promise.reject(new Error("No space left on device (os error 28)"));
    const k = job();
    const e = await rejected(train(k, { ...settings, maxSteps: 6 }, dir));
    expect(e).toBeInstanceOf(CheckpointWriteError);
    expect((e as CheckpointWriteError).path).toBe(`${dir}/last`);
    expect(e.message).toBe(
      `cannot write checkpoint ${dir}/last: No space left on device (os error 28)`,
    );
    k.model.dispose();
    Deno.FsFile.prototype.write = write;
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/last.json`)).meta;
    expect(meta.train.step).toBe(3);
  } finally {
    Deno.FsFile.prototype.write = write;
    await Deno.remove(dir, { recursive: true });
  }
});

/** A real full disk needs a small filesystem: a 64 KiB tmpfs in a user namespace. */
const canMount = (() => {
  try {
    return new Deno.Command("unshare", {
      args: ["-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
})();

it.skipIf(!canMount)(
  "a real full disk (64 KiB tmpfs): the error names the checkpoint",
  async () => {
    const mnt = await Deno.makeTempDir({ prefix: "digit-enospc-mnt-" });
    try {
      const out = await child("enospc", `${mnt}/run`, [
        "unshare",
        "-rm",
        "sh",
        "-c",
        `mount -t tmpfs -o size=64k tmpfs ${mnt} && exec "$@"`,
        "sh",
      ]);
      const text = new TextDecoder().decode(out.stdout);
      expect(out.code, new TextDecoder().decode(out.stderr)).toBe(0);
      expect(text).toMatch(
        new RegExp(
          `^CheckpointWriteError: cannot write checkpoint ${mnt}/run/checkpoints/last: .*os error 28`,
        ),
      );
    } finally {
      await Deno.remove(mnt, { recursive: true });
    }
  },
);

if (import.meta.main) {
  const [mode, dir] = Deno.args;
  if (mode === "kill") await run(dir, { stopAt: KILL_AT, kill: true });
  else if (mode === "enospc") {
    try {
      await run(dir);
      console.log("saved: the filesystem was not full");
    } catch (e) {
      console.log(`${(e as Error).name}: ${(e as Error).message}`);
    }
  } else throw new Error(`unknown mode ${mode}`);
}
