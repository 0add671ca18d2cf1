/**
 * Command-line grammar: one table of options, which commands accept which, and help texts.
 * Parsing uses `node:util` parseArgs (JSR is unreachable here, so no @std/cli).
 */

import { parseArgs } from "node:util";
import { limitsHelp } from "../server/app.ts";

/** Bad command line: the CLI prints it with a pointer to --help and exits with code 2. */
export class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
    this.name = "UsageError";
  }
}

export const OPTIONS = {
  help: { type: "boolean", short: "h" },
  config: { type: "string", short: "c" },
  set: { type: "string", multiple: true },
  device: { type: "string" },
  outputs: { type: "string", short: "o" },
  plugin: { type: "string", multiple: true },
  verbose: { type: "boolean", short: "v" },
  force: { type: "boolean" },
  "force-step": { type: "string", multiple: true },
  "dry-run": { type: "boolean" },
  port: { type: "string" },
  host: { type: "string" },
  "allow-host": { type: "string", multiple: true },
  samples: { type: "string" },
  "save-dir": { type: "string" },
  model: { type: "string" },
  stage1: { type: "string" },
  stage2: { type: "string" },
  vqgan: { type: "string" },
  input1: { type: "string" },
  input2: { type: "string" },
  fid: { type: "boolean" },
  isc: { type: "boolean" },
  prc: { type: "boolean" },
  fd: { type: "string", multiple: true },
} as const;
export type OptionName = keyof typeof OPTIONS;

const GLOBAL: OptionName[] = ["help", "config", "set", "device", "outputs", "plugin", "verbose"];
const STEP: OptionName[] = [...GLOBAL, "force", "dry-run"];

export interface CommandInfo {
  usage: string;
  summary: string;
  options: OptionName[];
  /** Extra help lines. */
  details: string[];
}

export const TRAIN_TARGETS = ["stage1", "stage2", "vqgan", "tokenizer"] as const;

export const COMMANDS: Record<string, CommandInfo> = {
  train: {
    usage: "train <stage1|stage2|vqgan|tokenizer> [--config FILE] [--set key=value ...]",
    summary: "train one part of the pipeline (runs the step type train-<part>)",
    options: STEP,
    details: [
      "The config defaults to configs/<part>.yaml when that file exists.",
      "Output goes to <outputs>/train-<part>/; a finished run is skipped unless --force.",
    ],
  },
  sample: {
    usage:
      "sample [--stage1 PATH] [--stage2 PATH] [--vqgan PATH] [--config FILE] [--set key=value ...]",
    summary: "generate images (runs the step type sample)",
    options: [...STEP, "stage1", "stage2", "vqgan"],
    details: [
      "Each part is a run folder, a checkpoint, or a released file (fairseq stage-1 .pt, DiGIT",
      "stage-2 .pt, MAGE .ckpt); parts not given are found by their checkpoint kind under",
      "--set dir=FOLDER (default: the demo's outputs). --stage1 X is --set stage1=X, and so on.",
    ],
  },
  eval: {
    usage:
      "eval --input1 DIR --input2 DIR|STATS [--fid] [--isc] [--prc] [--fd ENCODER ...] [--set key=value ...]",
    summary: "score generated images, e.g. FID and IS (runs the step type eval)",
    options: [...STEP, "input1", "input2", "fid", "isc", "prc", "fd"],
    details: [
      "The flags of torch-fidelity: --input1 is the generated folder, --input2 the reference folder",
      "or statistics file; --fid, --isc, --prc and --fd ENCODER choose the metrics (default FID and IS).",
      "They are shorthands for --set generated=, reference= and metrics=[...]; --set wins over them.",
    ],
  },
  run: {
    usage:
      "run <task.yaml> [--set steps.<step>.params.key=value ...] [--dry-run] [--force | --force-step NAME]",
    summary: "run a task file; steps whose outputs are finished are skipped",
    options: [...STEP, "force-step"],
    details: [
      "--set edits the task file before it is checked; steps can be named by their `name`.",
      "--dry-run checks the task and prints each step's status, params and outputs.",
    ],
  },
  demo: {
    usage: "demo [--dry-run] [--force]",
    summary: "run tasks/demo.yaml (a tiny end-to-end pipeline), or the step type demo",
    options: [...STEP, "force-step"],
    details: [],
  },
  serve: {
    usage:
      "serve [--port 8000] [--host 127.0.0.1] [--allow-host NAME ...] [--samples DIR] [--save-dir DIR] [--model NAME] [--config FILE]",
    summary: "preview server: sample gallery and a generate form",
    options: [
      ...GLOBAL,
      "port",
      "host",
      "allow-host",
      "samples",
      "save-dir",
      "model",
      "stage1",
      "stage2",
      "vqgan",
    ],
    details: [
      "--samples is the gallery folder (default <outputs>/samples); it is only read, so a folder",
      "a metric scored stays as scored. Generated images go to --save-dir (default: a preview/",
      "folder beside the samples), which the gallery shows too.",
      "--model picks a registered preview model (default: the only one); --config/--set are its options.",
      "Without a preview model the server shows the gallery only.",
      "Requests must name the server as bound (127.0.0.1:PORT, localhost:PORT, [::1]:PORT, or the",
      "--host address) in their Host header, else 403: a web page cannot reach it by DNS rebinding.",
      "For a deliberate public bind (--host 0.0.0.0 behind a name), add --allow-host NAME.",
      ...limitsHelp(),
    ],
  },
  list: {
    usage: "list",
    summary: "list loaded plugins and everything they register",
    options: GLOBAL,
    details: [],
  },
  help: {
    usage: "help [command]",
    summary: "show help for all commands or one",
    options: ["help"],
    details: [],
  },
};

