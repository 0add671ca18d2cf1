/**
 * Hostile config and task files: each is a few bytes on disk and must end, quickly and in
 * little memory, with a ConfigError (CLI exit 2) that names the file, what is wrong and the
 * limit. Also: references and `--set` paths see own keys only, never inherited ones.
 */

import { expect, it } from "./lib/test.ts";
import {
  applyOverrides,
  ConfigError,
  MAX_CONFIG_BYTES,
  MAX_EXTENDS_FILES,
  MAX_YAML_DEPTH,
  parseOverrides,
  readYamlWithExtends,
  s,
  validate,
} from "../core/config.ts";
import { type Plugin, Registry } from "../core/registry.ts";
import { planTask } from "../core/tasks.ts";
import { main } from "../cli/main.ts";

/** 9 strings, then 6 levels of 9 aliases each: 9^7 = 4.8 million strings once expanded. */
const ALIAS_BOMB = [
  "name: bomb",
  'a: &a ["x","x","x","x","x","x","x","x","x"]',
  ..."bcdefg".split("").map((k, i) => {
    const prev = "abcdef"[i];
    return `${k}: &${k} [${Array(9).fill(`*${prev}`).join(",")}]`;
  }),
  "steps: [*g]",
].join("\n");

/** Merge keys (YAML 1.1) copy their source on every use: 3^30 keys from 32 lines. */
const MERGE_BOMB = [
  "%YAML 1.1",
  "---",
  "name: merge",
  "l0: &l0 {a: 1, b: 1}",
  ...Array.from(
    { length: 30 },
    (_, i) => `l${i + 1}: &l${i + 1} {<<: *l${i}, x${i}: {<<: *l${i}}, y${i}: {<<: *l${i}}}`,
  ),
  "steps: [*l30]",
].join("\n");

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "digit-hardening-config-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The CLI's exit code and stderr for `run FILE --dry-run`, and how long it took. */
async function runDry(file: string): Promise<{ code: number; err: string; ms: number }> {
  let err = "";
  const start = performance.now();
  const code = await main(["run", file, "--dry-run"], {
    stdout: () => {},
    stderr: (t) => (err += t),
    loadBuiltins: () => Promise.resolve({}),
    signal: new AbortController().signal,
    tty: false,
  });
  return { code, err, ms: performance.now() - start };
}

async function configError(work: () => Promise<unknown>): Promise<string> {
  try {
    await work();
  } catch (e) {
    expect(e, `expected a ConfigError, got ${e}`).toBeInstanceOf(ConfigError);
    return (e as ConfigError).message;
  }
  expect.unreachable("expected a ConfigError");
}

it("alias bombs, merge bombs, deep and recursive YAML exit 2 naming the file and limit", async () => {
  await withDir(async (dir) => {
    const cases: [string, string, RegExp][] = [
      ["alias.yaml", ALIAS_BOMB, /more than the limit of 100000 values once aliases/],
      ["merge.yaml", MERGE_BOMB, /:5: merge keys \(<<, YAML 1.1\) are not supported/],
      // Deep enough to parse, deeper than the limit.
      [
        "deep.yaml",
        `name: d\nsteps: ${"[".repeat(100)}${"]".repeat(100)}\n`,
        /deeper than the limit of 64 levels/,
      ],
      // Deep enough to exhaust the parser's stack.
      [
        "deeper.yaml",
        `name: d\nsteps: ${"[".repeat(100_000)}${"]".repeat(100_000)}\n`,
        /too deep to parse \(the limit is 64 levels\)/,
      ],
      ["self.yaml", "name: s\nsteps: &a [*a]\n", /contains itself \(recursive alias\)/],
    ];
    for (const [name, text, expected] of cases) {
      const file = `${dir}/${name}`;
      await Deno.writeTextFile(file, text);
      const { code, err, ms } = await runDry(file);
      expect(code, `${name}: ${err}`).toBe(2);
      expect(err.startsWith(`error: ${file}:`), `${name}: names the file: ${err}`).toBeTruthy();
      expect(err, name).toMatch(expected);
      expect(ms, `${name} took ${ms.toFixed(0)} ms`).toBeLessThan(3000);
    }
    expect(MAX_YAML_DEPTH).toBe(64);
  });
});

it("the bombs stay inside a 96 MB heap (a child process with that V8 limit)", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/alias.yaml`, ALIAS_BOMB);
    await Deno.writeTextFile(`${dir}/merge.yaml`, MERGE_BOMB);
    await Deno.writeTextFile(`${dir}/zero.yaml`, "name: z\nextends: /dev/zero\n");
    const script = `${dir}/probe.ts`;
    const configUrl = new URL("../core/config.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { readYamlWithExtends } from "${configUrl}";
for (const f of ["alias", "merge", "zero"]) {
  try { await readYamlWithExtends("${dir}/" + f + ".yaml"); console.log(f, "loaded"); }
  catch (e) { console.log(f, (e as Error).name); }
}`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        new URL("../deno.json", import.meta.url).pathname,
        "--v8-flags=--max-old-space-size=96",
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    expect(out.code, new TextDecoder().decode(out.stderr)).toBe(0);
    expect(text).toBe("alias ConfigError\nmerge ConfigError\nzero ConfigError\n");
  });
});

