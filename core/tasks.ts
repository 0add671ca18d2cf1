/**
 * Task files: a named list of steps, each an instance of a registered step type.
 *
 *   name: tiny-demo
 *   plugins: [../plugins/extra.ts]        # relative to this file; built-ins are already loaded
 *   device: auto                          # cpu | webgpu | auto
 *   outputs: outputs/tiny-demo            # default outputs/<name>, relative to the cwd
 *   steps:
 *     - name: tokenize
 *       type: tokenize-dataset
 *       params: { images: data/tiny, clusters: 64 }
 *     - name: train
 *       type: train-stage1
 *       params: { tokens: "${steps.tokenize.outputs.tokens}", log_dir: "${outputs}/logs" }
 *
 * Everything is checked before anything runs (`planTask`). While running (`runTask`) a step
 * whose last run finished with the same params, whose outputs all exist, and whose inputs were
 * not re-made in this run is skipped, so a crashed pipeline resumes where it stopped.
 * References: `${outputs}` (the task's output folder), `${steps.<name>.outputs.<key>}`,
 * `${steps.<name>.dir}`; `$${` writes a literal `${`.
 */

import type { Backend } from "./backend.ts";
import { useDevice } from "./device.ts";
import { datasetProblems } from "./task_datasets.ts";
import { ArchitectureChangedError } from "./train/trainer.ts";
import {
  applyOverrides,
  check,
  ConfigError,
  didYouMean,
  formatProblem,
  type KeyPath,
  type Override,
  type Problem,
  readYamlWithExtends,
  s,
  type Schema,
  setOwn,
  validate,
} from "./config.ts";
import {
  type DeviceChoice,
  DEVICES,
  loadPlugins,
  type Logger,
  type PluginSpec,
  pluginSpecSchema,
  prefixLogger,
  type Registry,
  type StepContext,
  type StepEntry,
} from "./registry.ts";

const NAME = /[A-Za-z0-9][A-Za-z0-9._-]*/;
const nameSchema: Schema<string> = s.string({
  pattern: NAME,
  patternName: "a name (letters, digits, '.', '-', '_')",
});

/** One step of a task file, as validated. */
export interface TaskStepEntry {
  /** Unique within the task; also the step's folder name. */
  name: string;
  /** A registered step type. */
  type: string;
  /** Free text. */
  description?: string;
  /** Checked against the step type's schema. */
  params?: unknown;
  /** Run even when finished outputs exist. */
  force: boolean;
}

/** A task file, as validated. */
export interface TaskFile {
  /** Task name; the default output folder is `outputs/<name>`. */
  name: string;
  /** Free text. */
  description?: string;
  /** Plugin modules to load, relative to the task file. */
  plugins: PluginSpec[];
  /** Device for every step. */
  device: DeviceChoice;
  /** Output folder (default `outputs/<name>`). */
  outputs?: string;
  /** The steps, run in order. */
  steps: TaskStepEntry[];
}

/** Config schema of one step of a task file. */
export const taskStepSchema: Schema<TaskStepEntry> = s.object({
  name: nameSchema.describe("unique within the task; also the step's folder name"),
  type: s.string({ nonEmpty: true }).describe("a registered step type"),
  description: s.string().optional(),
  params: s.any().default({}).describe("checked against the step type's schema"),
  force: s.bool().default(false).describe("run even when finished outputs exist"),
});

/** Config schema of a whole task file. */
export const taskSchema: Schema<TaskFile> = s.object({
  name: nameSchema,
  description: s.string().optional(),
  plugins: s.array(pluginSpecSchema).default([]),
  device: s.enum(DEVICES).default("auto"),
  outputs: s.string({ nonEmpty: true }).optional().describe(
    "output folder (default outputs/<name>)",
  ),
  steps: s.array(taskStepSchema, { minLength: 1 }),
});

