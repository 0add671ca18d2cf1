/**
 * The plugin registry: named encoders, tokenizers, generators, decoders, metrics, datasets,
 * preview models and task step types, each registered by a plugin.
 *
 * A plugin is a module whose default export is
 *
 *   definePlugin({ name: "digit-stage1", version: "0.1.0", register(r) {
 *     r.generator({ name: "stage1-gpt", options: s.object({...}), create: (opts, ctx) => ... });
 *     r.step({ name: "train-stage1", params: s.object({...}), outputs: () => ({ checkpoint: "last.ckpt" }),
 *              run: async (params, ctx) => { ... } });
 *   } })
 *
 * or a factory `(options) => Plugin` (Lume's pattern). Two plugins registering one name in
 * one kind is an error naming both.
 */

import type { Decoder, Encoder, Generator, ImageBatch, Metric, Tokenizer } from "./interfaces.ts";
import type { Backend } from "./backend.ts";
import { ConfigError, didYouMean, resolveBeside, s, type Schema, validate } from "./config.ts";

// ---------------------------------------------------------------------------------------------
// What plugins produce

/** One batch from a dataset; labels are class ids when the dataset has classes. */
export interface LabelledBatch {
  /** The images. */
  images: ImageBatch;
  /** One class id per image. */
  labels?: Int32Array;
}

/** A source of training or evaluation images. */
export interface Dataset {
  /** Registered name. */
  readonly name: string;
  /** Number of images. */
  readonly size: number;
  /** Number of classes, when labelled. */
  readonly classes?: number;
  /** The images in batches of `batchSize`, in a `seed`-determined order when `shuffle` is set. */
  batches(options: {
    batchSize: number;
    shuffle?: boolean;
    seed?: number;
    signal?: AbortSignal;
  }): AsyncIterable<LabelledBatch>;
}

/** What the preview server asks for (validated by the server before it gets here). */
export interface PreviewRequest {
  /** Class id for class-conditional models; absent means unconditional. */
  classId?: number;
  /** Sampling seed; the same request gives the same images. */
  seed: number;
  /** 0 disables top-k filtering. */
  topK: number;
  /** Sampling temperature. */
  temperature: number;
  /** MaskGIT iterations for the stage-2 decoder. */
  steps: number;
  /** Number of images to generate. */
  count: number;
}

/** Progress reported while a preview request runs. */
export interface PreviewProgress {
  /** Units of work done so far. */
  done: number;
  /** Units of work in all. */
  total: number;
  /** What is running, e.g. "stage 1", "stage 2", "decode". */
  stage?: string;
}

/** One generated image, PNG-encoded. */
export interface PreviewImage {
  /** File stem hint (letters, digits, '-', '_', '.'); the server makes it unique. */
  name: string;
  /** The PNG file's bytes. */
  png: Uint8Array;
}

/** The whole class → PNG pipeline, as the preview server drives it. */
export interface PreviewModel {
  /** Name shown by the preview server. */
  readonly name?: string;
  /** Number of classes for class-conditional models; absent for unconditional ones. */
  readonly classes?: number;
  /** Class names by id, when the model knows them (the preview page lists them). */
  readonly classNames?: readonly string[];
  /** Distinct tokens top-k picks among (stage 1's vocabulary): the server bounds top-k by it. */
  readonly vocabSize?: number;
  /** false when `steps` changes nothing (an AR stage 2): the page leaves it out. Absent: true. */
  readonly usesSteps?: boolean;
  /** Generate `request.count` images, reporting progress; stops early when `signal` aborts. */
  generate(
    request: PreviewRequest,
    onProgress: (progress: PreviewProgress) => void,
    signal?: AbortSignal,
  ): Promise<PreviewImage[]>;
}

