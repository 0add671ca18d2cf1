import { expect, it } from "./lib/test.ts";
import {
  applyOverrides,
  check,
  ConfigError,
  formatPath,
  type Infer,
  parseOverrides,
  parseYaml,
  readConfig,
  readYamlWithExtends,
  s,
  schemaHelp,
  validate,
} from "../core/config.ts";

/** The problem lines a failing validate() reports. */
function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
  expect.unreachable("expected a ConfigError");
}

async function problemsOfAsync(fn: () => Promise<unknown>): Promise<string[]> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
  expect.unreachable("expected a ConfigError");
}

// A cut-down stage-1 config (digit.md §2.4 key names).
const stage1 = s.object({
  common: s.object({ fp16: s.bool().default(false), log_interval: s.int({ min: 1 }).default(100) })
    .default({
      fp16: false,
      log_interval: 100,
    }),
  task: s.object({
    input_size: s.int({ min: 1 }).default(256),
    target_vocab_size: s.int({ min: 2 }),
    augmentation: s.enum(["randcrop", "centercrop"]).default("randcrop"),
  }),
  optimization: s.object({
    max_update: s.int({ min: 1 }),
    lr: s.number({ positive: true }).describe("peak learning rate"),
    clip_norm: s.number({ min: 0 }).optional(),
  }),
  optimizer: s.object({
    _name: s.enum(["adam", "sgd_hydra"]),
    adam_betas: s.array(s.number({ min: 0, max: 1 }), { minLength: 2, maxLength: 2 }).default([
      0.9,
      0.98,
    ]),
    weight_decay: s.number({ min: 0 }).default(0),
  }),
  model: s.object({
    decoder_layers: s.int({ min: 1 }),
    class_conditional: s.bool().optional(),
  }),
});

const goodStage1 = {
  task: { target_vocab_size: 8192 },
  optimization: { max_update: 125000, lr: 3e-4, clip_norm: 1.0 },
  optimizer: { _name: "adam", weight_decay: 0.01 },
  model: { decoder_layers: 16 },
};

it("validate fills defaults and keeps optional keys absent", () => {
  const cfg = validate(stage1, goodStage1, "configs/stage1.yaml");
  expect(cfg).toEqual({
    common: { fp16: false, log_interval: 100 },
    task: { input_size: 256, target_vocab_size: 8192, augmentation: "randcrop" },
    optimization: { max_update: 125000, lr: 3e-4, clip_norm: 1 },
    optimizer: { _name: "adam", adam_betas: [0.9, 0.98], weight_decay: 0.01 },
    model: { decoder_layers: 16 },
  });
  expect("class_conditional" in cfg.model).toBe(false);
  // The inferred type has the right shape (a compile-time check as much as a runtime one).
  const lr: number = cfg.optimization.lr;
  const clip: number | undefined = cfg.optimization.clip_norm;
  expect(lr + (clip ?? 0)).toBe(1.0003);
});

it("validate reports every problem with file, dotted path and expectation", () => {
  const bad = {
    task: { target_vocab_size: 8192.5, augmentation: "randcorp" },
    optimization: { lr: "abc", max_update: 0, lrr: 1 },
    optimizer: { _name: "adam", adam_betas: [0.9, 2] },
    model: {},
  };
  expect(problemsOf(() => validate(stage1, bad, "configs/stage1.yaml"))).toEqual([
    "configs/stage1.yaml: task.target_vocab_size: expected an integer >= 2, got 8192.5",
    "configs/stage1.yaml: task.augmentation: expected one of 'randcrop', 'centercrop', got 'randcorp' (did you mean 'randcrop'?)",
    "configs/stage1.yaml: optimization.max_update: expected an integer >= 1, got 0",
    "configs/stage1.yaml: optimization.lr: expected a number > 0, got 'abc'",
    "configs/stage1.yaml: optimization.lrr: unknown key (did you mean 'lr'?; allowed: max_update, lr, clip_norm)",
    "configs/stage1.yaml: optimizer.adam_betas[1]: expected a number between 0 and 1, got 2",
    "configs/stage1.yaml: model.decoder_layers: missing required key (expected an integer >= 1)",
  ]);
});

