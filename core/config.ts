/**
 * Schemas, YAML configs and `--set` overrides.
 *
 * One small schema DSL serves plugin options, task-step params, training configs and the
 * preview server's request bodies. A schema checks a plain value (as YAML or JSON gives it),
 * fills in defaults, and reports *every* problem with its dotted key path:
 *
 *   configs/stage1.yaml: optimization.lr: expected a number, got 'abc'
 *   configs/stage1.yaml: optimization.lrr: unknown key (did you mean 'lr'? allowed: lr, max_update)
 *   configs/stage1.yaml: model.decoder_layers: missing required key (expected an integer >= 1)
 *
 * Usage:
 *   const schema = s.object({ lr: s.number({ min: 0 }).default(3e-4).describe("peak LR") });
 *   type Cfg = Infer<typeof schema>;                       // { lr: number }
 *   const cfg = await readConfig("configs/x.yaml", schema, { overrides: parseOverrides(["lr=1e-4"]) });
 */

// A full npm: specifier, not deno.json's "yaml": Deno applies an import map only to the
// project that declares it, and mod.ts must import from outside this repository. The version
// is deno.json's (tests/outside_import_test.ts).
// deno-lint-ignore no-import-prefix
import * as yaml from "npm:yaml@2.8.1";
const { isAlias, isCollection, isPair, isScalar, parse: parseYamlValue, parseDocument } = yaml;
type Document = yaml.Document;
import { IoFormatError } from "./io/errors.ts";
import { readRegularFileSync } from "./io/regular_file.ts";

// ---------------------------------------------------------------------------------------------
// Errors and paths

/** A configuration, usage or validation problem: the CLI exits with code 2 on these. */
export class ConfigError extends Error {
  /** One line per problem, each already prefixed with its file and key path. */
  readonly problems: readonly string[];
  /** One problem, or several (shown one per line). */
  constructor(problems: string | readonly string[]) {
    const list = typeof problems === "string" ? [problems] : problems;
    super(list.join("\n"));
    this.name = "ConfigError";
    this.problems = list;
  }
}

/** One step of a key path: a mapping key or a list index. */
export type PathSegment = string | number;
/** Where a value sits in a config, e.g. `["steps", 1, "params"]`. */
export type KeyPath = readonly PathSegment[];

/** A problem found while checking a value, before it is given a file name. */
export interface Problem {
  /** Where the problem is. */
  path: KeyPath;
  /** What is wrong. */
  message: string;
}

/** `["steps", 1, "params", "lr"]` → `steps[1].params.lr`. */
export function formatPath(path: KeyPath): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? seg : `.${seg}`;
  }
  return out;
}

/** `where: path: message`, leaving out whatever is empty. */
export function formatProblem(where: string, problem: Problem): string {
  const path = formatPath(problem.path);
  return [where, path, problem.message].filter((part) => part !== "").join(": ");
}

/** How a value looks in a message: strings quoted, lists and mappings by kind. */
export function describeValue(value: unknown): string {
  if (value === null) return "null (an empty value)";
  if (typeof value === "string") {
    const short = value.length > 40 ? value.slice(0, 37) + "..." : value;
    return `'${short}'`;
  }
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "function") return "a function"; // never its source text
  return String(value);
}

// ---------------------------------------------------------------------------------------------
// The schema DSL

/** What sort of value a schema checks (the `s.*` builder that made it). */
export type SchemaKind =
  | "number"
  | "int"
  | "string"
  | "bool"
  | "enum"
  | "array"
  | "object"
  | "record"
  | "union"
  | "any";

type Checker<T> = (value: unknown, path: KeyPath, problems: Problem[]) => T;

/** Schema details that help text and `check` read. */
export interface SchemaInfo {
  /** Shown in help text. */
  description?: string;
  /** A missing (or null) value is fine and stays undefined. */
  optional?: boolean;
  /** A missing (or null) value is replaced by a copy of `defaultValue`. */
  hasDefault?: boolean;
  /** The default, when hasDefault. */
  defaultValue?: unknown;
  /** Child schemas, for help text: object keys, record values, array items. */
  shape?: Readonly<Record<string, Schema<unknown>>>;
  /** The item schema of an array. */
  item?: Schema<unknown>;
}

