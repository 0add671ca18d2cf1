/**
 * Sharded steps: one step of a task split over N processes (Slurm array tasks, Kubernetes
 * Indexed Job pods, or plain processes), each doing a contiguous slice of the work in its own
 * folder, then merged into exactly the files a single-process run writes.
 *
 * Which shard am I:
 *   --shard i/n                                    explicit (wins over the environment)
 *   SLURM_ARRAY_TASK_ID [+ SLURM_ARRAY_TASK_COUNT]  Slurm job arrays (`sbatch --array=0-(n-1)`)
 *   JOB_COMPLETION_INDEX + a count (--shards n or DIGIT_SHARDS)   Kubernetes Indexed Jobs
 * An explicit count wins over SLURM_ARRAY_TASK_COUNT, so re-submitting one failed index
 * (`sbatch --array=2 script`, where Slurm says the count is 1) still runs shard 2 of n.
 *
 * Layout, on a filesystem every shard and the merge can see:
 *   <step dir>/shards/shard-00002-of-00004/   the shard's own files (no other process writes here)
 *   <step dir>/shards/shard-00002-of-00004/.digit-shard-running.json   pid, host, attempt (while running)
 *   <step dir>/shards/shard-00002-of-00004/.digit-shard.json           the completion marker
 *   <step dir>/<declared outputs>             written by the merge only
 *   <step dir>/.digit-step.json               the task runner's marker, written after the merge
 * A shard whose marker matches the step's params and shard count is skipped; any other
 * content of its folder is a dead attempt and is cleared before it runs again. The merge
 * refuses to run while any shard is missing, partial or stale, and names them.
 */

import type { Backend } from "./backend.ts";
import { useDevice } from "./device.ts";
import type { Logger, Registry, StepContext, StepEntry, StepShard } from "./registry.ts";
import { readTokenFile, type TokenFile, writeTokenFile } from "./io/tokens.ts";
import {
  joinPath,
  type PlannedStep,
  recipe as stepRecipe,
  STEP_MARKER,
  type TaskPlan,
} from "./tasks.ts";

// ---------------------------------------------------------------------------------------------
// Which shard

/** Shard `index` of `count` (0 <= index < count). */
export interface Shard {
  index: number;
  count: number;
}

/** What a shardable step's `run` and `merge` get about one shard (index, count, its folder). */
export type ShardInfo = StepShard;

/** `usage`: the command line or task is wrong (exit code 2, never retried); else a state problem. */
export class ShardError extends Error {
  constructor(message: string, readonly usage = false) {
    super(message);
    this.name = "ShardError";
  }
}

const INT = /^(0|[1-9][0-9]*)$/;

function parseCount(text: string, what: string): number {
  const n = INT.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new ShardError(`${what}: expected a whole number >= 1, got '${text}'`, true);
  }
  return n;
}

function parseIndex(text: string, what: string): number {
  const n = INT.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new ShardError(`${what}: expected a whole number >= 0, got '${text}'`, true);
  }
  return n;
}

function checked(shard: Shard, what: string): Shard {
  if (shard.index >= shard.count) {
    throw new ShardError(
      `${what}: shard index ${shard.index} is not below the shard count ${shard.count}`,
      true,
    );
  }
  return shard;
}

/** "2/4" → shard 2 of 4 (0-based index). */
export function parseShard(text: string): Shard {
  const m = /^\s*([^/]+)\/([^/]+)\s*$/.exec(text);
  if (m === null) {
    throw new ShardError(`--shard: expected INDEX/COUNT such as 0/4, got '${text}'`, true);
  }
  return checked(
    { index: parseIndex(m[1], "--shard"), count: parseCount(m[2], "--shard") },
    "--shard",
  );
}

export interface ShardSources {
  /** The --shard flag's text. */
  flag?: string;
  /** An explicit shard count (the launcher's --shards), which wins over the engine's. */
  count?: number;
  /** The environment (default: Deno.env). */
  env?: Record<string, string | undefined>;
}

/**
 * The shard this process runs, from --shard, else Slurm's or Kubernetes' environment;
 * undefined when none of them says. Conflicting sources are an error, not a guess.
 */