/** The product type of each factory kind. */
export interface Products {
  /** Feature extractors (e.g. DINOv2). */
  encoders: Encoder;
  /** Image-to-token models (e.g. K-Means over encoder features). */
  tokenizers: Tokenizer;
  /** Token-sequence models (stage 1 and stage 2). */
  generators: Generator;
  /** Token-to-image models (the VQGAN decoder). */
  decoders: Decoder;
  /** Image-quality metrics (FID, IS, FD-DINOv2). */
  metrics: Metric;
  /** Image datasets. */
  datasets: Dataset;
  /** Whole pipelines for the preview server. */
  previews: PreviewModel;
}
/** A registry kind whose entries build a product. */
export type FactoryKind = keyof Products;
/** Every registry kind: the factory kinds plus task step types. */
export type Kind = FactoryKind | "steps";
/** All kinds, in the order `digit list` shows them. */
export const KINDS: readonly Kind[] = [
  "encoders",
  "tokenizers",
  "generators",
  "decoders",
  "metrics",
  "datasets",
  "previews",
  "steps",
];

// ---------------------------------------------------------------------------------------------
// Contexts

/** A device as configs spell it; `auto` picks a real GPU when there is one. */
export type DeviceChoice = "cpu" | "webgpu" | "auto";
/** All device choices, for config schemas and help. */
export const DEVICES: readonly DeviceChoice[] = ["cpu", "webgpu", "auto"];

/** Where runs report; the CLI prints, tests collect lines. */
export interface Logger {
  /** A normal message. */
  info(message: string): void;
  /** Something the user should look at; the run goes on. */
  warn(message: string): void;
  /** Detail shown only when asked for. */
  debug(message: string): void;
  /** Progress of a long loop (training steps, batches); loggers throttle it themselves. */
  progress(label: string, done: number, total: number): void;
}

/** What every factory and step gets. */
export interface RunContext {
  /** The registry the run resolves names in. */
  registry: Registry;
  /** The device asked for, as the task file or `--device` spelled it (`auto` included). */
  device: DeviceChoice;
  /**
   * What `device` resolved to, once per run by whoever starts it (the task runner, the CLI's
   * serve, `DigitPipeline.load`: see core/run_context.ts), and already the default backend
   * new tensors go to. Plugins read it; they never switch the process-wide device.
   */
  backend: Backend;
  /** Where to report. */
  log: Logger;
  /** Root folder for everything this run writes. */
  outputDir: string;
  /** Aborted on Ctrl-C: long loops should check it and stop (throwing is fine). */
  signal: AbortSignal;
}