/** A checker for one kind of value. Build them with `s.*`; they are immutable. */
export class Schema<T> {
  /** Schemas are built with `s.*`; `checker` does the kind-specific check of a present value. */
  constructor(
    /** What sort of value this schema checks. */
    readonly kind: SchemaKind,
    /** What is expected, as it reads after "expected": "a number >= 0". */
    readonly expected: string,
    private readonly checker: Checker<T>,
    /** Description, optionality, default and child schemas. */
    readonly info: Readonly<SchemaInfo> = {},
  ) {}

  /** The description given with `describe`. */
  get description(): string | undefined {
    return this.info.description;
  }

  /** True when the key may be left out (optional or defaulted). */
  get omittable(): boolean {
    return this.info.optional === true || this.info.hasDefault === true;
  }

  /** Checks `value`, pushing problems; returns the value with defaults filled in. */
  check(value: unknown, path: KeyPath = [], problems: Problem[] = []): T {
    if (value === undefined || (value === null && this.omittable)) {
      if (this.info.hasDefault) return structuredClone(this.info.defaultValue) as T;
      if (this.info.optional) return undefined as T;
      problems.push({ path, message: `missing required key (expected ${this.expected})` });
      return undefined as T;
    }
    return this.checker(value, path, problems);
  }

  /** A copy with `description` for help text. */
  describe(description: string): Schema<T> {
    return new Schema(this.kind, this.expected, this.checker, { ...this.info, description });
  }

  /** A copy that accepts a missing (or null) value as undefined. */
  optional(): Schema<T | undefined> {
    return new Schema<T | undefined>(this.kind, this.expected, this.checker, {
      ...this.info,
      optional: true,
    });
  }

  /** A copy that replaces a missing (or null) value with a copy of `value` (which must pass). */
  default(value: T): Schema<T> {
    const problems: Problem[] = [];
    this.checker(value, [], problems);
    if (problems.length > 0) {
      throw new Error(`schema default ${JSON.stringify(value)} is not ${this.expected}`);
    }
    return new Schema(this.kind, this.expected, this.checker, {
      ...this.info,
      hasDefault: true,
      defaultValue: structuredClone(value),
    });
  }
}

/** The value type a schema checks, e.g. `Infer<typeof mySchema>`. */
export type Infer<S> = S extends Schema<infer T> ? T : never;
type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = {
  [K in keyof S]: undefined extends Infer<S[K]> ? K : never;
}[keyof S];
// deno-lint-ignore ban-types
type Simplify<T> = { [K in keyof T]: T[K] } & {};
export type InferObject<S extends Shape> = Simplify<
  & { [K in Exclude<keyof S, OptionalKeys<S>>]: Infer<S[K]> }
  & { [K in OptionalKeys<S>]?: Infer<S[K]> }
>;

interface Described {
  description?: string;
}
interface NumberOptions extends Described {
  min?: number;
  max?: number;
  /** Strictly greater than zero. */
  positive?: boolean;
}
interface StringOptions extends Described {
  /** The whole string must match. */
  pattern?: RegExp;
  /** Shown instead of the pattern in messages, e.g. "a step name (letters, digits, - and _)". */
  patternName?: string;
  nonEmpty?: boolean;
}
interface ArrayOptions extends Described {
  minLength?: number;
  maxLength?: number;
}
interface ObjectOptions extends Described {
  /** Accept (and keep) keys not in the shape instead of reporting them. */
  open?: boolean;
}

function withInfo<T>(schema: Schema<T>, description?: string): Schema<T> {
  return description === undefined ? schema : schema.describe(description);
}

function rangeText(noun: string, o: NumberOptions): string {
  const lo = o.min;
  if (o.positive && o.max !== undefined) return `${noun} > 0 and <= ${o.max}`;
  if (o.positive) return `${noun} > 0`;
  if (lo !== undefined && o.max !== undefined) return `${noun} between ${lo} and ${o.max}`;
  if (lo !== undefined) return `${noun} >= ${lo}`;
  if (o.max !== undefined) return `${noun} <= ${o.max}`;
  return noun;
}

