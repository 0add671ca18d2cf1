/**
 * What each CLI command does. Every command that computes something runs step types that
 * plugins register: `train stage1` runs `train-stage1`, `sample` runs `sample`, `eval` runs
 * `eval`, `run` runs a task file, `demo` runs tasks/demo.yaml. The preview server loads a
 * registered preview model.
 */

import {
  applyOverrides,
  ConfigError,
  parseOverrides,
  readYamlWithExtends,
  schemaHelp,
  validate,
} from "../core/config.ts";
import {
  type DeviceChoice,
  DEVICES,
  type Kind,
  KINDS,
  type Logger,
  type Registry,
} from "../core/registry.ts";
import { startRun } from "../core/run_context.ts";
import { loadTask, planTask, runTask, stepStatus, type TaskPlan } from "../core/tasks.ts";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { startServer } from "../server/serve.ts";
import { checkEvalInputs, type EvalInputs } from "./eval_check.ts";
import { commandHelp, mainHelp, type ParsedArgs, TRAIN_TARGETS, UsageError } from "./args.ts";

export interface Session {
  args: ParsedArgs;
  registry: Registry;
  log: Logger;
  /** Standard output: help, listings, plans. */
  out: (text: string) => void;
  signal: AbortSignal;
  /** Why built-in plugins are missing, if they are; added to "not registered" errors. */
  builtinsNote?: string;
}

/** The repository's demo task, whatever the working directory. */
export const DEMO_TASK = new URL("../tasks/demo.yaml", import.meta.url);

function device(session: Session): DeviceChoice | undefined {
  const d = session.args.values.device;
  if (d === undefined) return undefined;
  if (!(DEVICES as readonly string[]).includes(d)) {
    throw new UsageError(
      `--device: expected one of ${DEVICES.join(", ")}, got '${d}'`,
      session.args.command,
    );
  }
  return d as DeviceChoice;
}

/** Throws a ConfigError naming what is registered (and why built-ins may be missing). */
function requireEntry(session: Session, kind: Kind, name: string, what: string): void {
  if (session.registry.has(kind, name)) return;
  const lines = [`${what}: ${session.registry.missingMessage(kind, name)}`];
  if (session.builtinsNote) lines.push(`note: ${session.builtinsNote}`);
  throw new ConfigError(lines);
}

async function exists(path: string | URL): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** A display path: relative to the working directory when inside it. */
function shown(url: URL): string {
  const path = decodeURIComponent(url.pathname);
  const cwd = Deno.cwd() + "/";
  return path.startsWith(cwd) ? path.slice(cwd.length) : path;
}

/** Prints the plan with each step's status instead of running it. */
async function printPlan(plan: TaskPlan, out: (text: string) => void): Promise<void> {
  out(`task ${plan.name} (${plan.file}), device ${plan.device}, outputs ${plan.outputDir}\n`);
  for (const [i, step] of plan.steps.entries()) {
    out(
      `  ${i + 1}. ${step.name} (${step.type}): ${await stepStatus(step)}${
        step.force ? ", forced" : ""
      }\n`,
    );
    out(`       params: ${JSON.stringify(step.params)}\n`);
    for (const [key, path] of Object.entries(step.outputs)) out(`       ${key} -> ${path}\n`);
  }
}

async function execute(session: Session, plan: TaskPlan): Promise<number> {
  const { values } = session.args;
  if (values["dry-run"]) {
    await printPlan(plan, session.out);
    return 0;
  }
  const force = values.force ? true : values["force-step"] ?? false;
  for (const name of Array.isArray(force) ? force : []) {
    if (!plan.steps.some((s) => s.name === name)) {
      throw new UsageError(
        `--force-step ${name}: no such step (steps: ${plan.steps.map((s) => s.name).join(", ")})`,
        session.args.command,
      );
    }
  }
  const summary = await runTask(plan, {
    registry: session.registry,
    log: session.log,
    signal: session.signal,
    force,
  });
  session.log.info(
    `${plan.name}: ran ${summary.ran.length} step(s), skipped ${summary.skipped.length} finished; outputs in ${plan.outputDir}`,
  );
  return 0;
}

