import { expect, it } from "./lib/test.ts";
import { cpuBackend } from "../core/device.ts";
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
    backend: cpuBackend(),
    log: memoryLogger(),
    outputDir: "outputs/test",
    signal: new AbortController().signal,
  };
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e, `expected a ConfigError, got ${e}`).toBeInstanceOf(ConfigError);
    return (e as ConfigError).message;
  }
  expect.unreachable("expected a ConfigError");
}

async function messageOfAsync(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    expect(e, `expected a ConfigError, got ${e}`).toBeInstanceOf(ConfigError);
    return (e as ConfigError).message;
  }
  expect.unreachable("expected a ConfigError");
}

it("a plugin registers entries stamped with its name", async () => {
  const r = new Registry();
  await r.use(constantPlugin);
  expect(r.plugins.map((p) => `${p.name}@${p.version}`)).toEqual(["fake-constant@1.0.0"]);
  const gen = r.get("generators", "constant");
  expect(gen.plugin).toBe("fake-constant");
  expect(gen.description).toBe("every token is `value`");
  expect(r.get("steps", "noop").plugin).toBe("fake-constant");
  expect(r.list("generators").map((e) => e.name)).toEqual(["constant"]);
  expect(r.has("decoders", "constant")).toBe(false);
});

it("create validates options, fills defaults and builds the product", async () => {
  const r = new Registry();
  await r.use(constantPlugin);
  const g = await r.create("generators", "constant", { value: 7 }, ctxFor(r));
  const grid = await g.sample({ count: 2, seed: 0 });
  expect([grid.count, grid.height, grid.width]).toEqual([2, 2, 2]);
  expect([...grid.tokens]).toEqual([7, 7, 7, 7, 7, 7, 7, 7]);

  const msg = await messageOfAsync(() =>
    r.create(
      "generators",
      "constant",
      { value: -1, sidee: 3 },
      ctxFor(r),
      "configs/sample.yaml: generator",
    )
  );
  expect(msg).toBe(
    "configs/sample.yaml: generator: value: expected an integer >= 0, got -1\n" +
      "configs/sample.yaml: generator: sidee: unknown key (did you mean 'side'?; allowed: value, side)",
  );
});

it("two plugins registering one name in one kind is an error naming both", async () => {
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
  expect(msg).toBe(
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
  expect(other.get("steps", "constant").plugin).toBe("dec");
});

it("the same plugin twice is a no-op; another version of it is an error", async () => {
  const r = new Registry();
  await r.use(constantPlugin);
  await r.use(constantPlugin);
  expect(r.list("generators").length).toBe(1);
  const msg = await messageOfAsync(() =>
    r.use({ ...constantPlugin, version: "2.0.0" }, undefined, "x.ts")
  );
  expect(msg).toBe(
    "plugin 'fake-constant' is loaded twice with different versions: 1.0.0 and 2.0.0 (from x.ts)",
  );
});

it("factories receive options; malformed plugins and names are refused", async () => {
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
  expect(r.has("generators", "v5")).toBeTruthy();
  expect(await messageOfAsync(() => r.use({ name: "", version: "1", register() {} }))).toMatch(
    /^plugin: expected an object with a non-empty 'name'$/,
  );
  expect(await messageOfAsync(() => r.use({ name: "x", register() {} } as unknown as Plugin)))
    .toMatch(/^plugin 'x': expected 'version' \(a string\) and 'register' \(a function\)$/);
  expect(messageOf(() => r.step({ name: "bad name", run() {} }))).toBe(
    `plugin '(app)': steps name "bad name" must be letters, digits, '.', '-' or '_'`,
  );
});

it("unknown names suggest a near one and list what is loaded", async () => {
  const r = new Registry();
  expect(messageOf(() => r.get("decoders", "vqgan"))).toBe(
    "no decoder named 'vqgan' (no decoders are registered; plugins loaded: none)",
  );
  await r.use(constantPlugin);
  expect(messageOf(() => r.get("generators", "constnat"))).toBe(
    "no generator named 'constnat' (did you mean 'constant'?) (registered: constant; plugins loaded: fake-constant@1.0.0)",
  );
  expect(messageOf(() => r.get("steps", "train-stage1"))).toBe(
    "no step type named 'train-stage1' (registered: noop; plugins loaded: fake-constant@1.0.0)",
  );
});

it("loadPlugins imports modules relative to the task file and collects every failure", async () => {
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
    expect(r.list("steps").map((e) => `${e.plugin}:${e.name}`)).toEqual([
      "fake-a:a",
      "fake-b:b",
      "fake-scale:scale-3",
    ]);
    expect(r.plugins.find((p) => p.name === "fake-scale")?.source).toBe(`${dir}/plugins/scale.ts`);

    const msg = await messageOfAsync(() =>
      loadPlugins(
        new Registry(),
        ["../plugins/missing.ts", "../plugins/empty.js"],
        taskFile,
        "tasks/demo.yaml",
      )
    );
    const lines = msg.split("\n");
    expect(lines.length).toBe(2);
    expect(lines[0]).toMatch(
      /^tasks\/demo\.yaml: plugins\[0\]: cannot import '\.\.\/plugins\/missing\.ts' \(.*\/plugins\/missing\.ts\): /,
    );
    expect(lines[1]).toBe(
      "tasks/demo.yaml: plugins[1]: '../plugins/empty.js' exports no plugin (expected a default export { name, version, register } or a factory)",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

it("a factory's pipeline slot is kept on its entry (and a plugin may use another)", async () => {
  const parts = definePlugin({
    name: "parts",
    version: "1",
    register(r) {
      r.generator({
        name: "my-stage2",
        slot: "stage2",
        create: () => new ConstantGenerator("my-stage2", 1, 2),
      });
    },
  });
  const r = new Registry();
  await r.use({
    name: "uses-parts",
    version: "1",
    // A plugin that needs another's entries registers it first; the same plugin twice is one.
    register: async (view) => {
      await view.use(parts);
      await view.use(parts);
    },
  });
  await r.use(constantPlugin);
  expect(r.get("generators", "my-stage2").slot).toBe("stage2");
  expect("slot" in r.get("generators", "constant")).toBe(false);
  expect(r.plugins.map((p) => p.name)).toEqual(["uses-parts", "parts", "fake-constant"]);
});