function numberSchema(kind: "number" | "int", o: NumberOptions): Schema<number> {
  const noun = kind === "int" ? "an integer" : "a number";
  const expected = rangeText(noun, o);
  return withInfo(
    new Schema<number>(kind, expected, (value, path, problems) => {
      const ok = typeof value === "number" && Number.isFinite(value) &&
        (kind === "number" || Number.isInteger(value)) &&
        (o.min === undefined || value >= o.min) && (o.max === undefined || value <= o.max) &&
        (!o.positive || value > 0);
      if (!ok) {
        problems.push({ path, message: `expected ${expected}, got ${describeValue(value)}` });
      }
      return value as number;
    }),
    o.description,
  );
}

function enumSchema<const V extends string>(values: readonly V[], o: Described = {}): Schema<V> {
  const expected = `one of ${values.map((v) => `'${v}'`).join(", ")}`;
  return withInfo(
    new Schema<V>("enum", expected, (value, path, problems) => {
      if (typeof value !== "string" || !values.includes(value as V)) {
        const hint = typeof value === "string" ? didYouMean(value, values) : "";
        problems.push({
          path,
          message: `expected ${expected}, got ${describeValue(value)}${hint}`,
        });
      }
      return value as V;
    }),
    o.description,
  );
}

/**
 * Sets an own property, even one named `__proto__`, which a plain assignment would turn into
 * a prototype change.
 */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/** `target[key]` when `key` is its own property; inherited names (`constructor`) read as absent. */
export function getOwn(target: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(target, key) ? target[key] : undefined;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function objectSchema<S extends Shape>(shape: S, o: ObjectOptions = {}): Schema<InferObject<S>> {
  const keys = Object.keys(shape);
  const expected = keys.length === 0 && !o.open ? "an empty mapping" : "a mapping";
  return new Schema<InferObject<S>>("object", expected, (value, path, problems) => {
    if (!isMapping(value)) {
      problems.push({ path, message: `expected ${expected}, got ${describeValue(value)}` });
      return value as InferObject<S>;
    }
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      const checked = shape[key].check(getOwn(value, key), [...path, key], problems);
      if (checked !== undefined) setOwn(out, key, checked);
    }
    for (const key of Object.keys(value)) {
      if (Object.hasOwn(shape, key)) continue;
      if (o.open) {
        setOwn(out, key, value[key]);
        continue;
      }
      const allowed = keys.length > 0
        ? ` allowed: ${keys.join(", ")}`
        : " no keys are allowed here";
      const hint = didYouMean(key, keys).replace(/^ \((.*)\)$/, "$1");
      const detail = hint ? `${hint};${allowed}` : allowed.trim();
      problems.push({ path: [...path, key], message: `unknown key (${detail})` });
    }
    return out as InferObject<S>;
  }, { description: o.description, shape });
}

function arraySchema<T>(item: Schema<T>, o: ArrayOptions = {}): Schema<T[]> {
  const { minLength: lo, maxLength: hi } = o;
  const items = (n: number) => `${n} item${n === 1 ? "" : "s"}`;
  let expected = "a list";
  if (lo !== undefined && lo === hi) expected += ` of ${items(lo)}`;
  else if (lo !== undefined && hi !== undefined) expected += ` of ${lo} to ${items(hi)}`;
  else if (lo !== undefined) expected += ` of at least ${items(lo)}`;
  else if (hi !== undefined) expected += ` of at most ${items(hi)}`;
  if (item.kind !== "any") expected += ` (each ${item.expected})`;
  return new Schema<T[]>("array", expected, (value, path, problems) => {
    if (!Array.isArray(value)) {
      problems.push({ path, message: `expected ${expected}, got ${describeValue(value)}` });
      return value as T[];
    }
    if (
      (o.minLength !== undefined && value.length < o.minLength) ||
      (o.maxLength !== undefined && value.length > o.maxLength)
    ) {
      problems.push({ path, message: `expected ${expected}, got ${value.length} items` });
    }
    return value.map((v, i) => item.check(v, [...path, i], problems));
  }, { description: o.description, item: item as Schema<unknown> });
}