/** What a step's `run` gets, on top of the RunContext. */
export interface StepContext extends RunContext {
  /** The step's name in the task file. */
  stepName: string;
  /** The step's own folder (created before `run`); relative outputs live here. */
  stepDir: string;
  /** The step's declared outputs as absolute-or-cwd-relative paths. */
  outputs: Record<string, string>;
  /**
   * Start over instead of resuming: the user forced this step (--force, --force-step), or a
   * step it reads re-ran, so what it left was made from other inputs.
   */
  fresh?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Entries

/**
 * The slot of a generation pipeline a trained model fills: `stage1` (class -> semantic tokens),
 * `stage2` (semantic tokens -> image tokens) or `decoder` (image tokens -> pixels).
 */
export type PipelineSlot = "stage1" | "stage2" | "decoder";

/** How a plugin describes a factory (an encoder, a generator, ...). */
export interface FactoryDefinition<K extends FactoryKind, O> {
  /** Registered name: letters, digits, '.', '-' or '_'. */
  name: string;
  /** One line for `digit list`. */
  description?: string;
  /**
   * Set on a generator or decoder that loads a trained model from `{ checkpoint: path }`:
   * the pipeline slot it fills. Its name is then a checkpoint kind: the pipeline composer
   * builds every checkpoint whose meta says `kind: <name>` with this factory. (A decoder
   * fills `decoder` whether or not it says so.)
   */
  slot?: PipelineSlot;
  /** Schema of the options `create` receives (already validated, defaults filled). */
  options?: Schema<O>;
  /** Build the product from validated options. */
  create(options: O, ctx: RunContext): Products[K] | Promise<Products[K]>;
}

/** How a plugin describes a task step type. */
export interface StepDefinition<P> {
  /** Step type name, as task files write it: letters, digits, '.', '-' or '_'. */
  name: string;
  /** One line for `digit list`. */
  description?: string;
  /** Schema of the step's `params:` (references already resolved). */
  params?: Schema<P>;
  /**
   * Named outputs; relative paths live in the step's folder. Called while planning, before
   * anything runs, so it must be cheap and depend only on the params.
   */
  outputs?(params: P): Record<string, string>;
  /**
   * Extra check that finished outputs are usable. The runner already requires that the
   * step's last run finished with the same params and that every output path exists.
   */
  complete?(params: P, outputs: Record<string, string>): boolean | Promise<boolean>;
  /** Do the step's work, writing its outputs into `ctx.outputs`. */
  run(params: P, ctx: StepContext): void | Promise<void>;
  /**
   * Present when the step can be split over processes (Slurm array tasks, Kubernetes
   * Indexed Job pods): see core/shard.ts for how shards are chosen, where they write and
   * when a merge may run. `run` above stays the single-process path.
   */
  shardable?: ShardableStep<P>;
}

/** One shard of a step (its index, the shard count, and the folder it alone writes to). */
export interface StepShard {
  /** 0-based shard index. */
  index: number;
  /** Number of shards. */
  count: number;
  /** The shard's own folder. */
  dir: string;
}

/** How a shardable step does one shard's work and combines finished shards. */
export interface ShardableStep<P> {
  /**
   * Processes one deterministic, contiguous slice of the step's input (core/shard.ts
   * `shardSlice`). `ctx.stepDir` is the shard's folder and `ctx.outputs` point inside it:
   * nothing may be written elsewhere, so two shards never write the same file.
   */
  run(params: P, ctx: StepContext, shard: StepShard): void | Promise<void>;
  /**
   * Writes the step's declared outputs (`ctx.outputs`, in the step's folder) from every
   * shard, given in index order and all finished. The result must be byte-identical to
   * what `run` writes in one process.
   */
  merge(params: P, ctx: StepContext, shards: readonly StepShard[]): void | Promise<void>;
}

/** What every registry entry has, whatever its kind. */
export interface EntryInfo {
  /** Registered name. */
  name: string;
  /** Name of the plugin that registered it. */
  plugin: string;
  /** One line for `digit list` ("" when the definition gave none). */
  description: string;
}
/** A registered factory, as `Registry.get` returns it. */
export type FactoryEntry<K extends FactoryKind = FactoryKind, O = unknown> =
  & EntryInfo
  & {
    kind: K;
    options: Schema<O>;
    slot?: PipelineSlot;
    create(options: O, ctx: RunContext): Products[K] | Promise<Products[K]>;
  };
/** A registered step type, with defaults filled in for what its definition left out. */
export type StepEntry<P = unknown> =
  & EntryInfo
  & Required<Pick<StepDefinition<P>, "params" | "outputs" | "run">>
  & Pick<StepDefinition<P>, "complete" | "shardable">
  & { kind: "steps" };
/** The entry type of kind `K`. */
export type Entry<K extends Kind> = K extends "steps" ? StepEntry
  : K extends FactoryKind ? FactoryEntry<K>
  : never;

// ---------------------------------------------------------------------------------------------
// Plugins

/** A plugin: registers entries in a registry. */
export interface Plugin {
  /** Used in error messages and `digit list`. */
  name: string;
  /** Shown by `digit list`. */
  version: string;
  /** One line for `digit list`. */
  description?: string;
  /** Register the plugin's entries; may be async. */
  register(registry: Registry): void | Promise<void>;
}
/** A function that makes a plugin from the options a task file gives it. */
// deno-lint-ignore no-explicit-any
export type PluginFactory = (options?: any) => Plugin;

/** Identity, for type checking a plugin object in its own module. */
export function definePlugin(plugin: Plugin): Plugin {
  return plugin;
}

/** A plugin a registry has loaded, as `Registry.plugins` lists it. */
export interface LoadedPlugin {
  /** The plugin's name. */
  name: string;
  /** The plugin's version. */
  version: string;
  /** The plugin's description ("" when it gave none). */
  description: string;
  /** Where it was loaded from, when known. */
  source?: string;
}

const emptyOptions = s.object({});

/** Shared state behind a registry and its per-plugin views. */
class Store {
  readonly entries: Map<Kind, Map<string, Entry<Kind>>> = new Map<Kind, Map<string, Entry<Kind>>>(
    KINDS.map((k) => [k, new Map()]),
  );
  readonly plugins: Map<string, LoadedPlugin> = new Map<string, LoadedPlugin>();
}

/** Named entries of every kind, each registered by a plugin. */
export class Registry {
  readonly #store: Store;
  /** The plugin registering through this view ("(app)" for direct calls). */
  readonly #owner: string;