/** Runs one step type as a one-step task, its params from --config and --set. */
async function runStepCommand(
  session: Session,
  stepType: string,
  defaultConfig?: string,
): Promise<number> {
  const { values } = session.args;
  requireEntry(session, "steps", stepType, `${session.args.command}`);
  let configPath = values.config;
  if (configPath === undefined && defaultConfig !== undefined && (await exists(defaultConfig))) {
    configPath = defaultConfig;
    session.log.info(`using ${defaultConfig} (--config to choose another)`);
  }
  const where = configPath ?? "command line";
  const doc = applyOverrides(
    configPath !== undefined ? await readYamlWithExtends(configPath) : {},
    parseOverrides(values.set ?? []),
  );
  const plan = planTask(
    {
      name: stepType,
      steps: [{ name: stepType, type: stepType, params: doc, paramsSource: { where, path: [] } }],
    },
    session.registry,
    { file: where, outputDir: values.outputs ?? "outputs", device: device(session) ?? "auto" },
  );
  // The built-in eval reads big files: a missing one is reported before anything starts.
  if (stepType === "eval" && plan.steps[0].entry.plugin === "digit-metrics" && !values["dry-run"]) {
    await checkEvalInputs(plan.steps[0].params as EvalInputs);
  }
  return await execute(session, plan);
}

/** --stage1/--stage2/--vqgan as `sample`'s params or the preview's options (--set wins). */
function partFlagsAsSets(v: ParsedArgs["values"]): string[] {
  return (["stage1", "stage2", "vqgan"] as const).filter((k) => v[k] !== undefined)
    .map((k) => `${k}=${JSON.stringify(v[k])}`); // quoted: a path is a string, whatever it looks like
}

/** torch-fidelity's flags as the eval step's params (--set given after them wins). */
function evalFlagsAsSets(v: ParsedArgs["values"]): string[] {
  const sets: string[] = [];
  if (v.input1 !== undefined) sets.push(`generated=${v.input1}`);
  if (v.input2 !== undefined) sets.push(`reference=${v.input2}`);
  const metrics = [
    ...(v.fid ? ["fid"] : []),
    ...(v.isc ? ["is"] : []),
    ...(v.prc ? ["prc"] : []),
    ...(v.fd ?? []).map((e) => `fd:${e}`),
  ];
  if (metrics.length > 0) sets.push(`metrics=[${metrics.join(",")}]`);
  return sets;
}

async function runTaskFile(session: Session, file: string): Promise<number> {
  const { values } = session.args;
  const plan = await loadTask(file, {
    registry: session.registry,
    overrides: parseOverrides(values.set ?? []),
    outputDir: values.outputs,
    device: device(session),
  });
  return await execute(session, plan);
}

// ---------------------------------------------------------------------------------------------

function stepHelp(session: Session, stepType: string): string[] {
  if (!session.registry.has("steps", stepType)) {
    return [`Step type '${stepType}' is not registered. ${session.builtinsNote ?? ""}`.trim()];
  }
  const entry = session.registry.get("steps", stepType);
  const keys = schemaHelp(entry.params);
  return [
    `Config keys of step type '${stepType}' (plugin ${entry.plugin})${
      entry.description ? `: ${entry.description}` : ""
    }`,
    ...(keys.length > 0 ? keys.map((k) => `  ${k}`) : ["  (none)"]),
  ];
}