export function resolveShard(sources: ShardSources = {}): Shard | undefined {
  const env = sources.env ?? Deno.env.toObject();
  if (sources.flag !== undefined) {
    const shard = parseShard(sources.flag);
    if (sources.count !== undefined && sources.count !== shard.count) {
      throw new ShardError(
        `--shard ${sources.flag} disagrees with --shards ${sources.count}`,
        true,
      );
    }
    return shard;
  }
  const slurmId = env.SLURM_ARRAY_TASK_ID;
  if (slurmId !== undefined && slurmId !== "") {
    const index = parseIndex(slurmId, "SLURM_ARRAY_TASK_ID");
    let count = sources.count;
    if (count === undefined && env.SLURM_ARRAY_TASK_COUNT) {
      count = parseCount(env.SLURM_ARRAY_TASK_COUNT, "SLURM_ARRAY_TASK_COUNT");
      // A count from Slurm only means "shards" when the array is 0..count-1.
      const min = env.SLURM_ARRAY_TASK_MIN;
      if (min !== undefined && min !== "0") {
        throw new ShardError(
          `SLURM_ARRAY_TASK_MIN is ${min}, so SLURM_ARRAY_TASK_COUNT is not the shard count: pass --shards`,
          true,
        );
      }
    }
    if (count === undefined) {
      throw new ShardError(
        "SLURM_ARRAY_TASK_ID is set but no shard count is known: pass --shards",
        true,
      );
    }
    return checked({ index, count }, "SLURM_ARRAY_TASK_ID");
  }
  const k8sIndex = env.JOB_COMPLETION_INDEX;
  if (k8sIndex !== undefined && k8sIndex !== "") {
    const index = parseIndex(k8sIndex, "JOB_COMPLETION_INDEX");
    const count = sources.count ??
      (env.DIGIT_SHARDS ? parseCount(env.DIGIT_SHARDS, "DIGIT_SHARDS") : undefined);
    if (count === undefined) {
      throw new ShardError(
        "JOB_COMPLETION_INDEX is set but the completions count is not: pass --shards or set DIGIT_SHARDS",
        true,
      );
    }
    return checked({ index, count }, "JOB_COMPLETION_INDEX");
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Which slice

/** Half-open range [start, end) of work items. */
export interface Slice {
  start: number;
  end: number;
}

/**
 * The contiguous slice of `total` items that a shard processes. With `align` > 1 the
 * boundaries fall on multiples of `align` (batches), so each shard sees exactly the batches a
 * single-process run makes and batch-dependent results (seeds drawn per batch, matmul
 * blocking) come out identical. Slices are as even as the alignment allows, cover every item
 * once, and the same arguments always give the same slice; trailing shards may be empty.
 */
export function shardSlice(total: number, shard: Shard, align = 1): Slice {
  if (!Number.isSafeInteger(total) || total < 0) {
    throw new ShardError(`shardSlice: bad total ${total}`);
  }
  if (!Number.isSafeInteger(align) || align < 1) {
    throw new ShardError(`shardSlice: bad alignment ${align}`);
  }
  checked(shard, "shardSlice");
  const units = Math.ceil(total / align);
  // floor(units * i / n) without overflow for any realistic sizes (units, n < 2^26).
  const at = (i: number) => Math.min(total, Math.floor((units * i) / shard.count) * align);
  return { start: at(shard.index), end: at(shard.index + 1) };
}

export function shardName(shard: Shard): string {
  const pad = (n: number) => String(n).padStart(5, "0");
  return `shard-${pad(shard.index)}-of-${pad(shard.count)}`;
}

export function shardDir(stepDir: string, shard: Shard): string {
  return joinPath(stepDir, `shards/${shardName(shard)}`);
}

// ---------------------------------------------------------------------------------------------
// Markers

export const SHARD_MARKER = ".digit-shard.json";
export const SHARD_RUNNING = ".digit-shard-running.json";
/** What a shard marker promises: this recipe, this shard, these files with these sizes. */
export interface ShardMarker {
  recipe: string;
  index: number;
  count: number;
  /** Files of the shard folder (relative paths) and their sizes in bytes. */
  files: Record<string, number>;
  finished: string;
  seconds: number;
  host: string;
  attempt: number;
}

async function listFiles(dir: string, prefix = ""): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const entries: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(joinPath(dir, prefix || "."))) entries.push(e);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (!prefix && (e.name === SHARD_MARKER || e.name === SHARD_RUNNING)) continue;
    if (e.isDirectory) Object.assign(out, await listFiles(dir, rel));
    else if (e.isFile) out[rel] = (await Deno.stat(joinPath(dir, rel))).size;
  }
  return out;
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof SyntaxError) return undefined; // a torn write reads as "not finished"
    throw e;
  }
}

/** Written to a temporary name and renamed, so a reader never sees half a marker. */
async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, JSON.stringify(value, null, 2) + "\n");
  await Deno.rename(tmp, path);
}

export type ShardState =
  | { state: "done"; marker: ShardMarker }
  | { state: "missing" | "partial" | "stale"; why: string };