  /** Create an empty registry. `store` and `owner` are for the per-plugin views `use` makes. */
  constructor(store?: Store, owner = "(app)") {
    this.#store = store ?? new Store();
    this.#owner = owner;
  }

  /** Runs a plugin's `register` (a factory is called with `options` first). */
  async use(plugin: Plugin | PluginFactory, options?: unknown, source?: string): Promise<this> {
    const p = typeof plugin === "function" ? plugin(options) : plugin;
    const from = source ? ` (from ${source})` : "";
    if (typeof p !== "object" || p === null || typeof p.name !== "string" || p.name === "") {
      throw new ConfigError(`plugin${from}: expected an object with a non-empty 'name'`);
    }
    if (typeof p.version !== "string" || typeof p.register !== "function") {
      throw new ConfigError(
        `plugin '${p.name}'${from}: expected 'version' (a string) and 'register' (a function)`,
      );
    }
    const known = this.#store.plugins.get(p.name);
    if (known !== undefined) {
      if (known.version === p.version) return this; // the same plugin reached twice: nothing to do
      throw new ConfigError(
        `plugin '${p.name}' is loaded twice with different versions: ${known.version}` +
          `${known.source ? ` (from ${known.source})` : ""} and ${p.version}${from}`,
      );
    }
    this.#store.plugins.set(p.name, {
      name: p.name,
      version: p.version,
      description: p.description ?? "",
      source,
    });
    await p.register(new Registry(this.#store, p.name));
    return this;
  }

  /** Loaded plugins, in load order. */
  get plugins(): LoadedPlugin[] {
    return [...this.#store.plugins.values()];
  }

  /** Register an encoder factory. */
  encoder<O>(def: FactoryDefinition<"encoders", O>): void {
    this.#addFactory("encoders", def);
  }
  /** Register a tokenizer factory. */
  tokenizer<O>(def: FactoryDefinition<"tokenizers", O>): void {
    this.#addFactory("tokenizers", def);
  }
  /** Register a generator factory. */
  generator<O>(def: FactoryDefinition<"generators", O>): void {
    this.#addFactory("generators", def);
  }
  /** Register a decoder factory. */
  decoder<O>(def: FactoryDefinition<"decoders", O>): void {
    this.#addFactory("decoders", def);
  }
  /** Register a metric factory. */
  metric<O>(def: FactoryDefinition<"metrics", O>): void {
    this.#addFactory("metrics", def);
  }
  /** Register a dataset factory. */
  dataset<O>(def: FactoryDefinition<"datasets", O>): void {
    this.#addFactory("datasets", def);
  }
  /** Register a preview-model factory. */
  preview<O>(def: FactoryDefinition<"previews", O>): void {
    this.#addFactory("previews", def);
  }

  /** Register a task step type. */
  step<P>(def: StepDefinition<P>): void {
    const entry: StepEntry<P> = {
      kind: "steps",
      name: def.name,
      plugin: this.#owner,
      description: def.description ?? "",
      params: def.params ?? (emptyOptions as unknown as Schema<P>),
      outputs: def.outputs ?? (() => ({})),
      complete: def.complete,
      run: def.run,
      shardable: def.shardable,
    };
    this.#add("steps", entry as unknown as Entry<"steps">);
  }

  #addFactory<K extends FactoryKind, O>(kind: K, def: FactoryDefinition<K, O>): void {
    const entry: FactoryEntry<K, O> = {
      kind,
      name: def.name,
      plugin: this.#owner,
      description: def.description ?? "",
      options: def.options ?? (emptyOptions as unknown as Schema<O>),
      ...(def.slot !== undefined ? { slot: def.slot } : {}),
      create: def.create,
    };
    this.#add(kind, entry as unknown as Entry<K>);
  }

  #add<K extends Kind>(kind: K, entry: Entry<K>): void {
    if (typeof entry.name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(entry.name)) {
      throw new ConfigError(
        `plugin '${this.#owner}': ${kind} name ${
          JSON.stringify(entry.name)
        } must be letters, digits, '.', '-' or '_'`,
      );
    }
    const table = this.#store.entries.get(kind)!;
    const existing = table.get(entry.name);
    if (existing !== undefined) {
      throw new ConfigError(
        `${kind} '${entry.name}' is registered twice: by plugin '${existing.plugin}' and by plugin '${entry.plugin}'`,
      );
    }
    table.set(entry.name, entry);
  }