/** A step as `planTask` takes it (a task file's step, or one the CLI builds). */
export interface TaskStepSpec {
  /** Unique within the task; also the step's folder name. */
  name: string;
  /** A registered step type. */
  type: string;
  /** Checked against the step type's schema. */
  params?: unknown;
  /** Run even when finished outputs exist. */
  force?: boolean;
  /** Free text. */
  description?: string;
  /** Where problems in `params` are reported; default: the task file at `steps[i].params`. */
  paramsSource?: { where: string; path: KeyPath };
}

/** A task as `planTask` takes it: a validated task file, or one the CLI builds. */
export interface TaskSpec {
  /** Task name. */
  name: string;
  /** Free text. */
  description?: string;
  /** Device for every step (default "auto"). */
  device?: DeviceChoice;
  /** Output folder. */
  outputs?: string;
  /** The steps, run in order. */
  steps: TaskStepSpec[];
}

/** A step ready to run: its type resolved, params validated, folder and outputs fixed. */
export interface PlannedStep {
  /** Position in the task. */
  index: number;
  /** Step name. */
  name: string;
  /** Step type. */
  type: string;
  /** The registered step type. */
  entry: StepEntry;
  /** Validated params with references resolved. */
  params: unknown;
  /** The step's folder. */
  dir: string;
  /** Declared outputs, as paths. */
  outputs: Record<string, string>;
  /** Earlier steps whose outputs this one references. */
  dependsOn: string[];
  /** Run even when finished. */
  force: boolean;
}

/** A task ready to run. */
export interface TaskPlan {
  /** Task name. */
  name: string;
  /** The task file, or a label such as "train stage1" for CLI-built tasks. */
  file: string;
  /** Device for every step. */
  device: DeviceChoice;
  /** Root folder of everything the task writes. */
  outputDir: string;
  /** The steps, in run order. */
  steps: PlannedStep[];
}

/** Ctrl-C (or another abort) stopped the run: the CLI exits with code 130. */
export class InterruptedError extends Error {
  /** `message` says where the run stopped. */
  constructor(message = "interrupted", options?: ErrorOptions) {
    super(message, options);
    this.name = "InterruptedError";
  }
}

/** A step threw while running: the CLI exits with code 1. */
export class StepFailedError extends Error {
  /** `step` names the step that failed. */
  constructor(readonly step: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StepFailedError";
  }
}

/** `a/b` + `../c` → `a/c`; keeps relative paths relative. */
/**
 * The folder a step writes to: its params' own `output.dir` (relative to the working
 * directory, like every other path a user types), else its step folder.
 */
export function experimentDir(dir: string | undefined, stepDir: string): string {
  return dir ? joinPath(Deno.cwd(), dir) : stepDir;
}

/**
 * `rel` inside that folder, as a step's `outputs()` declares it (the runner joins relative
 * paths onto the step folder), so the files promised are the files `run()` writes.
 */
export function experimentPath(dir: string | undefined, rel: string): string {
  return dir ? joinPath(experimentDir(dir, ""), rel) : rel;
}

export function joinPath(base: string, rel: string): string {
  if (rel.startsWith("/")) return rel;
  const out: string[] = [];
  for (const part of `${base}/${rel}`.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === ".." && out.length > 0 && out[out.length - 1] !== "..") out.pop();
    else out.push(part);
  }
  return (base.startsWith("/") ? "/" : "") + (out.join("/") || ".");
}

// ---------------------------------------------------------------------------------------------
// Planning

interface KnownStep {
  index: number;
  type: string;
  /** Undefined when its type is unknown (already reported; references to it are not). */
  outputs?: Record<string, string>;
  dir: string;
}

const REFERENCE = /\$(\$?)\{([^}]*)\}/g;
const REFERENCE_FORMS = "${outputs}, ${steps.<step>.outputs.<name>} or ${steps.<step>.dir}";