/** Whether a shard of a planned step finished with the step's current params. */
export async function shardState(step: PlannedStep, shard: Shard): Promise<ShardState> {
  const dir = shardDir(step.dir, shard);
  let folder = true;
  try {
    await Deno.stat(dir);
  } catch {
    folder = false;
  }
  if (!folder) return { state: "missing", why: "never started" };
  const marker = await readJson<ShardMarker>(joinPath(dir, SHARD_MARKER));
  if (marker === undefined) {
    const running = await readJson<{ host?: string; pid?: number; attempt?: number }>(
      joinPath(dir, SHARD_RUNNING),
    );
    return {
      state: "partial",
      why: running
        ? `started (attempt ${
          running.attempt ?? "?"
        }, pid ${running.pid} on ${running.host}) but not finished`
        : "no completion marker",
    };
  }
  if (
    marker.recipe !== stepRecipe(step) || marker.count !== shard.count ||
    marker.index !== shard.index
  ) {
    return { state: "stale", why: "finished with other params or another shard count" };
  }
  for (const [rel, size] of Object.entries(marker.files)) {
    let actual: number;
    try {
      actual = (await Deno.stat(joinPath(dir, rel))).size;
    } catch {
      return { state: "partial", why: `${rel} is missing` };
    }
    if (actual !== size) {
      return { state: "partial", why: `${rel} has ${actual} bytes, the marker says ${size}` };
    }
  }
  return { state: "done", marker };
}

// ---------------------------------------------------------------------------------------------
// Running one shard, and the merge

export interface ShardRunOptions {
  registry: Registry;
  log: Logger;
  signal: AbortSignal;
  /** Re-run even when the shard's marker says it is done. */
  force?: boolean;
}

/** The planned step `name`, which must be of a shardable type. */
export function shardableStep(plan: TaskPlan, name: string): PlannedStep & {
  entry: StepEntry & { shardable: NonNullable<StepEntry["shardable"]> };
} {
  const step = plan.steps.find((s) => s.name === name);
  if (step === undefined) {
    throw new ShardError(
      `task ${plan.name} has no step '${name}' (steps: ${
        plan.steps.map((s) => s.name).join(", ")
      })`,
      true,
    );
  }
  if (step.entry.shardable === undefined) {
    throw new ShardError(
      `step '${name}' has type '${step.type}', which cannot be sharded (it declares no 'shardable')`,
      true,
    );
  }
  return step as ReturnType<typeof shardableStep>;
}

function contextFor(
  plan: TaskPlan,
  step: PlannedStep,
  dir: string,
  outputs: Record<string, string>,
  opts: ShardRunOptions,
  prefix: string,
  backend: Backend,
): StepContext {
  return {
    registry: opts.registry,
    device: plan.device,
    backend,
    log: {
      info: (m) => opts.log.info(`${prefix}${m}`),
      warn: (m) => opts.log.warn(`${prefix}${m}`),
      debug: (m) => opts.log.debug(`${prefix}${m}`),
      progress: (l, d, t) => opts.log.progress(`${prefix}${l}`, d, t),
    },
    outputDir: plan.outputDir,
    signal: opts.signal,
    stepName: step.name,
    stepDir: dir,
    outputs,
  };
}

/** The declared outputs moved into the shard folder (a shard never writes the real ones). */
function shardOutputs(step: PlannedStep, dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, path] of Object.entries(step.outputs)) {
    const inside = path.startsWith(`${step.dir}/`) ? path.slice(step.dir.length + 1) : undefined;
    out[key] = joinPath(dir, inside ?? `outputs/${key}-${path.slice(path.lastIndexOf("/") + 1)}`);
  }
  return out;
}

/**
 * Runs one shard of a step; returns "skipped" when its marker says it is already done.
 * The attempt number counts the dead attempts found in the folder, for the logs.
 */