it("null counts as absent for optional and defaulted keys, but not for required ones", () => {
  const schema = s.object({ a: s.int().optional(), b: s.int().default(3), c: s.int() });
  expect(check(schema, { a: null, b: null, c: 1 }).value).toEqual({ b: 3, c: 1 });
  expect(problemsOf(() => validate(schema, { c: null }, "x.yaml"))).toEqual([
    "x.yaml: c: expected an integer, got null (an empty value)",
  ]);
});

it("root-level and container problems are worded by kind", () => {
  expect(problemsOf(() => validate(s.object({ a: s.int() }), [1, 2], "f.yaml"))).toEqual([
    "f.yaml: expected a mapping, got a list",
  ]);
  expect(problemsOf(() => validate(s.array(s.string(), { maxLength: 1 }), ["a", 3], "f.yaml")))
    .toEqual([
      "f.yaml: expected a list of at most 1 item (each a string), got 2 items",
      "f.yaml: [1]: expected a string, got 3",
    ]);
  expect(problemsOf(() => validate(s.record(s.number()), [], "f"))).toEqual([
    "f: expected a mapping (each value a number), got a list",
  ]);
  expect(problemsOf(() => validate(s.record(s.number()), { x: 1, y: true }, "f"))).toEqual([
    "f: y: expected a number, got true",
  ]);
  expect(problemsOf(() => validate(s.bool(), "yes", "f"))).toEqual([
    "f: expected true or false, got 'yes'",
  ]);
  expect(problemsOf(() => validate(s.number(), Infinity, "f"))).toEqual([
    "f: expected a number, got Infinity",
  ]);
});

it("string patterns, open objects and unions", () => {
  const name = s.string({ pattern: /[a-z]+/, patternName: "a lowercase word" });
  expect(problemsOf(() => validate(name, "ab1", "f"))).toEqual([
    "f: expected a lowercase word, got 'ab1'",
  ]);
  expect(validate(name, "abc", "f")).toBe("abc");
  const open = s.object({ a: s.int() }, { open: true });
  expect(validate(open, { a: 1, extra: "kept" }, "f")).toEqual({ a: 1, extra: "kept" });
  const u = s.union(s.string(), s.object({ path: s.string() }));
  expect(validate(u, { path: "p" }, "f")).toEqual({ path: "p" });
  expect(problemsOf(() => validate(u, 5, "f"))).toEqual([
    "f: expected a string or a mapping, got 5",
  ]);
});

it("default() rejects a default that does not match its own schema", () => {
  expect(() => s.int({ min: 1 }).default(0)).toThrow(/schema default 0 is not an integer >= 1/);
});

it("schemaHelp lists leaf keys with types, defaults and descriptions", () => {
  type Cfg = Infer<typeof stage1>;
  const lines = schemaHelp(stage1);
  const w = "model.class_conditional".length; // the longest keys (23 characters) set the column
  expect(lines.includes(`${"optimization.lr".padEnd(w)}  a number > 0 — peak learning rate`))
    .toBeTruthy();
  expect(lines.includes(`${"task.input_size".padEnd(w)}  an integer >= 1 (default 256)`))
    .toBeTruthy();
  expect(lines.includes(`${"model.class_conditional".padEnd(w)}  true or false (optional)`))
    .toBeTruthy();
  expect(lines.includes(
    `${
      "optimizer.adam_betas".padEnd(w)
    }  a list of 2 items (each a number between 0 and 1) (default [0.9,0.98])`,
  )).toBeTruthy();
  expect(lines.length).toBe(13);
  const unused: Partial<Cfg> = {};
  expect(unused).toEqual({});
});

it("formatPath joins keys with dots and indexes with brackets", () => {
  expect(formatPath(["steps", 2, "params", "lr"])).toBe("steps[2].params.lr");
  expect(formatPath([0, "a"])).toBe("[0].a");
  expect(formatPath([])).toBe("");
});

it("YAML syntax errors name file:line:col", () => {
  expect(problemsOf(() => parseYaml("a: 1\nb: 2\na: 3\n", "configs/x.yaml"))).toEqual([
    "configs/x.yaml:3:1: YAML syntax error: Map keys must be unique",
  ]);
  const lines = problemsOf(() => parseYaml("a:\n  b: [1, 2\nc: 3\n", "t.yaml"));
  expect(lines.length).toBe(1);
  expect(lines[0]).toMatch(/^t\.yaml:3:1: YAML syntax error: /);
  expect(parseYaml("", "empty.yaml")).toEqual({});
});