function helpFor(session: Session, command: string): string {
  const r = session.registry;
  let extra: string[] = [];
  if (command === "train") {
    const target = session.args.positionals[0];
    if (target !== undefined && command === session.args.command) {
      extra = stepHelp(session, `train-${target}`);
    } else {
      const registered = TRAIN_TARGETS.filter((t) => r.has("steps", `train-${t}`));
      extra = [
        `Registered: ${
          registered.join(", ") || "none"
        }. \`train <part> --help\` lists its config keys.`,
      ];
    }
  } else if (command === "sample" || command === "eval") {
    extra = stepHelp(session, command);
  } else if (command === "run" || command === "demo") {
    extra = [
      "Step types:",
      ...r.list("steps").map((e) => `  ${e.name.padEnd(24)} ${e.description}`),
    ];
  } else if (command === "serve") {
    extra = [
      "Preview models:",
      ...r.list("previews").map((e) => `  ${e.name.padEnd(24)} ${e.description}`),
    ];
    for (const e of r.list("previews")) {
      extra.push(
        `Options of ${e.name}:`,
        ...schemaHelp(e.options).map((k) => `  ${k}`),
      );
    }
  }
  return commandHelp(command, extra);
}

// ---------------------------------------------------------------------------------------------

/**
 * Where the preview saves what it generates: `--save-dir`, else a `preview/` folder beside the
 * samples. Never the samples folder or inside it: a metric may have scored that folder, and
 * its score would no longer describe it.
 */
export function previewSaveDir(samplesDir: string, given?: string): string {
  const samples = resolve(samplesDir);
  let dir = given;
  if (dir === undefined) {
    dir = join(dirname(samples), "preview");
    if (dir === samples) dir = `${samples}-generated`; // the samples folder is itself "preview"
    if (!isAbsolute(samplesDir)) dir = relative(Deno.cwd(), dir);
  }
  const rel = relative(samples, resolve(dir));
  if (rel === "" || (!rel.startsWith("..") && !isAbsolute(rel))) {
    throw new UsageError(
      `--save-dir ${dir} is ${
        rel === "" ? "the" : "inside the"
      } --samples folder (${samplesDir}); generated images must go elsewhere, so that the samples stay as they were scored`,
      "serve",
    );
  }
  return dir;
}

async function serve(session: Session): Promise<number> {
  const { values } = session.args;
  const port = Number(values.port ?? "8000");
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(
      `--port: expected an integer from 0 to 65535, got '${values.port}'`,
      "serve",
    );
  }
  const previews = session.registry.list("previews");
  let name = values.model;
  if (name !== undefined) requireEntry(session, "previews", name, "serve --model");
  else if (previews.length === 1) name = previews[0].name;
  else if (previews.length > 1) {
    throw new ConfigError(
      `serve: several preview models are registered (${
        previews.map((p) => p.name).join(", ")
      }); choose one with --model`,
    );
  }
  const outputDir = values.outputs ?? "outputs";
  const samplesDir = values.samples ?? `${outputDir}/samples`;
  const saveDir = previewSaveDir(samplesDir, values["save-dir"]);
  const deviceChoice = device(session) ?? "auto"; // a bad --device fails even without a model
  let model;
  if (name !== undefined) {
    // serve is one run: the device is resolved once, for every request the model answers.
    const ctx = await startRun({
      registry: session.registry,
      device: deviceChoice,
      log: session.log,
      outputDir,
      signal: session.signal,
    });
    const where = values.config ?? "command line";
    const doc = applyOverrides(
      values.config ? await readYamlWithExtends(values.config) : {},
      parseOverrides(values.set ?? []),
    );
    // Bad options are the user's mistake: fail. A model that cannot load (nothing trained
    // yet, say) still leaves a useful gallery, so warn and serve that.
    const entry = session.registry.get("previews", name);
    const options = validate(entry.options, doc ?? {}, where);
    try {
      model = await entry.create(options, ctx);
    } catch (e) {
      if (session.signal.aborted) throw e;
      session.log.warn(
        `preview model '${name}' could not be loaded, so generation is off and the gallery ` +
          `is served alone: ${(e as Error).message}`,
      );
    }
  } else {
    session.log.warn(
      `no preview model is registered: serving the gallery only. ${session.builtinsNote ?? ""}`
        .trim(),
    );
  }
  const server = startServer({
    samplesDir,
    saveDir,
    model,
    hostname: values.host ?? "127.0.0.1",
    allowHosts: values["allow-host"],
    port,
    signal: session.signal,
    log: session.log,
  });
  session.log.info(
    `preview at ${server.url} (gallery: ${samplesDir}, new images saved in ${saveDir}); Ctrl-C stops it`,
  );
  await server.finished;
  return session.signal.aborted ? 130 : 0;
}