export interface ParsedArgs {
  command: string;
  positionals: string[];
  values: {
    help?: boolean;
    config?: string;
    set?: string[];
    device?: string;
    outputs?: string;
    plugin?: string[];
    verbose?: boolean;
    force?: boolean;
    "force-step"?: string[];
    "dry-run"?: boolean;
    port?: string;
    host?: string;
    "allow-host"?: string[];
    samples?: string;
    "save-dir"?: string;
    stage1?: string;
    stage2?: string;
    vqgan?: string;
    model?: string;
    input1?: string;
    input2?: string;
    fid?: boolean;
    isc?: boolean;
    prc?: boolean;
    fd?: string[];
  };
}

/** Parses argv; throws UsageError for unknown commands or options a command does not take. */
export function parseCommandLine(args: readonly string[]): ParsedArgs {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: OPTIONS, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError(
      (e as Error).message.replace(/\. To specify a positional argument.*$/s, ""),
    );
  }
  const [command = "help", ...positionals] = parsed.positionals;
  const info = COMMANDS[command];
  if (info === undefined) {
    throw new UsageError(
      `unknown command '${command}' (commands: ${Object.keys(COMMANDS).join(", ")})`,
    );
  }
  for (const key of Object.keys(parsed.values) as OptionName[]) {
    if (!info.options.includes(key)) {
      throw new UsageError(`--${key} is not an option of '${command}'`, command);
    }
  }
  return { command, positionals, values: parsed.values as ParsedArgs["values"] };
}

const OPTION_HELP: Record<OptionName, [string, string]> = {
  help: ["--help, -h", "show help"],
  config: ["--config, -c FILE", "YAML config (may use `extends: base.yaml`)"],
  set: [
    "--set KEY.PATH=VALUE",
    "override a config key before checking (repeatable; VALUE is YAML)",
  ],
  device: ["--device NAME", "cpu, webgpu or auto"],
  outputs: ["--outputs, -o DIR", "output folder (default outputs)"],
  plugin: ["--plugin FILE", "load another plugin module (repeatable)"],
  verbose: ["--verbose, -v", "debug lines and stack traces"],
  force: ["--force", "re-run steps even when their outputs are finished"],
  "force-step": ["--force-step NAME", "re-run one step (repeatable)"],
  "dry-run": ["--dry-run", "check and show the plan, run nothing"],
  port: ["--port N", "port (default 8000; 0 picks a free one)"],
  host: ["--host ADDR", "address to bind (default 127.0.0.1)"],
  "allow-host": ["--allow-host NAME", "also accept this Host header name (repeatable)"],
  samples: ["--samples DIR", "gallery folder (only read)"],
  "save-dir": ["--save-dir DIR", "where generated images go (default: preview/ beside --samples)"],
  model: ["--model NAME", "registered preview model to load"],
  stage1: ["--stage1 PATH", "stage 1: run folder, checkpoint or fairseq .pt"],
  stage2: ["--stage2 PATH", "stage 2: run folder, checkpoint or DiGIT stage-2 .pt"],
  vqgan: ["--vqgan PATH", "decoder: run folder, checkpoint or MAGE .ckpt"],
  input1: ["--input1 DIR", "generated images (eval's `generated`)"],
  input2: ["--input2 DIR|STATS", "reference images or statistics (eval's `reference`)"],
  fid: ["--fid", "Frechet Inception distance"],
  isc: ["--isc", "Inception score"],
  prc: ["--prc", "precision and recall"],
  fd: ["--fd ENCODER", "Frechet distance on a registered encoder's features (repeatable)"],
};

function optionLine(name: OptionName): string {
  const [flag, text] = OPTION_HELP[name];
  return `  ${flag.padEnd(22)}${text}`;
}

export function mainHelp(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.split(" [")[0].length)) + 2;
  const lines = [
    "digit: DiGIT (discriminative tokens + GPT image generation) in Deno",
    "",
    "Usage: deno task <command> [args]   or   deno run -A cli/main.ts <command> [args]",
    "",
    "Commands:",
    ...Object.values(COMMANDS).map((c) => `  ${c.usage.split(" [")[0].padEnd(width)}${c.summary}`),
    "",
    "Options for every command:",
    ...GLOBAL.map(optionLine),
    "",
    "`digit <command> --help` shows a command's options and config keys.",
    "Exit codes: 0 ok, 1 runtime failure, 2 usage or config error, 130 interrupted.",
  ];
  return lines.join("\n") + "\n";
}

export function commandHelp(command: string, extra: string[] = []): string {
  const info = COMMANDS[command];
  const lines = [
    `Usage: digit ${info.usage}`,
    "",
    info.summary,
    ...(info.details.length > 0 ? ["", ...info.details] : []),
    "",
    "Options:",
    ...info.options.map(optionLine),
    ...(extra.length > 0 ? ["", ...extra] : []),
  ];
  return lines.join("\n") + "\n";
}
