import assert from "node:assert/strict";
import { ConfigError, s } from "../core/config.ts";
import type { Generator, SampleOptions, TokenGrid } from "../core/interfaces.ts";
import {
  definePlugin,
  loadPlugins,
  memoryLogger,
  type Plugin,
  Registry,
  type RunContext,
} from "../core/registry.ts";

/** A generator that returns a constant grid: enough to see options arrive. */
class ConstantGenerator implements Generator {
  constructor(readonly name: string, readonly value: number, readonly side: number) {}
  sample(o: SampleOptions): Promise<TokenGrid> {
    const tokens = new Int32Array(o.count * this.side * this.side).fill(this.value);
    return Promise.resolve({ tokens, count: o.count, height: this.side, width: this.side });
  }
}

const constantPlugin = definePlugin({
  name: "fake-constant",
  version: "1.0.0",
  description: "constant-token generator",
  register(r) {
    r.generator({
      name: "constant",
      description: "every token is `value`",
      options: s.object({ value: s.int({ min: 0 }), side: s.int({ min: 1 }).default(2) }),
      create: (o) => new ConstantGenerator("constant", o.value, o.side),
    });
    r.step({ name: "noop", description: "does nothing", run() {} });
  },
});

function ctxFor(registry: Registry): RunContext {
  return {
    registry,
    device: "cpu",
    log: memoryLogger(),
    outputDir: "outputs/test",
    signal: new AbortController().signal,
  };
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    return e.message;
  }
  assert.fail("expected a ConfigError");
}