export async function runShard(
  plan: TaskPlan,
  stepName: string,
  shard: Shard,
  opts: ShardRunOptions,
): Promise<"ran" | "skipped"> {
  const step = shardableStep(plan, stepName);
  const dir = shardDir(step.dir, shard);
  const label = `${step.name} ${shardName(shard)}`;
  const state = await shardState(step, shard);
  if (state.state === "done" && !opts.force) {
    opts.log.info(`${label}: finished earlier, skipped`);
    return "skipped";
  }
  const previous = await readJson<{ attempt?: number }>(joinPath(dir, SHARD_RUNNING));
  const attempt = (previous?.attempt ?? 0) + 1;
  if (state.state !== "missing") {
    opts.log.info(
      `${label}: clearing its folder (${state.state}: ${"why" in state ? state.why : "forced"})`,
    );
    await Deno.remove(dir, { recursive: true });
  }
  await Deno.mkdir(dir, { recursive: true });
  const host = Deno.hostname();
  await writeJsonAtomic(joinPath(dir, SHARD_RUNNING), {
    pid: Deno.pid,
    host,
    attempt,
    started: new Date().toISOString(),
  });
  opts.log.info(`${label}: running (attempt ${attempt}) in ${dir}`);
  const started = performance.now();
  const info: ShardInfo = { ...shard, dir };
  // One shard is one run (one process of an array job): its device is resolved here, once.
  const backend = await useDevice(plan.device);
  const ctx = contextFor(plan, step, dir, shardOutputs(step, dir), opts, `${label}: `, backend);
  await step.entry.shardable.run(step.params, ctx, info);
  opts.signal.throwIfAborted();
  const marker: ShardMarker = {
    recipe: stepRecipe(step),
    index: shard.index,
    count: shard.count,
    files: await listFiles(dir),
    finished: new Date().toISOString(),
    seconds: Math.round((performance.now() - started) / 10) / 100,
    host,
    attempt,
  };
  await writeJsonAtomic(joinPath(dir, SHARD_MARKER), marker);
  await Deno.remove(joinPath(dir, SHARD_RUNNING)).catch(() => {});
  opts.log.info(
    `${label}: done in ${marker.seconds} s (${Object.keys(marker.files).length} files)`,
  );
  return "ran";
}

/** Every shard's state; throws a ShardError naming each shard that is not done. */
export async function requireShards(step: PlannedStep, count: number): Promise<ShardInfo[]> {
  const problems: string[] = [];
  const shards: ShardInfo[] = [];
  for (let index = 0; index < count; index++) {
    const shard = { index, count };
    const s = await shardState(step, shard);
    if (s.state === "done") shards.push({ ...shard, dir: shardDir(step.dir, shard) });
    else problems.push(`${shardName(shard)} is ${s.state} (${s.why})`);
  }
  if (problems.length > 0) {
    throw new ShardError(
      `cannot merge step '${step.name}': ${problems.length} of ${count} shards are not done: ${
        problems.join("; ")
      }`,
    );
  }
  return shards;
}

export interface MergeOptions extends ShardRunOptions {
  /** Poll this many seconds for unfinished shards before refusing (a merge Job started early). */
  waitSeconds?: number;
  /** Poll interval while waiting (default 5 s). */
  pollSeconds?: number;
}

/**
 * Merges the `count` shards of a step into its declared outputs and marks the step done
 * for the task runner. Refuses (ShardError naming them) while any shard is not done.
 */
export async function mergeShards(
  plan: TaskPlan,
  stepName: string,
  count: number,
  opts: MergeOptions,
): Promise<void> {
  const step = shardableStep(plan, stepName);
  const deadline = Date.now() + (opts.waitSeconds ?? 0) * 1000;
  let shards: ShardInfo[];
  for (;;) {
    try {
      shards = await requireShards(step, count);
      break;
    } catch (e) {
      if (!(e instanceof ShardError) || Date.now() >= deadline) throw e;
      opts.log.info(
        `${step.name}: waiting for shards (${e.message.split(": ").slice(2).join(": ")})`,
      );
      await new Promise((r) => setTimeout(r, (opts.pollSeconds ?? 5) * 1000));
      opts.signal.throwIfAborted();
    }
  }
  await Deno.mkdir(step.dir, { recursive: true });
  // Neither this step nor what reads it counts as finished until the merge has written
  // everything (the same rule the task runner applies when it re-runs a step).
  const reached = new Set([step.name]);
  for (const s of plan.steps) {
    if (s.name === step.name || s.dependsOn.some((d) => reached.has(d))) {
      reached.add(s.name);
      await Deno.remove(joinPath(s.dir, STEP_MARKER)).catch(() => {});
    }
  }
  const started = performance.now();
  const backend = await useDevice(plan.device);
  const prefix = `${step.name} merge: `;
  const ctx = contextFor(plan, step, step.dir, { ...step.outputs }, opts, prefix, backend);
  await step.entry.shardable.merge(step.params, ctx, shards);
  opts.signal.throwIfAborted();
  const missing = [];
  for (const [key, path] of Object.entries(step.outputs)) {
    try {
      await Deno.stat(path);
    } catch {
      missing.push(`${key} (${path})`);
    }
  }
  if (missing.length > 0) {
    throw new ShardError(
      `merge of step '${step.name}' finished without writing: ${missing.join(", ")}`,
    );
  }
  if (step.entry.complete && !(await step.entry.complete(step.params, step.outputs))) {
    throw new ShardError(
      `merge of step '${step.name}' wrote outputs the step does not accept as complete`,
    );
  }
  const seconds = Math.round((performance.now() - started) / 10) / 100;
  // The same fields the task runner writes (core/tasks.ts runTask), plus where it came from.
  await writeJsonAtomic(joinPath(step.dir, STEP_MARKER), {
    recipe: stepRecipe(step),
    plugin: step.entry.plugin,
    finished: new Date().toISOString(),
    seconds,
    merged: { shards: count },
  });
  opts.log.info(`${step.name}: merged ${count} shards in ${seconds} s`);
}