/** Replaces references in every string inside `value`; records problems and dependencies. */
function resolveReferences(
  value: unknown,
  path: KeyPath,
  scope: { outputDir: string; index: number; steps: Map<string, KnownStep> },
  found: { problems: Problem[]; dependsOn: Set<string> },
): unknown {
  if (Array.isArray(value)) {
    return value.map((v, i) => resolveReferences(v, [...path, i], scope, found));
  }
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, resolveReferences(v, [...path, k], scope, found)]),
    );
  }
  if (typeof value !== "string") return value;
  return value.replace(REFERENCE, (whole, escaped: string, body: string) => {
    if (escaped) return `\${${body}}`;
    const problem = (message: string) => {
      found.problems.push({ path, message });
      return whole;
    };
    const parts = body.trim().split(".");
    if (parts.length === 1 && parts[0] === "outputs") return scope.outputDir;
    const isStepRef = parts[0] === "steps" &&
      ((parts.length === 4 && parts[2] === "outputs") ||
        (parts.length === 3 && parts[2] === "dir"));
    if (!isStepRef) return problem(`cannot read reference ${whole}: expected ${REFERENCE_FORMS}`);
    const stepName = parts[1];
    const target = scope.steps.get(stepName);
    if (target === undefined) {
      const earlier = [...scope.steps.entries()].filter(([, k]) => k.index < scope.index).map((
        [n],
      ) => n);
      return problem(
        `${whole} names no step '${stepName}'${didYouMean(stepName, earlier)}` +
          ` (earlier steps: ${earlier.join(", ") || "none"})`,
      );
    }
    if (target.index >= scope.index) {
      return problem(`${whole} refers to step '${stepName}', which does not run before this one`);
    }
    found.dependsOn.add(stepName);
    if (parts[2] === "dir") return target.dir;
    if (target.outputs === undefined) return whole; // its unknown type is reported already
    const key = parts[3];
    // Own declared outputs only: `outputs.constructor` would otherwise yield Object's source.
    if (!Object.hasOwn(target.outputs, key)) {
      const names = Object.keys(target.outputs);
      return problem(
        `${whole}: step '${stepName}' (type ${target.type}) has no output '${key}'${
          didYouMean(key, names)
        }` +
          ` (outputs: ${names.join(", ") || "none"})`,
      );
    }
    return target.outputs[key];
  });
}

/**
 * Checks a task against the registry and resolves every reference, without running anything.
 * Throws one ConfigError listing all problems (file, key path, what was expected).
 */