function recordSchema<T>(item: Schema<T>, o: Described = {}): Schema<Record<string, T>> {
  const expected = item.kind === "any" ? "a mapping" : `a mapping (each value ${item.expected})`;
  return new Schema("record", expected, (value, path, problems) => {
    if (!isMapping(value)) {
      problems.push({ path, message: `expected ${expected}, got ${describeValue(value)}` });
      return value as Record<string, T>;
    }
    const out: Record<string, T> = {};
    for (const [k, v] of Object.entries(value)) {
      setOwn(out, k, item.check(v, [...path, k], problems));
    }
    return out;
  }, { description: o.description, item: item as Schema<unknown> });
}

/** The first alternative that checks without problems wins; else one combined message. */
function unionSchema<A extends Schema<unknown>[]>(...alternatives: A): Schema<Infer<A[number]>> {
  const expected = alternatives.map((a) => a.expected).join(" or ");
  return new Schema("union", expected, (value, path, problems) => {
    for (const alt of alternatives) {
      const local: Problem[] = [];
      const out = alt.check(value, path, local);
      if (local.length === 0) return out as Infer<A[number]>;
    }
    problems.push({ path, message: `expected ${expected}, got ${describeValue(value)}` });
    return value as Infer<A[number]>;
  });
}

/** The schema constructors. */
export const s = {
  number: (o: NumberOptions = {}): Schema<number> => numberSchema("number", o),
  int: (o: NumberOptions = {}): Schema<number> => numberSchema("int", o),
  string: (o: StringOptions = {}): Schema<string> => {
    const expected = o.patternName ?? (o.nonEmpty ? "a non-empty string" : "a string");
    return withInfo(
      new Schema<string>("string", expected, (value, path, problems) => {
        const ok = typeof value === "string" && (!o.nonEmpty || value !== "") &&
          (o.pattern === undefined || new RegExp(`^(?:${o.pattern.source})$`).test(value));
        if (!ok) {
          problems.push({ path, message: `expected ${expected}, got ${describeValue(value)}` });
        }
        return value as string;
      }),
      o.description,
    );
  },
  bool: (o: Described = {}): Schema<boolean> =>
    withInfo(
      new Schema<boolean>("bool", "true or false", (value, path, problems) => {
        if (typeof value !== "boolean") {
          problems.push({ path, message: `expected true or false, got ${describeValue(value)}` });
        }
        return value as boolean;
      }),
      o.description,
    ),
  enum: enumSchema,
  array: arraySchema,
  object: objectSchema,
  record: recordSchema,
  union: unionSchema,
  /** Anything at all (checked later by someone else, e.g. a step's own params). */
  any: (o: Described = {}): Schema<unknown> =>
    new Schema<unknown>("any", "any value", (value) => value, { description: o.description }),
};

/** Checks without throwing: the value (defaults filled) and the problems found. */
export function check<T>(
  schema: Schema<T>,
  value: unknown,
  basePath: KeyPath = [],
): { value: T; problems: Problem[] } {
  const problems: Problem[] = [];
  const out = schema.check(value, basePath, problems);
  return { value: out, problems };
}

/**
 * Checks `value` against `schema` and returns it with defaults filled in, or throws one
 * ConfigError listing every problem as `where: key.path: message`.
 */
export function validate<T>(
  schema: Schema<T>,
  value: unknown,
  where: string,
  basePath: KeyPath = [],
): T {
  const result = check(schema, value, basePath);
  if (result.problems.length > 0) {
    throw new ConfigError(result.problems.map((p) => formatProblem(where, p)));
  }
  return result.value;
}