// ---------------------------------------------------------------------------------------------
// Helpers for merge implementations

/**
 * Puts `from` at `to` without copying when the filesystem allows (a hard link: the merge of a
 * 100 GB feature dump is then instant and the shard folder stays intact), else copies it.
 * Any earlier file at `to` is replaced, so a merge can be re-run.
 */
export async function linkOrCopy(from: string, to: string): Promise<void> {
  await Deno.remove(to).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  try {
    await Deno.link(from, to);
  } catch {
    await Deno.copyFile(from, to);
  }
}

/** What a shard records about the items it processed (`slice.json` in its folder). */
export interface SliceRecord extends Slice {
  /** Items in the whole input, when the shard knows it. */
  total?: number;
  /** What the items are, for people reading the file ("images", "feature files"). */
  unit?: string;
}

export const SLICE_FILE = "slice.json";

export async function writeSlice(dir: string, slice: SliceRecord): Promise<void> {
  await Deno.writeTextFile(joinPath(dir, SLICE_FILE), JSON.stringify(slice) + "\n");
}

export async function readSlice(dir: string): Promise<SliceRecord> {
  const path = joinPath(dir, SLICE_FILE);
  const v = JSON.parse(await Deno.readTextFile(path)) as SliceRecord;
  if (!Number.isSafeInteger(v.start) || !Number.isSafeInteger(v.end) || v.start > v.end) {
    throw new ShardError(`${path}: not a slice record`);
  }
  return v;
}

/**
 * The file `name` of every shard whose slice is not empty, in shard order, after checking
 * that the slices tile the input with no gap or overlap (a merge must never silently drop
 * or repeat items).
 */
export async function sliceFiles(shards: readonly StepShard[], name: string): Promise<string[]> {
  const files: string[] = [];
  let next = 0;
  let total: number | undefined;
  for (const s of shards) {
    const slice = await readSlice(s.dir);
    if (slice.start !== next) {
      throw new ShardError(`${s.dir}: its slice starts at ${slice.start}, expected ${next}`);
    }
    next = slice.end;
    total = slice.total ?? total;
    if (slice.end > slice.start) files.push(joinPath(s.dir, name));
  }
  if (total !== undefined && next !== total) {
    throw new ShardError(`the shards cover ${next} of ${total} items`);
  }
  if (files.length === 0) throw new ShardError("every shard is empty: there is nothing to merge");
  return files;
}

/**
 * Concatenates token files (shards of one dataset, in order) into `out`: the same bytes as
 * one process writing all the grids (the steps that shard token files make each grid
 * from its global index, and start every shard on a batch boundary).
 */
export async function concatTokenFiles(paths: readonly string[], out: string): Promise<TokenFile> {
  if (paths.length === 0) throw new Error("concatTokenFiles: no token files");
  const parts = await Promise.all(paths.map((p) => readTokenFile(p)));
  const head = parts[0];
  for (const [i, p] of parts.entries()) {
    for (const k of ["height", "width", "vocab", "source"] as const) {
      if (p[k] !== head[k]) {
        throw new Error(`${paths[i]}: ${k} is ${p[k]}, but ${paths[0]} has ${head[k]}`);
      }
    }
    if ((p.labels === undefined) !== (head.labels === undefined)) {
      throw new Error(`${paths[i]} and ${paths[0]} disagree on whether they hold labels`);
    }
  }
  const count = parts.reduce((n, p) => n + p.count, 0);
  const tokens = new Int32Array(parts.reduce((n, p) => n + p.tokens.length, 0));
  const labels = head.labels ? new Int32Array(count) : undefined;
  let t = 0, l = 0;
  for (const p of parts) {
    tokens.set(p.tokens, t);
    t += p.tokens.length;
    if (labels) labels.set(p.labels!, l);
    l += p.count;
  }
  const file: TokenFile = {
    tokens,
    count,
    height: head.height,
    width: head.width,
    vocab: head.vocab,
    labels,
    source: head.source,
    ...(head.classNames ? { classNames: head.classNames } : {}),
  };
  await writeTokenFile(out, file);
  return file;
}