it("parseOverrides reads values as YAML scalars", () => {
  const o = parseOverrides([
    "optimization.lr=3e-4",
    "common.fp16=true",
    "model.name=stlm",
    "task.list=[1, 2]",
    "a.b[1].c=null",
    "empty=",
    "quoted='5'",
  ]);
  expect(o.map((x) => [x.path, x.value])).toEqual([
    [["optimization", "lr"], 0.0003],
    [["common", "fp16"], true],
    [["model", "name"], "stlm"],
    [["task", "list"], [1, 2]],
    [["a", "b", "1", "c"], null],
    [["empty"], ""],
    [["quoted"], "5"],
  ]);
  expect(problemsOf(() => parseOverrides(["lr"]))).toEqual(["--set lr: expected key.path=value"]);
  expect(problemsOf(() => parseOverrides(["=3"]))).toEqual(["--set =3: expected key.path=value"]);
});

it("applyOverrides creates mappings, indexes lists by number or name, leaves the input alone", () => {
  const doc = {
    a: { b: 1 },
    steps: [{ name: "tok", params: {} }, { name: "train", params: { lr: 1 } }],
  };
  const out = applyOverrides(
    doc,
    parseOverrides([
      "a.b=2",
      "x.y.z=hi",
      "steps.train.params.lr=0.5",
      "steps.0.params.k=64",
    ]),
  );
  expect(out).toEqual({
    a: { b: 2 },
    x: { y: { z: "hi" } },
    steps: [{ name: "tok", params: { k: 64 } }, { name: "train", params: { lr: 0.5 } }],
  });
  expect(doc.a.b).toBe(1);
  expect(problemsOf(() => applyOverrides(doc, parseOverrides(["a.b.c=1"])))).toEqual([
    "--set a.b.c=1: a.b is 1, not a mapping or list",
  ]);
  expect(problemsOf(() => applyOverrides(doc, parseOverrides(["steps.trian.params.lr=1"]))))
    .toEqual([
      "--set steps.trian.params.lr=1: steps has no item 'trian' (names: tok, train)",
    ]);
});

it("readConfig: extends, overrides, then validation naming the top file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/base`);
    await Deno.writeTextFile(
      `${dir}/base/common.yaml`,
      "task: { target_vocab_size: 8192 }\noptimizer: { _name: adam, weight_decay: 0.01 }\nmodel: { decoder_layers: 16 }\n",
    );
    await Deno.writeTextFile(
      `${dir}/stage1.yaml`,
      "extends: base/common.yaml\noptimization: { max_update: 10, lr: 1.0e-3 }\nmodel: { class_conditional: true }\n",
    );
    const cfg = await readConfig(`${dir}/stage1.yaml`, stage1, {
      overrides: parseOverrides(["optimization.lr=2e-4", "model.decoder_layers=2"]),
    });
    expect(cfg.optimization.lr).toBe(2e-4);
    expect(cfg.model).toEqual({ decoder_layers: 2, class_conditional: true });
    expect(cfg.optimizer.weight_decay).toBe(0.01);

    const lines = await problemsOfAsync(() =>
      readConfig(`${dir}/stage1.yaml`, stage1, {
        overrides: parseOverrides(["optimization.lr=abc"]),
      })
    );
    expect(lines).toEqual([
      `${dir}/stage1.yaml: optimization.lr: expected a number > 0, got 'abc'`,
    ]);

    await Deno.writeTextFile(`${dir}/a.yaml`, "extends: b.yaml\n");
    await Deno.writeTextFile(`${dir}/b.yaml`, "extends: [a.yaml]\n");
    const cycle = await problemsOfAsync(() => readYamlWithExtends(`${dir}/a.yaml`));
    expect(cycle).toEqual([
      `${dir}/a.yaml: extends: cycle ${dir}/a.yaml -> ${dir}/b.yaml -> ${dir}/a.yaml`,
    ]);

    const missing = await problemsOfAsync(() => readConfig(`${dir}/nope.yaml`, stage1));
    expect(missing).toEqual([`${dir}/nope.yaml: cannot read: file not found`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