function list(session: Session): number {
  const r = session.registry;
  const plugins = r.plugins;
  session.out(`plugins (${plugins.length}):\n`);
  for (const p of plugins) {
    session.out(`  ${p.name}@${p.version}${p.description ? `  ${p.description}` : ""}\n`);
  }
  if (session.builtinsNote) session.out(`  (${session.builtinsNote})\n`);
  for (const kind of KINDS) {
    const entries = r.list(kind);
    if (entries.length === 0) continue;
    session.out(`${kind}:\n`);
    for (const e of entries) {
      session.out(`  ${e.name.padEnd(24)} ${e.plugin.padEnd(20)} ${e.description}\n`);
    }
  }
  return 0;
}

/** Runs the parsed command; returns the exit code (errors are thrown). */
export async function dispatch(session: Session): Promise<number> {
  const { command, positionals, values } = session.args;
  if (command === "help") {
    const topic = positionals[0];
    if (topic === undefined) session.out(mainHelp());
    else if (helpTopics.includes(topic)) session.out(helpFor(session, topic));
    else throw new UsageError(`help: unknown command '${topic}'`);
    return 0;
  }
  if (values.help) {
    session.out(helpFor(session, command));
    return 0;
  }
  const expectPositionals = (n: number, what: string) => {
    if (positionals.length !== n) {
      throw new UsageError(
        `${command}: expected ${what}, got ${
          positionals.length ? positionals.join(" ") : "nothing"
        }`,
        command,
      );
    }
  };
  switch (command) {
    case "train": {
      expectPositionals(1, `one of ${TRAIN_TARGETS.join(", ")}`);
      const target = positionals[0];
      if (!(TRAIN_TARGETS as readonly string[]).includes(target)) {
        throw new UsageError(
          `train: expected one of ${TRAIN_TARGETS.join(", ")}, got '${target}'`,
          command,
        );
      }
      return await runStepCommand(session, `train-${target}`, `configs/${target}.yaml`);
    }
    case "sample":
    case "eval":
      expectPositionals(0, "no arguments (use --input1/--input2, --config and --set)");
      session.args.values.set = [
        ...evalFlagsAsSets(session.args.values),
        ...partFlagsAsSets(session.args.values),
        ...(session.args.values.set ?? []),
      ];
      return await runStepCommand(session, command);
    case "run":
      expectPositionals(1, "a task file");
      return await runTaskFile(session, positionals[0]);
    case "demo":
      expectPositionals(0, "no arguments");
      if (await exists(DEMO_TASK)) return await runTaskFile(session, shown(DEMO_TASK));
      if (session.registry.has("steps", "demo")) return await runStepCommand(session, "demo");
      throw new ConfigError(
        [
          `demo: ${shown(DEMO_TASK)} does not exist and no step type 'demo' is registered`,
          ...(session.builtinsNote ? [`note: ${session.builtinsNote}`] : []),
        ],
      );
    case "serve":
      expectPositionals(0, "no arguments");
      values.set = [...partFlagsAsSets(values), ...(values.set ?? [])];
      return await serve(session);
    case "list":
      return list(session);
  }
  throw new UsageError(`unknown command '${command}'`);
}

const helpTopics = ["train", "sample", "eval", "run", "demo", "serve", "list", "help"];