  /** True when `kind` has an entry called `name`. */
  has(kind: Kind, name: string): boolean {
    return this.#store.entries.get(kind)!.has(name);
  }

  /** Entries of one kind, sorted by name. */
  list<K extends Kind>(kind: K): Entry<K>[] {
    return [...this.#store.entries.get(kind)!.values()]
      .sort((a, b) => a.name.localeCompare(b.name)) as Entry<K>[];
  }

  /** The entry, or a ConfigError that lists what is registered and suggests a near name. */
  get<K extends Kind>(kind: K, name: string): Entry<K> {
    const entry = this.#store.entries.get(kind)!.get(name);
    if (entry !== undefined) return entry as Entry<K>;
    throw new ConfigError(this.missingMessage(kind, name));
  }

  /** "no generator named 'x' (did you mean 'y'? registered: ...; plugins loaded: ...)". */
  missingMessage(kind: Kind, name: string): string {
    const names = this.list(kind).map((e) => e.name);
    const plugins = this.plugins.map((p) => `${p.name}@${p.version}`).join(", ") || "none";
    const noun = kind === "steps" ? "step type" : kind.replace(/s$/, "");
    const registered = names.length > 0
      ? `registered: ${names.join(", ")}`
      : `no ${noun}s are registered`;
    return `no ${noun} named '${name}'${
      didYouMean(name, names)
    } (${registered}; plugins loaded: ${plugins})`;
  }

  /**
   * Validates `options` (reporting problems under `where`) and builds the named product:
   *   await registry.create("generators", "stage1-gpt", cfg.generator, ctx, "configs/x.yaml: generator")
   */
  async create<K extends FactoryKind>(
    kind: K,
    name: string,
    options: unknown,
    ctx: RunContext,
    where = `${kind} '${name}' options`,
  ): Promise<Products[K]> {
    const entry = this.get(kind, name) as FactoryEntry<K>;
    const checked = validate(entry.options, options ?? {}, where);
    return await entry.create(checked, ctx);
  }
}

// ---------------------------------------------------------------------------------------------
// Loading plugin modules

/** A task file's `plugins:` item: a module path, or a path with options for a factory. */
export type PluginSpec = string | { path: string; options?: unknown };

/** Config schema of one `plugins:` item. */
export const pluginSpecSchema: Schema<PluginSpec> = s.union(
  s.string({ nonEmpty: true }),
  s.object({ path: s.string({ nonEmpty: true }), options: s.any().optional() }),
).describe("plugin module path (relative to the task file) or { path, options }");

function isPlugin(value: unknown): value is Plugin {
  return typeof value === "object" && value !== null &&
    typeof (value as Plugin).register === "function";
}

/** Plugins a module exports: `default` (a plugin, factory or list), else `plugin`/`plugins`. */
export function pluginsOf(module: Record<string, unknown>): (Plugin | PluginFactory)[] {
  for (const key of ["default", "plugin", "plugins"]) {
    const value = module[key];
    if (value === undefined) continue;
    const list = Array.isArray(value) ? value : [value];
    if (list.every((v) => isPlugin(v) || typeof v === "function")) {
      return list as (Plugin | PluginFactory)[];
    }
  }
  return [];
}

function toImportSpecifier(path: string, baseFile: string): { specifier: string; shown: string } {
  if (/^(npm|jsr|file|https?):/.test(path)) return { specifier: path, shown: path };
  const resolved = resolveBeside(baseFile, path);
  const absolute = resolved.startsWith("/") ? resolved : `${Deno.cwd()}/${resolved}`;
  return { specifier: new URL(`file://${absolute}`).href, shown: resolved };
}

/**
 * Imports each plugin module (paths relative to `baseFile`'s folder) and registers it.
 * Every failure is collected; one ConfigError names them all with `where`.
 */
export async function loadPlugins(
  registry: Registry,
  specs: readonly PluginSpec[],
  baseFile: string,
  where = baseFile,
): Promise<void> {
  const problems: string[] = [];
  for (const [i, spec] of specs.entries()) {
    const path = typeof spec === "string" ? spec : spec.path;
    const options = typeof spec === "string" ? undefined : spec.options;
    const { specifier, shown } = toImportSpecifier(path, baseFile);
    const at = `${where}: plugins[${i}]`;
    let module: Record<string, unknown>;
    try {
      // Dynamic on purpose: plugins are named by task files at run time. The specifier is
      // always a full URL (file:, npm:, jsr:, https:), so it needs no import map once
      // published; `deno publish` still warns that it cannot analyse it.
      module = await import(specifier);
    } catch (e) {
      const message = (e as Error).message.split("\n")[0];
      problems.push(`${at}: cannot import '${path}' (${shown}): ${message}`);
      continue;
    }
    const plugins = pluginsOf(module);
    if (plugins.length === 0) {
      problems.push(
        `${at}: '${path}' exports no plugin (expected a default export { name, version, register } or a factory)`,
      );
      continue;
    }
    for (const plugin of plugins) {
      try {
        await registry.use(plugin, options, shown);
      } catch (e) {
        problems.push(`${at}: ${(e as Error).message}`);
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

// ---------------------------------------------------------------------------------------------
// Loggers

/** Discards everything. */
export const silentLogger: Logger = {
  info() {},
  warn() {},
  debug() {},
  progress() {},
};

/** Keeps every line (progress as "label done/total"); handy in tests. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(m),
    warn: (m) => lines.push(`warning: ${m}`),
    debug: (m) => lines.push(`debug: ${m}`),
    progress: (label, done, total) => lines.push(`${label} ${done}/${total}`),
  };
}

/** Same logger, every line prefixed (e.g. with the step name). */
export function prefixLogger(log: Logger, prefix: string): Logger {
  return {
    info: (m) => log.info(`${prefix}${m}`),
    warn: (m) => log.warn(`${prefix}${m}`),
    debug: (m) => log.debug(`${prefix}${m}`),
    progress: (label, done, total) => log.progress(`${prefix}${label}`, done, total),
  };
}