it("extends: only regular files under the size cap; a FIFO does not hang", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/zero.yaml`, "name: z\nextends: /dev/zero\n");
    const zero = await runDry(`${dir}/zero.yaml`);
    expect(zero.code).toBe(2);
    expect(zero.err).toMatch(/\/dev\/zero: cannot read: file must be a regular file/);

    const big = `${dir}/big.yaml`;
    await Deno.writeTextFile(big, `name: b\n#${"x".repeat(MAX_CONFIG_BYTES)}\n`);
    expect(await configError(() => readYamlWithExtends(big))).toMatch(
      new RegExp(
        `^${big}: cannot read: file is ${
          MAX_CONFIG_BYTES + 10
        } bytes, over the limit of 1048576 bytes$`,
      ),
    );

    const fifo = `${dir}/fifo.yaml`;
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output().catch(() => null);
    if (made?.success) {
      await Deno.writeTextFile(`${dir}/uses-fifo.yaml`, "name: f\nextends: fifo.yaml\n");
      const start = performance.now();
      expect(await configError(() => readYamlWithExtends(`${dir}/uses-fifo.yaml`))).toMatch(
        /fifo\.yaml: cannot read: file must be a regular file; this is not a regular file/,
      );
      expect(performance.now() - start).toBeLessThan(1000);
    }
  });
});

it("extends: a fan-out of lists stops at the file limit", async () => {
  await withDir(async (dir) => {
    const list = `[${Array(10).fill("b.yaml").join(", ")}]`;
    await Deno.writeTextFile(`${dir}/a.yaml`, `extends: ${list}\nname: a\n`);
    await Deno.writeTextFile(`${dir}/b.yaml`, `extends: ${list.replaceAll("b.yaml", "c.yaml")}\n`);
    await Deno.writeTextFile(`${dir}/c.yaml`, "x: 1\n");
    expect(await configError(() => readYamlWithExtends(`${dir}/a.yaml`))).toMatch(
      new RegExp(`^${dir}/a.yaml: extends: more than the limit of ${MAX_EXTENDS_FILES} files`),
    );
  });
});

async function registryWithTokenizer(): Promise<Registry> {
  const plugin: Plugin = {
    name: "fake",
    version: "0.0.1",
    register(r) {
      r.step({
        name: "make",
        outputs: () => ({ tokens: "tokens.bin" }),
        run: () => Promise.resolve(),
      });
      r.step({
        name: "use",
        params: s.object({ input: s.string() }),
        run: () => Promise.resolve(),
      });
    },
  };
  const registry = new Registry();
  await registry.use(plugin);
  return registry;
}

it("references resolve a step's own declared outputs only, never inherited names", async () => {
  const registry = await registryWithTokenizer();
  const plan = (ref: string) =>
    planTask(
      {
        name: "t",
        steps: [
          { name: "tokenizer", type: "make" },
          { name: "gen", type: "use", params: { input: ref } },
        ],
      },
      registry,
      { file: "t.yaml", outputDir: "out" },
    );
  expect(plan("${steps.tokenizer.outputs.tokens}").steps[1].params).toEqual({
    input: "out/tokenizer/tokens.bin",
  });
  for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]) {
    let message = "";
    try {
      plan(`\${steps.tokenizer.outputs.${name}}`);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      message = (e as ConfigError).message;
    }
    expect(message).toBe(
      `t.yaml: steps[1].params.input: \${steps.tokenizer.outputs.${name}}: step 'tokenizer' ` +
        `(type make) has no output '${name}' (outputs: tokens)`,
    );
    expect(message).not.toMatch(/function|native code/);
  }
});

it("--set and schemas see own keys only: no prototype pollution, no inherited keys", () => {
  const out = applyOverrides(
    { a: {} },
    parseOverrides(["__proto__.polluted=1", "a.constructor.prototype.polluted=2", "b.toString=3"]),
  ) as Record<string, Record<string, unknown>>;
  expect(({} as Record<string, unknown>).polluted).toBe(undefined);
  expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
  expect(Object.keys(out.a)).toEqual(["constructor"]);
  expect(out.b.toString).toBe(3);

  const schema = s.object({ lr: s.number().default(1) });
  const bad = () => validate(schema, { constructor: 1, lr: 2 }, "c.yaml");
  expect(bad).toThrow(ConfigError);
  expect(bad).toThrow(/c\.yaml: constructor: unknown key/);
});