async function messageOfAsync(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    return e.message;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("a plugin registers entries stamped with its name", async () => {
  const r = new Registry();
  await r.use(constantPlugin);
  assert.deepEqual(r.plugins.map((p) => `${p.name}@${p.version}`), ["fake-constant@1.0.0"]);
  const gen = r.get("generators", "constant");
  assert.equal(gen.plugin, "fake-constant");
  assert.equal(gen.description, "every token is `value`");
  assert.equal(r.get("steps", "noop").plugin, "fake-constant");
  assert.deepEqual(r.list("generators").map((e) => e.name), ["constant"]);
  assert.equal(r.has("decoders", "constant"), false);
});

Deno.test("create validates options, fills defaults and builds the product", async () => {
  const r = new Registry();
  await r.use(constantPlugin);
  const g = await r.create("generators", "constant", { value: 7 }, ctxFor(r));
  const grid = await g.sample({ count: 2, seed: 0 });
  assert.deepEqual([grid.count, grid.height, grid.width], [2, 2, 2]);
  assert.deepEqual([...grid.tokens], [7, 7, 7, 7, 7, 7, 7, 7]);

  const msg = await messageOfAsync(() =>
    r.create(
      "generators",
      "constant",
      { value: -1, sidee: 3 },
      ctxFor(r),
      "configs/sample.yaml: generator",
    )
  );
  assert.equal(
    msg,
    "configs/sample.yaml: generator: value: expected an integer >= 0, got -1\n" +
      "configs/sample.yaml: generator: sidee: unknown key (did you mean 'side'?; allowed: value, side)",
  );
});

Deno.test("two plugins registering one name in one kind is an error naming both", async () => {
  const r = new Registry();
  await r.use(constantPlugin);
  const rival: Plugin = {
    name: "fake-rival",
    version: "0.1.0",
    register(reg) {
      reg.generator({ name: "constant", create: () => new ConstantGenerator("x", 0, 1) });
    },
  };
  const msg = await messageOfAsync(() => r.use(rival));
  assert.equal(
    msg,
    "generators 'constant' is registered twice: by plugin 'fake-constant' and by plugin 'fake-rival'",
  );
  // The same name in another kind is fine.
  const other = new Registry();
  await other.use(constantPlugin);
  await other.use({
    name: "dec",
    version: "1",
    register: (reg) => reg.step({ name: "constant", run() {} }),
  });
  assert.equal(other.get("steps", "constant").plugin, "dec");
});

Deno.test("the same plugin twice is a no-op; another version of it is an error", async () => {
  const r = new Registry();
  await r.use(constantPlugin);
  await r.use(constantPlugin);
  assert.equal(r.list("generators").length, 1);
  const msg = await messageOfAsync(() =>
    r.use({ ...constantPlugin, version: "2.0.0" }, undefined, "x.ts")
  );
  assert.equal(
    msg,
    "plugin 'fake-constant' is loaded twice with different versions: 1.0.0 and 2.0.0 (from x.ts)",
  );
});

Deno.test("factories receive options; malformed plugins and names are refused", async () => {
  const r = new Registry();
  const factory = (o?: { value?: number }) => ({
    name: "fake-factory",
    version: "0.0.1",
    register(reg: Registry) {
      reg.generator({
        name: `v${o?.value ?? 0}`,
        create: () => new ConstantGenerator("f", o?.value ?? 0, 1),
      });
    },
  });
  await r.use(factory, { value: 5 });
  assert.ok(r.has("generators", "v5"));
  assert.match(
    await messageOfAsync(() => r.use({ name: "", version: "1", register() {} })),
    /^plugin: expected an object with a non-empty 'name'$/,
  );
  assert.match(
    await messageOfAsync(() => r.use({ name: "x", register() {} } as unknown as Plugin)),
    /^plugin 'x': expected 'version' \(a string\) and 'register' \(a function\)$/,
  );
  assert.equal(
    messageOf(() => r.step({ name: "bad name", run() {} })),
    `plugin '(app)': steps name "bad name" must be letters, digits, '.', '-' or '_'`,
  );
});

Deno.test("unknown names suggest a near one and list what is loaded", async () => {
  const r = new Registry();
  assert.equal(
    messageOf(() => r.get("decoders", "vqgan")),
    "no decoder named 'vqgan' (no decoders are registered; plugins loaded: none)",
  );
  await r.use(constantPlugin);
  assert.equal(
    messageOf(() => r.get("generators", "constnat")),
    "no generator named 'constnat' (did you mean 'constant'?) (registered: constant; plugins loaded: fake-constant@1.0.0)",
  );
  assert.equal(
    messageOf(() => r.get("steps", "train-stage1")),
    "no step type named 'train-stage1' (registered: noop; plugins loaded: fake-constant@1.0.0)",
  );
});

Deno.test("loadPlugins imports modules relative to the task file and collects every failure", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/tasks`);
    await Deno.mkdir(`${dir}/plugins`);
    const configUrl = new URL("../core/config.ts", import.meta.url).href;
    // A factory plugin that uses the schema DSL through an absolute import.
    await Deno.writeTextFile(
      `${dir}/plugins/scale.ts`,
      `import { s } from ${JSON.stringify(configUrl)};
export default (options = {}) => ({
  name: "fake-scale", version: "0.2.0",
  register(r) {
    r.step({ name: "scale-" + (options.factor ?? 1), params: s.object({ x: s.number() }), run() {} });
  },
});
`,
    );
    await Deno.writeTextFile(
      `${dir}/plugins/pair.js`,
      `export const plugins = [
  { name: "fake-a", version: "1", register(r) { r.step({ name: "a", run() {} }); } },
  { name: "fake-b", version: "1", register(r) { r.step({ name: "b", run() {} }); } },
];
`,
    );
    await Deno.writeTextFile(`${dir}/plugins/empty.js`, "export const nothing = 1;\n");
    const taskFile = `${dir}/tasks/demo.yaml`;

    const r = new Registry();
    await loadPlugins(r, [
      { path: "../plugins/scale.ts", options: { factor: 3 } },
      "../plugins/pair.js",
    ], taskFile);
    assert.deepEqual(r.list("steps").map((e) => `${e.plugin}:${e.name}`), [
      "fake-a:a",
      "fake-b:b",
      "fake-scale:scale-3",
    ]);
    assert.equal(r.plugins.find((p) => p.name === "fake-scale")?.source, `${dir}/plugins/scale.ts`);

    const msg = await messageOfAsync(() =>
      loadPlugins(
        new Registry(),
        ["../plugins/missing.ts", "../plugins/empty.js"],
        taskFile,
        "tasks/demo.yaml",
      )
    );
    const lines = msg.split("\n");
    assert.equal(lines.length, 2);
    assert.match(
      lines[0],
      /^tasks\/demo\.yaml: plugins\[0\]: cannot import '\.\.\/plugins\/missing\.ts' \(.*\/plugins\/missing\.ts\): /,
    );
    assert.equal(
      lines[1],
      "tasks/demo.yaml: plugins[1]: '../plugins/empty.js' exports no plugin (expected a default export { name, version, register } or a factory)",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