/** Help text: one line per leaf key with its type, default and description, keys aligned. */
export function schemaHelp(schema: Schema<unknown>): string[] {
  const rows: [string, string][] = [];
  const walk = (node: Schema<unknown>, key: string) => {
    const shape = node.info.shape;
    if (node.kind === "object" && shape !== undefined && Object.keys(shape).length > 0) {
      for (const [k, child] of Object.entries(shape)) walk(child, key === "" ? k : `${key}.${k}`);
      return;
    }
    if (key === "") return;
    let text = node.expected;
    if (node.info.hasDefault) text += ` (default ${JSON.stringify(node.info.defaultValue)})`;
    else if (node.info.optional) text += " (optional)";
    if (node.description) text += ` — ${node.description}`;
    rows.push([key, text]);
  };
  walk(schema, "");
  const width = Math.min(40, Math.max(0, ...rows.map(([k]) => k.length)));
  return rows.map(([key, text]) => `${key.padEnd(width)}  ${text}`);
}

// ---------------------------------------------------------------------------------------------
// Suggestions

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length];
}

/** ` (did you mean 'x'?)` for the closest candidate within a few edits, else "". */
export function didYouMean(word: string, candidates: readonly string[]): string {
  let best = "";
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  const limit = Math.max(1, Math.floor(Math.max(word.length, best.length) / 3));
  return bestDistance <= limit ? ` (did you mean '${best}'?)` : "";
}

// ---------------------------------------------------------------------------------------------
// YAML files, `extends:` and `--set` overrides

/** A config or task file larger than this is refused before it is read. */
export const MAX_CONFIG_BYTES = 1 << 20;
/** Deepest nesting of mappings and lists a config may have (real ones stay under 10). */
export const MAX_YAML_DEPTH = 64;
/** Most values a config may hold once aliases are expanded (the copies made later are this big). */
export const MAX_YAML_VALUES = 100_000;
/** Alias uses allowed by the `yaml` package's own check (billion-laughs guard). */
export const MAX_YAML_ALIASES = 1000;

/** Most files one config may pull in through `extends:` (a fan-out of lists grows exponentially). */
export const MAX_EXTENDS_FILES = 64;

/**
 * Refuses values whose later deep walks (merge, clone, validation, references) would run out
 * of stack or memory: nesting deeper than MAX_YAML_DEPTH, a value that contains itself (a
 * recursive alias), or more than MAX_YAML_VALUES values with aliases expanded. Iterative, so
 * the check cannot itself overflow.
 */
export function checkYamlValue(value: unknown, where: string): void {
  const onPath = new Set<object>();
  const stack: { value: unknown; path: PathSegment[]; leave?: boolean }[] = [{ value, path: [] }];
  let count = 0;
  const at = (path: PathSegment[]) => {
    const shown = formatPath(path.slice(0, 8)) + (path.length > 8 ? "..." : "");
    return shown === "" ? "" : ` (at ${shown})`;
  };
  while (stack.length > 0) {
    const frame = stack.pop()!;
    const v = frame.value;
    if (typeof v !== "object" || v === null) {
      count++;
      continue;
    }
    if (frame.leave) {
      onPath.delete(v);
      continue;
    }
    if (onPath.has(v)) {
      throw new ConfigError(`${where}: a value contains itself (recursive alias)${at(frame.path)}`);
    }
    if (frame.path.length > MAX_YAML_DEPTH) {
      throw new ConfigError(
        `${where}: nesting deeper than the limit of ${MAX_YAML_DEPTH} levels${at(frame.path)}`,
      );
    }
    if (++count > MAX_YAML_VALUES) {
      throw new ConfigError(
        `${where}: more than the limit of ${MAX_YAML_VALUES} values once aliases are expanded`,
      );
    }
    onPath.add(v);
    stack.push({ value: v, path: frame.path, leave: true });
    const entries = Array.isArray(v) ? v.entries() : Object.entries(v);
    for (const [k, child] of entries) stack.push({ value: child, path: [...frame.path, k] });
  }
}

/** A YAML syntax node's children in document order (pairs give key, then value). */
function yamlChildren(node: unknown): unknown[] {
  if (isCollection(node)) return node.items;
  if (isPair(node)) return [node.key, node.value];
  return [];
}

/** `<<` as a merge key: the `yaml` package makes it a Symbol under `%YAML 1.1`. */
function isMergeKey(key: unknown): boolean {
  if (!isScalar(key)) return false;
  const v = key.value;
  return typeof v === "symbol" ? v.description === "<<" : false;
}

