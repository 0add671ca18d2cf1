/**
 * The `digit` command line.
 *
 *   deno task train stage1 --set optimization.lr=1e-4
 *   deno task run tasks/demo.yaml --dry-run
 *   deno task serve --port 8000
 *
 * Exit codes: 0 ok, 1 runtime failure, 2 usage or config error, 130 interrupted (Ctrl-C).
 * Built-in plugins come from plugins/mod.ts (its default export: a list of plugins); when it
 * is missing or broken the CLI still starts and says so where a plugin is needed.
 */

import { ConfigError } from "../core/config.ts";
import { loadPlugins, pluginsOf, Registry } from "../core/registry.ts";
import { InterruptedError, StepFailedError } from "../core/tasks.ts";
import { parseCommandLine, type ParsedArgs, UsageError } from "./args.ts";
import { dispatch } from "./commands.ts";
import { consoleLogger } from "./log.ts";

export const BUILTIN_PLUGINS = new URL("../plugins/mod.ts", import.meta.url);

export interface BuiltinsResult {
  /** Why some or all built-in plugins are missing; undefined when all loaded. */
  note?: string;
  /** The module exists but failed: warn at once, not only when a plugin is needed. */
  broken?: boolean;
}

/** Registers the plugins exported by plugins/mod.ts (or `url`); never throws for a missing file. */
export async function loadBuiltinPlugins(
  registry: Registry,
  url: URL = BUILTIN_PLUGINS,
): Promise<BuiltinsResult> {
  try {
    await Deno.stat(url);
  } catch {
    return { note: "plugins/mod.ts does not exist, so no built-in plugins are loaded" };
  }
  let module: Record<string, unknown>;
  try {
    // Dynamic on purpose: the module may be absent or broken (reported, not thrown), and
    // tests pass other URLs. An absolute URL needs no import map, so the warning
    // `deno publish` gives for this line is expected.
    module = await import(url.href);
  } catch (e) {
    const reason = (e as Error).message.split("\n")[0];
    return {
      note: `plugins/mod.ts failed to load (${reason}), so no built-in plugins are loaded`,
      broken: true,
    };
  }
  const plugins = pluginsOf(module);
  if (plugins.length === 0) {
    return {
      note: "plugins/mod.ts exports no plugins (expected `export default [plugin, ...]`)",
      broken: true,
    };
  }
  for (const plugin of plugins) await registry.use(plugin, undefined, "plugins/mod.ts");
  return {};
}

export interface CliOptions {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  /** Replaces loading plugins/mod.ts (tests register fakes here). */
  loadBuiltins?: (registry: Registry) => Promise<BuiltinsResult>;
  /** Replaces Ctrl-C handling (tests abort this instead). */
  signal?: AbortSignal;
  /** Progress redrawn in place; default: whether stderr is a terminal. */
  tty?: boolean;
}

function writer(file: { writeSync(p: Uint8Array): number }): (text: string) => void {
  const encoder = new TextEncoder();
  return (text) => {
    const bytes = encoder.encode(text);
    for (let at = 0; at < bytes.length;) at += file.writeSync(bytes.subarray(at));
  };
}

/** Prints an error the way its kind deserves and returns the exit code. */
function report(e: unknown, err: (text: string) => void, verbose: boolean): number {
  if (e instanceof UsageError) {
    const help = e.command ? `digit ${e.command} --help` : "digit --help";
    err(`error: ${e.message}\n(see ${help})\n`);
    return 2;
  }
  if (e instanceof ConfigError) {
    for (const line of e.problems) {
      err(line.startsWith("note: ") ? `${line}\n` : `error: ${line}\n`);
    }
    return 2;
  }
  if (e instanceof InterruptedError) {
    err(`${e.message}\n`);
    return 130;
  }
  const error = e instanceof Error ? e : new Error(String(e));
  err(`error: ${error.message}\n`);
  if (verbose) {
    const cause = error instanceof StepFailedError ? error.cause : error;
    err(`${cause instanceof Error ? cause.stack : String(cause)}\n`);
  } else {
    err("(--verbose shows the stack trace)\n");
  }
  return 1;
}

/** Runs the CLI with `args` (without the program name) and returns the exit code. */
export async function main(args: string[], options: CliOptions = {}): Promise<number> {
  const out = options.stdout ?? writer(Deno.stdout);
  const err = options.stderr ?? writer(Deno.stderr);
  let parsed: ParsedArgs;
  try {
    parsed = parseCommandLine(args);
  } catch (e) {
    return report(e, err, false);
  }
  const verbose = parsed.values.verbose ?? false;

  // Ctrl-C once: abort politely (steps stop at their next check). Twice: exit now.
  const controller = new AbortController();
  const onInterrupt = () => {
    if (controller.signal.aborted) Deno.exit(130);
    err("\ninterrupting... (Ctrl-C again to quit at once)\n");
    controller.abort();
  };
  if (options.signal === undefined) Deno.addSignalListener("SIGINT", onInterrupt);
  const signal = options.signal ?? controller.signal;

  try {
    const registry = new Registry();
    const builtins = await (options.loadBuiltins ?? loadBuiltinPlugins)(registry);
    if (builtins.broken) err(`warning: ${builtins.note}\n`);
    if (parsed.values.plugin) {
      await loadPlugins(registry, parsed.values.plugin, "./command-line", "--plugin");
    }
    const log = consoleLogger(err, { verbose, tty: options.tty ?? Deno.stderr.isTerminal() });
    return await dispatch({
      args: parsed,
      registry,
      log,
      out,
      signal,
      builtinsNote: builtins.note,
    });
  } catch (e) {
    return report(e, err, verbose);
  } finally {
    if (options.signal === undefined) Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