export function planTask(
  task: TaskSpec,
  registry: Registry,
  options: { file: string; outputDir?: string; device?: DeviceChoice },
): TaskPlan {
  const file = options.file;
  const outputDir = options.outputDir ?? task.outputs ?? `outputs/${task.name}`;
  const lines: string[] = [];
  const known = new Map<string, KnownStep>();
  const planned: PlannedStep[] = [];

  // Register all names first so a reference to a later step says "later", not "unknown".
  for (const [index, step] of task.steps.entries()) {
    if (known.has(step.name)) {
      lines.push(formatProblem(file, {
        path: ["steps", index, "name"],
        message: `duplicate step name '${step.name}' (also steps[${known.get(step.name)!.index}])`,
      }));
      continue;
    }
    known.set(step.name, { index, type: step.type, dir: joinPath(outputDir, step.name) });
  }

  for (const [index, step] of task.steps.entries()) {
    const me = known.get(step.name)!;
    if (me.index !== index) continue; // a duplicate, reported above
    if (!registry.has("steps", step.type)) {
      lines.push(formatProblem(file, {
        path: ["steps", index, "type"],
        message: `unknown step type: ${registry.missingMessage("steps", step.type)}`,
      }));
      continue;
    }
    const entry = registry.get("steps", step.type);
    const source = step.paramsSource ?? { where: file, path: ["steps", index, "params"] };
    const found = { problems: [] as Problem[], dependsOn: new Set<string>() };
    const resolved = resolveReferences(
      step.params ?? {},
      source.path,
      { outputDir, index, steps: known },
      found,
    );
    const checked = check(entry.params, resolved, source.path);
    const problems = [...found.problems, ...checked.problems];
    lines.push(...problems.map((p) => formatProblem(source.where, p)));

    let declared: Record<string, string>;
    try {
      declared = entry.outputs(checked.value);
    } catch (e) {
      // With bad params this is expected; the params problems say what to fix.
      if (problems.length === 0) {
        lines.push(
          `${file}: steps[${index}]: step type '${step.type}' could not list its outputs: ${
            (e as Error).message
          }`,
        );
      }
      continue;
    }
    const outputs: Record<string, string> = {};
    for (const [key, rel] of Object.entries(declared)) setOwn(outputs, key, joinPath(me.dir, rel));
    me.outputs = outputs; // later steps' references are checked against these names
    if (problems.length > 0) continue;
    planned.push({
      index,
      name: step.name,
      type: step.type,
      entry,
      params: checked.value,
      dir: me.dir,
      outputs,
      dependsOn: [...found.dependsOn],
      force: step.force ?? false,
    });
  }
  // Dataset specs, once every step's outputs are known: a path a step writes is not checked.
  if (lines.length === 0) {
    const made = [outputDir, ...planned.flatMap((p) => [p.dir, ...Object.values(p.outputs)])];
    // A spec reused by many steps (a YAML anchor) is reported once, with a count.
    const seen = new Map<string, { line: number; more: number }>();
    for (const step of planned) {
      const source = task.steps[step.index].paramsSource ??
        { where: file, path: ["steps", step.index, "params"] };
      for (const problem of datasetProblems(step.params, source.path, made)) {
        const again = seen.get(problem.message);
        if (again) again.more++;
        else {
          seen.set(problem.message, { line: lines.length, more: 0 });
          lines.push(formatProblem(source.where, problem));
        }
      }
    }
    for (const { line, more } of seen.values()) {
      if (more > 0) lines[line] += ` (and in ${more} more place${more > 1 ? "s" : ""})`;
    }
  }
  if (lines.length > 0) throw new ConfigError(lines);
  return {
    name: task.name,
    file,
    device: options.device ?? task.device ?? "auto",
    outputDir,
    steps: planned,
  };
}

/** Options of `loadTask`. */
export interface LoadTaskOptions {
  /** Resolves step types; the task's plugins are loaded into it. */
  registry: Registry;
  /** `--set` overrides applied to the task file before validation. */
  overrides?: readonly Override[];
  /** Overrides the task's `outputs:`. */
  outputDir?: string;
  /** Overrides the task's `device:`. */
  device?: DeviceChoice;
}

/** Reads a task file (with `extends:`), applies `--set` overrides, loads its plugins, plans it. */
export async function loadTask(file: string, options: LoadTaskOptions): Promise<TaskPlan> {
  const doc = applyOverrides(await readYamlWithExtends(file), options.overrides ?? []);
  const task = validate(taskSchema, doc, file);
  await loadPlugins(options.registry, task.plugins, file);
  return planTask(task, options.registry, {
    file,
    outputDir: options.outputDir,
    device: options.device,
  });
}

// ---------------------------------------------------------------------------------------------
// Running

/** A finished step's marker in its folder (core/shard.ts writes it after a merge too). */
export const STEP_MARKER = ".digit-step.json";
const MARKER = STEP_MARKER;

/** Canonical JSON (sorted keys), so param order in the YAML does not matter. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const keys = Object.keys(value).sort();
    return `{${
      keys.map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
        .join(",")
    }}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** What a step's marker records: its type and params, as canonical JSON. */