/**
 * The same limits as checkYamlValue, on the syntax tree, before `toJS` builds anything, and no
 * merge keys (`<<: *a`, on under `%YAML 1.1`): the `yaml` package copies their source on every
 * use, outside its alias count and in superlinear time (3000 merges of 3 keys took 24 s), so
 * ten lines can take exponential time. Sizes count aliases expanded; each node is measured
 * once, so this is linear in the file.
 */
function checkYamlTree(doc: Document, text: string, file: string): void {
  // Pass 1, document order: an alias means the last node anchored with its name before it.
  const target = new Map<unknown, unknown>();
  const anchors = new Map<string, unknown>();
  const order: unknown[] = [doc.contents];
  while (order.length > 0) {
    const node = order.pop();
    if (node === null || typeof node !== "object") continue;
    if (isPair(node) && isMergeKey(node.key)) {
      const at = isScalar(node.key) ? node.key.range?.[0] : undefined;
      const line = at === undefined ? "" : `:${text.slice(0, at).split("\n").length}`;
      throw new ConfigError(
        `${file}${line}: merge keys (<<, YAML 1.1) are not supported: the \`yaml\` package ` +
          "re-copies their source on every use, so a few lines can take minutes; write the keys out",
      );
    }
    if (isAlias(node)) target.set(node, anchors.get(node.source));
    else if ("anchor" in node && typeof node.anchor === "string") anchors.set(node.anchor, node);
    order.push(...[...yamlChildren(node)].reverse()); // a copy: items belong to the document
  }
  // Pass 2, children before parents: expanded size and depth of every node.
  const measured = new Map<unknown, { size: number; depth: number }>();
  const open = new Set<unknown>();
  const stack: { node: unknown; entered: boolean }[] = [{ node: doc.contents, entered: false }];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    const node = frame.node;
    if (node === null || typeof node !== "object" || measured.has(node)) {
      stack.pop();
      continue;
    }
    const children = isAlias(node) ? [target.get(node)] : yamlChildren(node);
    if (!frame.entered) {
      frame.entered = true;
      open.add(node);
      for (const child of children) {
        if (open.has(child)) {
          throw new ConfigError(`${file}: a value contains itself (recursive alias)`);
        }
        if (child !== null && typeof child === "object") {
          stack.push({ node: child, entered: false });
        }
      }
      continue;
    }
    let size = isAlias(node) || isPair(node) ? 0 : 1;
    let depth = 0;
    for (const child of children) {
      const m = measured.get(child);
      if (m === undefined) continue;
      size += m.size;
      depth = Math.max(depth, m.depth);
    }
    if (isCollection(node)) depth++;
    if (depth > MAX_YAML_DEPTH) {
      throw new ConfigError(`${file}: nesting deeper than the limit of ${MAX_YAML_DEPTH} levels`);
    }
    if (size > MAX_YAML_VALUES) {
      throw new ConfigError(
        `${file}: more than the limit of ${MAX_YAML_VALUES} values once aliases are expanded`,
      );
    }
    measured.set(node, { size, depth });
    open.delete(node);
    stack.pop();
  }
}

/**
 * A copy in which no two places share an object. toJS gives every use of a YAML alias the
 * same object, so a `--set` on one step's `dataset` would silently change every step that
 * reuses that anchor; each use must be its own value, as if written out.
 */
function unshared(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unshared);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) setOwn(out, k, unshared(v));
    return out;
  }
  return value;
}

/**
 * Parses YAML text; syntax errors become `file:line:col: message` lines in a ConfigError, and
 * so do alias bombs (the `yaml` package's maxAliasCount), nesting beyond MAX_YAML_DEPTH and
 * nesting so deep that the parser itself runs out of stack.
 */