export function recipe(step: PlannedStep): string {
  return canonical({ type: step.type, params: step.params });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether a planned step has to run; see `stepStatus`. */
export type StepStatus = "done" | "changed" | "incomplete" | "not run";

/**
 * "done": finished with these params and outputs intact; "changed": finished with other
 * params; "incomplete": finished but outputs missing or rejected; "not run": never finished.
 */
export async function stepStatus(step: PlannedStep): Promise<StepStatus> {
  let marker: { recipe?: string };
  try {
    marker = JSON.parse(await Deno.readTextFile(joinPath(step.dir, MARKER)));
  } catch {
    return "not run";
  }
  if (marker.recipe !== recipe(step)) return "changed";
  for (const path of Object.values(step.outputs)) if (!(await exists(path))) return "incomplete";
  if (step.entry.complete && !(await step.entry.complete(step.params, step.outputs))) {
    return "incomplete";
  }
  return "done";
}

/**
 * The params that differ from the step's last finished run, as `key.path old -> new` (at most
 * three, then a count); empty when there is no marker or it cannot be read.
 */
export async function changedParams(step: PlannedStep): Promise<string[]> {
  let before: unknown;
  try {
    const marker = JSON.parse(await Deno.readTextFile(joinPath(step.dir, MARKER)));
    before = (JSON.parse(marker.recipe) as { params?: unknown }).params;
  } catch {
    return [];
  }
  const now = JSON.parse(JSON.stringify(step.params ?? {}));
  const changes: string[] = [];
  const short = (v: unknown) => {
    const text = v === undefined ? "(unset)" : JSON.stringify(v);
    return text.length > 40 ? `${text.slice(0, 37)}...` : text;
  };
  const walk = (a: unknown, b: unknown, path: string) => {
    const isObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
    if (isObject(a) && isObject(b)) {
      const ao = a as Record<string, unknown>, bo = b as Record<string, unknown>;
      for (const k of [...new Set([...Object.keys(ao), ...Object.keys(bo)])].sort()) {
        walk(ao[k], bo[k], path ? `${path}.${k}` : k);
      }
    } else if (canonical(a) !== canonical(b)) {
      changes.push(`${path || "params"} ${short(a)} -> ${short(b)}`);
    }
  };
  walk(before, now, "");
  return changes.length > 3 ? [...changes.slice(0, 3), `${changes.length - 3} more`] : changes;
}

/**
 * Why a step runs, in plain words for the console: "new", "resuming" (a run that stopped
 * early left files; steps pick up their checkpoints), or "<reason>: re-running". For changed
 * params, `changes` names them, and a step that left files is told it may resume from them:
 * a training step continues its checkpoint under the new settings (a higher max_update
 * trains on, a lower one is already reached), which `--force-step` avoids.
 */
export function runReason(
  status: StepStatus | undefined,
  forced: boolean,
  remade: readonly string[],
  leftovers: boolean,
  changes: readonly string[] = [],
  name = "NAME",
): string {
  if (forced) return "forced: re-running";
  if (remade.length > 0) {
    return `inputs changed: re-running from the start (${remade.join(", ")} re-ran)`;
  }
  if (status === "changed") {
    if (changes.length === 0) return "params changed: re-running";
    const resume = leftovers
      ? `; a training step continues the checkpoint it left (--force-step ${name} starts over)`
      : "";
    return `params changed (${changes.join("; ")}): re-running${resume}`;
  }
  if (status === "incomplete") return "outputs missing: re-running";
  return leftovers ? "resuming" : "new";
}

async function hasFiles(dir: string): Promise<boolean> {
  try {
    for await (const _ of Deno.readDir(dir)) return true;
  } catch {
    // No folder yet: nothing to resume.
  }
  return false;
}

/** Later steps that read `name`'s outputs, directly or through other steps. */
function dependantsOf(plan: TaskPlan, name: string): PlannedStep[] {
  const reached = new Set([name]);
  const found: PlannedStep[] = [];
  for (const step of plan.steps) {
    if (step.dependsOn.some((d) => reached.has(d))) {
      reached.add(step.name);
      found.push(step);
    }
  }
  return found;
}

/** Options of `runTask`. */
export interface RunTaskOptions {
  /** The registry the plan was made with. */
  registry: Registry;
  /** Where steps report. */
  log: Logger;
  /** Aborting stops the run (InterruptedError). */
  signal: AbortSignal;
  /** true re-runs every step; a list re-runs the named steps. */
  force?: boolean | readonly string[];
}

/** What `runTask` did. */
export interface RunSummary {
  /** Steps that ran, in order. */
  ran: string[];
  /** Steps skipped as already done. */
  skipped: string[];
}

/** Runs the planned steps in order, skipping finished ones (see `stepStatus`). */
export async function runTask(plan: TaskPlan, options: RunTaskOptions): Promise<RunSummary> {
  const { log, signal } = options;
  const summary: RunSummary = { ran: [], skipped: [] };
  const total = plan.steps.length;
  // Resolved once, when the first step runs: a run with nothing left to do starts no GPU.
  let backend: Backend | undefined;
  for (const [i, step] of plan.steps.entries()) {
    if (signal.aborted) throw new InterruptedError(`interrupted before step '${step.name}'`);
    const label = `[${i + 1}/${total}] ${step.name} (${step.type})`;
    const forced = step.force || options.force === true ||
      (Array.isArray(options.force) && options.force.includes(step.name));
    const remade = step.dependsOn.filter((d) => summary.ran.includes(d));
    const status = forced || remade.length > 0 ? undefined : await stepStatus(step);
    if (status === "done") {
      log.info(`${label}: finished earlier, skipped (force to re-run)`);
      summary.skipped.push(step.name);
      continue;
    }
    const changes = status === "changed" ? await changedParams(step) : [];
    const leftovers = await hasFiles(step.dir);
    log.info(`${label}: ${runReason(status, forced, remade, leftovers, changes, step.name)}`);

    await Deno.mkdir(step.dir, { recursive: true });
    // This step and everything downstream of it stop counting as finished, so a crash
    // before the dependants re-run cannot leave them looking up to date.
    for (const stale of [step, ...dependantsOf(plan, step.name)]) {
      await Deno.remove(joinPath(stale.dir, MARKER)).catch(() => {});
    }
    backend ??= await useDevice(plan.device);
    const ctx: StepContext = {
      registry: options.registry,
      device: plan.device,
      backend,
      log: prefixLogger(log, `${step.name}: `),
      outputDir: plan.outputDir,
      signal,
      stepName: step.name,
      // A checkpoint fitted to inputs that have since changed is not worth resuming.
      fresh: forced || remade.length > 0,
      stepDir: step.dir,
      outputs: { ...step.outputs },
    };
    const started = performance.now();
    try {
      await step.entry.run(step.params, ctx);
    } catch (e) {
      if (signal.aborted) {
        throw new InterruptedError(`interrupted during step '${step.name}'`, { cause: e });
      }
      if (e instanceof ConfigError) {
        throw new ConfigError(e.problems.map((p) => `step '${step.name}': ${p}`));
      }
      let message = e instanceof Error ? e.message : String(e);
      if (e instanceof ArchitectureChangedError) {
        message = message.replace("(--force-step)", `(--force-step ${step.name})`);
      }
      throw new StepFailedError(
        step.name,
        `step '${step.name}' (${step.type}) failed: ${message}`,
        { cause: e },
      );
    }
    // A step that returned early on Ctrl-C may have left partial outputs: do not mark it done.
    if (signal.aborted) throw new InterruptedError(`interrupted during step '${step.name}'`);
    const missing: string[] = [];
    for (const [key, path] of Object.entries(step.outputs)) {
      if (!(await exists(path))) missing.push(`${key} (${path})`);
    }
    if (missing.length > 0) {
      throw new StepFailedError(
        step.name,
        `step '${step.name}' (${step.type}) finished without writing: ${missing.join(", ")}`,
      );
    }
    const marker = {
      recipe: recipe(step),
      plugin: step.entry.plugin,
      finished: new Date().toISOString(),
      seconds: Math.round((performance.now() - started) / 10) / 100,
    };
    await Deno.writeTextFile(joinPath(step.dir, MARKER), JSON.stringify(marker, null, 2) + "\n");
    summary.ran.push(step.name);
    log.info(`${label}: done in ${marker.seconds} s`);
  }
  return summary;
}