export function parseYaml(text: string, file: string): unknown {
  let value: unknown;
  try {
    const doc = parseDocument(text, { prettyErrors: true });
    if (doc.errors.length > 0) {
      throw new ConfigError(doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const where = pos ? `${file}:${pos.line}:${pos.col}` : file;
        const message = e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
        return `${where}: YAML syntax error: ${message}`;
      }));
    }
    checkYamlTree(doc, text, file);
    value = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES }) ?? {};
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    // The parser and toJS recurse per nesting level: a few thousand brackets exhaust the stack.
    if (e instanceof RangeError) {
      throw new ConfigError(
        `${file}: YAML nesting too deep to parse (the limit is ${MAX_YAML_DEPTH} levels)`,
      );
    }
    if (e instanceof ReferenceError && /alias/i.test(e.message)) {
      throw new ConfigError(
        `${file}: YAML aliases expand too much (limit ${MAX_YAML_ALIASES} alias uses)`,
      );
    }
    throw new ConfigError(`${file}: cannot parse YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  checkYamlValue(value, file);
  return unshared(value);
}

/**
 * The text of a config file. Only a regular file of at most MAX_CONFIG_BYTES is read: a FIFO
 * would block forever and /dev/zero never ends.
 */
function readConfigText(file: string): string {
  let bytes: Uint8Array;
  try {
    bytes = readRegularFileSync(file, "file", MAX_CONFIG_BYTES);
  } catch (e) {
    if (e instanceof IoFormatError) throw new ConfigError(`${file}: cannot read: ${e.detail}`);
    const reason = e instanceof Deno.errors.NotFound ? "file not found" : (e as Error).message;
    throw new ConfigError(`${file}: cannot read: ${reason}`);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ConfigError(`${file}: cannot read: not UTF-8 text`);
  }
}

/** Reads and parses one YAML file (no `extends:` handling). */
export function readYaml(file: string): Promise<unknown> {
  return Promise.resolve().then(() => parseYaml(readConfigText(file), file));
}

/** Mappings merge key by key; anything else (lists included) is replaced by the override. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (!isMapping(base) || !isMapping(over)) return structuredClone(over);
  const out: Record<string, unknown> = structuredClone(base);
  for (const [k, v] of Object.entries(over)) {
    setOwn(out, k, Object.hasOwn(out, k) ? deepMerge(out[k], v) : structuredClone(v));
  }
  return out;
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

/** `b` relative to the folder of file `a`, unless `b` is absolute. */
export function resolveBeside(file: string, relative: string): string {
  if (relative.startsWith("/")) return relative;
  const parts = `${dirname(file)}/${relative}`.split("/");
  const out: string[] = [];
  for (const part of parts) {
    if (part === "." || part === "") continue;
    if (part === ".." && out.length > 0 && out[out.length - 1] !== "..") out.pop();
    else out.push(part);
  }
  const joined = out.join("/");
  return file.startsWith("/") ? `/${joined}` : joined === "" ? "." : joined;
}

/**
 * Reads a YAML file and resolves `extends: base.yaml` (or a list, applied in order; paths
 * relative to the file). The file's own keys are merged over its bases. At most
 * MAX_EXTENDS_FILES files are read in all.
 */
export function readYamlWithExtends(file: string, chain: string[] = []): Promise<unknown> {
  return Promise.resolve().then(() => readWithExtends(file, chain, { files: 0 }));
}

function readWithExtends(file: string, chain: string[], budget: { files: number }): unknown {
  if (chain.includes(file)) {
    throw new ConfigError(`${chain[0]}: extends: cycle ${[...chain, file].join(" -> ")}`);
  }
  if (++budget.files > MAX_EXTENDS_FILES) {
    throw new ConfigError(
      `${chain[0]}: extends: more than the limit of ${MAX_EXTENDS_FILES} files (at ${file})`,
    );
  }
  const doc = parseYaml(readConfigText(file), file);
  if (!isMapping(doc) || doc.extends === undefined) return doc;
  const bases = typeof doc.extends === "string" ? [doc.extends] : doc.extends;
  if (!Array.isArray(bases) || bases.some((b) => typeof b !== "string")) {
    throw new ConfigError(
      `${file}: extends: expected a file path or a list of paths, got ${
        describeValue(doc.extends)
      }`,
    );
  }
  let merged: unknown = {};
  for (const base of bases as string[]) {
    merged = deepMerge(
      merged,
      readWithExtends(resolveBeside(file, base), [...chain, file], budget),
    );
  }
  const own = { ...doc };
  delete own.extends;
  const out = deepMerge(merged, own);
  checkYamlValue(out, file);
  return out;
}

/** One `--set key.path=value`. */
export interface Override {
  /** Keys from the root to the value. */
  path: string[];
  /** The value to set. */
  value: unknown;
  /** The flag as typed, for messages. */
  text: string;
}

/** Parses `a.b[0].c=value` flags; the value is read as a YAML scalar (or flow list). */
export function parseOverrides(flags: readonly string[]): Override[] {
  return flags.map((text) => {
    const eq = text.indexOf("=");
    const key = eq < 0 ? "" : text.slice(0, eq).trim();
    const path = key.replace(/\[(\d+)\]/g, ".$1").split(".").filter((p) => p !== "");
    if (eq < 0 || path.length === 0) {
      throw new ConfigError(`--set ${text}: expected key.path=value`);
    }
    const raw = text.slice(eq + 1);
    let value: unknown = raw;
    if (raw.trim() !== "") {
      try {
        value = parseYamlValue(raw, { maxAliasCount: MAX_YAML_ALIASES });
      } catch {
        value = raw; // not YAML (or a bomb): taken as the plain string typed
      }
      checkYamlValue(value, `--set ${text}`);
    }
    return { path, value, text };
  });
}

/**
 * Applies overrides to a copy of `doc`. Missing mappings are created. Inside a list, a key is
 * an index or the `name` of an element (`steps.train.params.lr=1e-4`).
 */
export function applyOverrides(doc: unknown, overrides: readonly Override[]): unknown {
  let root: unknown = structuredClone(doc ?? {});
  if (!isMapping(root)) root = {};
  for (const o of overrides) {
    let node: unknown = root;
    for (let i = 0; i < o.path.length; i++) {
      const seg = o.path[i];
      const last = i === o.path.length - 1;
      const here = o.path.slice(0, i).join(".") || "(top level)";
      if (Array.isArray(node)) {
        const index = /^\d+$/.test(seg)
          ? Number(seg)
          : node.findIndex((el) => isMapping(el) && el.name === seg);
        if (index < 0 || index > node.length || (!last && index === node.length)) {
          const names = node.filter(isMapping).map((el) => el.name).filter((n) =>
            typeof n === "string"
          );
          const known = names.length > 0
            ? ` (names: ${names.join(", ")})`
            : ` (${node.length} items)`;
          throw new ConfigError(`--set ${o.text}: ${here} has no item '${seg}'${known}`);
        }
        if (last) node[index] = o.value;
        else {
          if (node[index] === undefined || node[index] === null) node[index] = {};
          node = node[index];
        }
      } else if (isMapping(node)) {
        // Own keys only: `--set a.constructor.x=1` must not reach Object or its prototype.
        if (last) setOwn(node, seg, o.value);
        else {
          const child = getOwn(node, seg);
          if (child === undefined || child === null) setOwn(node, seg, {});
          node = node[seg];
        }
      } else {
        throw new ConfigError(
          `--set ${o.text}: ${here} is ${describeValue(node)}, not a mapping or list`,
        );
      }
      if (!last && !isMapping(node) && !Array.isArray(node)) {
        const at = o.path.slice(0, i + 1).join(".");
        throw new ConfigError(
          `--set ${o.text}: ${at} is ${describeValue(node)}, not a mapping or list`,
        );
      }
    }
  }
  return root;
}

/** Options of `readConfig`. */
export interface ReadConfigOptions {
  /** `--set` overrides applied after `extends:` is resolved, before validation. */
  overrides?: readonly Override[];
}

/** Reads a YAML config (with `extends:`), applies overrides, validates. Throws ConfigError. */
export async function readConfig<T>(
  file: string,
  schema: Schema<T>,
  options: ReadConfigOptions = {},
): Promise<T> {
  const doc = applyOverrides(await readYamlWithExtends(file), options.overrides ?? []);
  return validate(schema, doc, file);
}
