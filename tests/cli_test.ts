import { expect, it } from "./lib/test.ts";
import { s } from "../core/config.ts";
import { type Plugin, Registry } from "../core/registry.ts";
import { type BuiltinsResult, loadBuiltinPlugins, main } from "../cli/main.ts";
import { previewSaveDir } from "../cli/commands.ts";
import { UsageError } from "../cli/args.ts";
import { encodePng } from "../core/image/png.ts";

/** A 1x1 PNG, what the fake preview model makes. */
const PNG = encodePng({ width: 1, height: 1, data: new Uint8Array([200, 10, 10]) });

/** Fake built-ins: a stage-1 trainer, a sampler, a failing eval, a step that waits for Ctrl-C, a preview. */
function fakeBuiltins(seen: unknown[]): Plugin {
  return {
    name: "fake-builtins",
    version: "0.0.1",
    register(r) {
      r.step({
        name: "train-stage1",
        description: "fake stage-1 trainer",
        params: s.object({
          optimization: s.object({
            lr: s.number({ positive: true }).describe("peak learning rate"),
            max_update: s.int({ min: 1 }).default(10),
          }),
          model: s.object({ decoder_layers: s.int({ min: 1 }) }),
        }),
        outputs: () => ({ checkpoint: "checkpoint_last.json" }),
        async run(p, ctx) {
          seen.push(p);
          ctx.log.progress("update", p.optimization.max_update, p.optimization.max_update);
          await Deno.writeTextFile(ctx.outputs.checkpoint, JSON.stringify(p));
        },
      });
      r.step({
        name: "eval",
        run() {
          throw new Error("boom");
        },
      });
      r.step({
        name: "wait",
        run: (_p, ctx) =>
          new Promise<void>((_ok, fail) => {
            seen.push("waiting");
            ctx.signal.addEventListener("abort", () => fail(new Error("aborted")), { once: true });
          }),
      });
      r.preview({
        name: "fake-preview",
        options: s.object({ classes: s.int({ min: 1 }).default(10) }),
        create: (o) => ({
          name: `fake-preview/${o.classes}`,
          classes: o.classes,
          generate: (request) =>
            Promise.resolve(
              Array.from({ length: request.count }, (_, i) => ({ name: `fake-${i}`, png: PNG })),
            ),
        }),
      });
    },
  };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(
  args: string[],
  options: { seen?: unknown[]; signal?: AbortSignal; note?: string; cwd?: string } = {},
): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const loadBuiltins = async (r: Registry): Promise<BuiltinsResult> => {
    if (options.note) return { note: options.note };
    await r.use(fakeBuiltins(options.seen ?? []));
    return {};
  };
  // Run where no default config (configs/<part>.yaml) exists when the test asks for it.
  const home = Deno.cwd();
  if (options.cwd) Deno.chdir(options.cwd);
  try {
    const code = await main(args, {
      stdout: (t) => (stdout += t),
      stderr: (t) => (stderr += t),
      loadBuiltins,
      signal: options.signal ?? new AbortController().signal,
      tty: false,
    });
    return { code, stdout, stderr };
  } finally {
    Deno.chdir(home);
  }
}

/** True when every error line says that a dataset path of the task does not exist. */
function onlyMissingData(stderr: string): boolean {
  const errors = stderr.split("\n").filter((l) => l.startsWith("error: "));
  return errors.length > 0 &&
    errors.every((l) =>
      /\.params\.(\w+\.)*(root|dir|images|labels|tsv): '.*' does not exist/.test(l)
    );
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

it("help: overall, per command, and a step type's config keys", async () => {
  const top = await cli(["--help"]);
  expect(top.code).toBe(0);
  for (const c of ["train", "sample", "eval", "run", "demo", "serve"]) {
    expect(top.stdout).toMatch(new RegExp(`\\n  ${c} `));
  }
  expect((await cli([])).stdout).toBe(top.stdout);

  const train = await cli(["train", "stage1", "--help"]);
  expect(train.code).toBe(0);
  expect(train.stdout).toMatch(/^Usage: digit train <stage1\|stage2\|vqgan\|tokenizer>/);
  expect(train.stdout).toMatch(
    /Config keys of step type 'train-stage1' \(plugin fake-builtins\): fake stage-1 trainer/,
  );
  expect(train.stdout).toMatch(/ {2}optimization\.lr +a number > 0 — peak learning rate/);
  expect(train.stdout).toMatch(/ {2}optimization\.max_update +an integer >= 1 \(default 10\)/);
  expect((await cli(["train", "--help"])).stdout).toMatch(/Registered: stage1\./);
  expect((await cli(["help", "run"])).stdout).toMatch(/Step types:\n {2}eval/);
  expect((await cli(["serve", "-h"])).stdout).toMatch(/Options of fake-preview:\n {2}classes/);
});

it("usage errors exit with 2 and point at --help", async () => {
  const cases: [string[], string][] = [
    [
      ["fly"],
      "error: unknown command 'fly' (commands: train, sample, eval, run, demo, serve, list, help)\n(see digit --help)\n",
    ],
    [["train", "--colour", "red"], "error: Unknown option '--colour'\n(see digit --help)\n"],
    [
      ["serve", "--force"],
      "error: --force is not an option of 'serve'\n(see digit serve --help)\n",
    ],
    [
      ["train", "stage3"],
      "error: train: expected one of stage1, stage2, vqgan, tokenizer, got 'stage3'\n(see digit train --help)\n",
    ],
    [
      ["train"],
      "error: train: expected one of stage1, stage2, vqgan, tokenizer, got nothing\n(see digit train --help)\n",
    ],
    [["run"], "error: run: expected a task file, got nothing\n(see digit run --help)\n"],
    [
      ["eval", "--device", "gpu"],
      "error: --device: expected one of cpu, webgpu, auto, got 'gpu'\n(see digit eval --help)\n",
    ],
    [["train", "stage1", "--set", "lr"], "error: --set lr: expected key.path=value\n"],
    [
      ["serve", "--port", "http"],
      "error: --port: expected an integer from 0 to 65535, got 'http'\n(see digit serve --help)\n",
    ],
  ];
  const empty = await Deno.makeTempDir();
  for (const [args, expected] of cases) {
    const r = await cli(args, { cwd: empty });
    expect(r.code, args.join(" ")).toBe(2);
    expect(r.stderr, args.join(" ")).toBe(expected);
  }
});

it("train stage1: config file plus --set, then skipped when finished, re-run with --force", async () => {
  await withTemp(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/base.yaml`,
      "model: { decoder_layers: 16 }\noptimization: { lr: 3.0e-4 }\n",
    );
    await Deno.writeTextFile(
      `${dir}/stage1.yaml`,
      "extends: base.yaml\noptimization: { max_update: 5 }\n",
    );
    const seen: unknown[] = [];
    const args = [
      "train",
      "stage1",
      "-c",
      `${dir}/stage1.yaml`,
      "--set",
      "model.decoder_layers=2",
      "-o",
      `${dir}/out`,
    ];
    const first = await cli(args, { seen });
    expect(first.code, first.stderr).toBe(0);
    expect(seen).toEqual([{
      optimization: { lr: 3e-4, max_update: 5 },
      model: { decoder_layers: 2 },
    }]);
    expect(first.stderr).toMatch(/\[1\/1\] train-stage1 \(train-stage1\): new\n/);
    expect(first.stderr).toMatch(/train-stage1: update 5\/5 \(100%\)\n/);
    expect(first.stderr.endsWith(
      `train-stage1: ran 1 step(s), skipped 0 finished; outputs in ${dir}/out\n`,
    )).toBeTruthy();
    const checkpoint = JSON.parse(
      await Deno.readTextFile(`${dir}/out/train-stage1/checkpoint_last.json`),
    );
    expect(checkpoint.model.decoder_layers).toBe(2);

    const again = await cli(args, { seen });
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/finished earlier, skipped/);
    expect(seen.length).toBe(1);
    expect((await cli([...args, "--force"], { seen })).code).toBe(0);
    expect(seen.length).toBe(2);

    const dry = await cli([...args, "--set", "model.decoder_layers=3", "--dry-run"], { seen });
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/1\. train-stage1 \(train-stage1\): changed\n/);
    expect(dry.stdout).toMatch(
      new RegExp(`checkpoint -> ${dir}/out/train-stage1/checkpoint_last\\.json`),
    );
    expect(seen.length).toBe(2);
  });
});

it("config problems exit with 2 and name the file and key", async () => {
  await withTemp(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/s1.yaml`,
      "model: { decoder_layers: 16 }\noptimization: { lr: 1.0e-3 }\n",
    );
    const bad = await cli([
      "train",
      "stage1",
      "-c",
      `${dir}/s1.yaml`,
      "--set",
      "optimization.lr=abc",
      "--set",
      "model.layers=4",
      "-o",
      dir,
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      `error: ${dir}/s1.yaml: optimization.lr: expected a number > 0, got 'abc'\n` +
        `error: ${dir}/s1.yaml: model.layers: unknown key (allowed: decoder_layers)\n`,
    );
    await Deno.writeTextFile(`${dir}/broken.yaml`, "model: [1, 2\n");
    const syntax = await cli(["train", "stage1", "-c", `${dir}/broken.yaml`, "-o", dir]);
    expect(syntax.code).toBe(2);
    expect(syntax.stderr).toMatch(
      new RegExp(`^error: ${dir}/broken\\.yaml:2:1: YAML syntax error: `),
    );
    const noFile = await cli(["train", "stage1", "--set", "optimization.lr=1", "-o", dir], {
      cwd: dir,
    });
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toBe(
      "error: command line: model: missing required key (expected a mapping)\n",
    );
  });
});

it("a missing plugin is a clear config error (2); a failing step is a runtime error (1)", async () => {
  const missing = await cli(["sample"], {
    note: "plugins/mod.ts does not exist, so no built-in plugins are loaded",
  });
  expect(missing.code).toBe(2);
  expect(missing.stderr).toBe(
    "error: sample: no step type named 'sample' (no step types are registered; plugins loaded: none)\n" +
      "note: plugins/mod.ts does not exist, so no built-in plugins are loaded\n",
  );
  await withTemp(async (dir) => {
    const failed = await cli(["eval", "-o", dir]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(
      /error: step 'eval' \(eval\) failed: boom\n\(--verbose shows the stack trace\)\n$/,
    );
    const verbose = await cli(["eval", "-o", dir, "-v"]);
    expect(verbose.stderr).toMatch(/error: step 'eval' \(eval\) failed: boom\nError: boom\n +at /);
  });
});

it("run: a task file with --set, --dry-run, --force-step; Ctrl-C exits with 130", async () => {
  await withTemp(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/task.yaml`,
      `name: t
outputs: ${dir}/out
steps:
  - name: train
    type: train-stage1
    params: { optimization: { lr: 0.1 }, model: { decoder_layers: 1 } }
`,
    );
    const seen: unknown[] = [];
    const dry = await cli([
      "run",
      `${dir}/task.yaml`,
      "--dry-run",
      "--set",
      "steps.train.params.optimization.lr=0.5",
    ], { seen });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toBe(
      `task t (${dir}/task.yaml), device auto, outputs ${dir}/out\n` +
        `  1. train (train-stage1): not run\n` +
        `       params: {"optimization":{"lr":0.5,"max_update":10},"model":{"decoder_layers":1}}\n` +
        `       checkpoint -> ${dir}/out/train/checkpoint_last.json\n`,
    );
    expect((await cli(["run", `${dir}/task.yaml`, "--device", "cpu"], { seen })).code).toBe(0);
    expect((await cli(["run", `${dir}/task.yaml`], { seen })).code).toBe(0);
    expect(seen.length).toBe(1);
    expect((await cli(["run", `${dir}/task.yaml`, "--force-step", "train"], { seen })).code).toBe(
      0,
    );
    expect(seen.length).toBe(2);
    const wrongStep = await cli(["run", `${dir}/task.yaml`, "--force-step", "trian"], { seen });
    expect(wrongStep.code).toBe(2);
    expect(wrongStep.stderr).toMatch(/--force-step trian: no such step \(steps: train\)/);

    await Deno.writeTextFile(
      `${dir}/wait.yaml`,
      `name: w\noutputs: ${dir}/out\nsteps: [{ name: w, type: wait }]\n`,
    );
    const controller = new AbortController();
    const running = cli(["run", `${dir}/wait.yaml`], { seen, signal: controller.signal });
    while (!seen.includes("waiting")) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    const stopped = await running;
    expect(stopped.code).toBe(130);
    expect(stopped.stderr).toMatch(/interrupted during step 'w'\n$/);
  });
});

/** `serve --port 0 ARGS` over the fake builtins, once it says where it listens. */
async function startServe(args: string[]) {
  const controller = new AbortController();
  let stderr = "";
  const serving = main(["serve", "--port", "0", ...args], {
    stdout: () => {},
    stderr: (t) => (stderr += t),
    loadBuiltins: async (r) => {
      await r.use(fakeBuiltins([]));
      return {};
    },
    signal: controller.signal,
    tty: false,
  });
  while (!stderr.includes("preview at")) await new Promise((r) => setTimeout(r, 5));
  const url = /preview at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stderr)![1];
  return { url, serving, controller, stderr };
}

it("serve: loads the registered preview model, answers on loopback, stops on abort", async () => {
  await withTemp(async (dir) => {
    const { url, serving, controller } = await startServe(
      ["--samples", dir, "--set", "classes=7"],
    );
    expect(await (await fetch(`${url}healthz`)).json()).toEqual({
      ok: true,
      model: "fake-preview/7",
      busy: 0,
    });
    controller.abort();
    expect(await serving).toBe(130);
  });
});

it("serve: generated images go to --save-dir (default preview/ beside the samples), never into --samples", async () => {
  expect(previewSaveDir("outputs/samples")).toBe("outputs/preview");
  expect(previewSaveDir("runs/x/preview")).toBe("runs/x/preview-generated");
  expect(previewSaveDir("/data/samples", "/data/mine")).toBe("/data/mine");
  expect(() => previewSaveDir("outputs/samples", "outputs/samples/")).toThrow(UsageError);
  expect(() => previewSaveDir("outputs/samples", "outputs/samples/new")).toThrow(
    /inside the --samples folder/,
  );
  await withTemp(async (dir) => {
    const bad = await cli(["serve", "--samples", `${dir}/s`, "--save-dir", `${dir}/s`]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--save-dir .* is the --samples folder/);

    await Deno.mkdir(`${dir}/samples`);
    await Deno.writeFile(`${dir}/samples/0000.png`, PNG);
    await Deno.writeFile(`${dir}/samples/fake-0.png`, PNG); // a name the model will also use
    const before = [...Deno.readDirSync(`${dir}/samples`)].map((e) => e.name).sort();
    const { url, serving, controller, stderr } = await startServe(["--samples", `${dir}/samples`]);
    expect(stderr).toContain(`new images saved in ${dir}/preview`);
    const res = await fetch(`${url}api/generate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ seed: 1, topK: 0, temperature: 1, steps: 1, count: 2 }),
    });
    const { images } = await res.json();
    // Names are unique over both folders: fake-0 exists among the samples.
    expect(images.map((i: { name: string }) => i.name)).toEqual(["fake-0-2.png", "fake-1.png"]);
    expect([...Deno.readDirSync(`${dir}/preview`)].map((e) => e.name).sort()).toEqual([
      "fake-0-2.png",
      "fake-1.png",
    ]);
    expect([...Deno.readDirSync(`${dir}/samples`)].map((e) => e.name).sort()).toEqual(before);
    const listed = (await (await fetch(`${url}api/samples`)).json()).samples;
    expect(listed.map((i: { name: string }) => i.name).sort()).toEqual([
      "0000.png",
      "fake-0-2.png",
      "fake-0.png",
      "fake-1.png",
    ]);
    expect((await fetch(`${url}samples/fake-1.png`)).status).toBe(200);
    expect((await fetch(`${url}samples/0000.png`)).status).toBe(200);
    await (await fetch(`${url}samples/nope.png`)).body?.cancel();
    controller.abort();
    expect(await serving).toBe(130);
  });
});

it("eval: missing inputs and weights are named before any work, with exit 2", async () => {
  await withTemp(async (dir) => {
    const saved = Deno.env.get("DIGIT_INCEPTION_WEIGHTS");
    Deno.env.delete("DIGIT_INCEPTION_WEIGHTS");
    try {
      const run = async (args: string[]) => {
        let err = "";
        const code = await main(["eval", "--outputs", `${dir}/out`, ...args], {
          stdout: () => {},
          stderr: (t) => (err += t),
          tty: false,
        });
        return { code, err };
      };
      const missing = await run(["--input1", `${dir}/gen`, "--input2", `${dir}/ref.npz`]);
      expect(missing.code).toBe(2);
      expect(missing.err).toContain(`error: eval: generated images '${dir}/gen' do not exist`);
      expect(missing.err).toContain(`error: eval: reference '${dir}/ref.npz' does not exist`);
      expect(missing.err).toMatch(/pt_inception-2015-12-05-6726825d\.pth or weights-inception/);
      expect(missing.err).toMatch(/--set inception_weights=FILE or set \$DIGIT_INCEPTION_WEIGHTS/);

      await Deno.mkdir(`${dir}/gen`);
      await Deno.mkdir(`${dir}/weights`);
      const folder = await run([
        "--input1",
        `${dir}/gen`,
        "--isc",
        "--set",
        `inception_weights=${dir}/weights`,
      ]);
      expect(folder.code).toBe(2);
      expect(folder.err).toMatch(/weights folder '.*\/weights' holds neither pt_inception/);
      const file = await run([
        "--input1",
        `${dir}/gen`,
        "--isc",
        "--set",
        `inception_weights=${dir}/w.pth`,
      ]);
      expect(file.err).toContain(`Inception weights '${dir}/w.pth' do not exist`);
      // Nothing ran: the step folder was never made.
      expect(await Deno.stat(`${dir}/out`).then(() => true, () => false)).toBe(false);
    } finally {
      if (saved !== undefined) Deno.env.set("DIGIT_INCEPTION_WEIGHTS", saved);
    }
  });
});

it("sample and serve: --stage1/--stage2/--vqgan are the parts' params, --set wins", async () => {
  await withTemp(async (dir) => {
    let out = "";
    const code = await main([
      "sample",
      "--stage1",
      "runs/a: b",
      "--stage2",
      "s2.pt",
      "--vqgan",
      "v",
      "--set",
      "vqgan=w",
      "--dry-run",
      "--outputs",
      dir,
    ], { stdout: (t) => (out += t), stderr: (t) => (out += t), tty: false });
    expect({ code, out }).toMatchObject({ code: 0 });
    expect(out).toContain(`"stage1":"runs/a: b","stage2":"s2.pt","vqgan":"w"`);
    const help = await cli(["serve", "--stage2", "x", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(
      /--stage2 PATH\s+stage 2: run folder, checkpoint or DiGIT stage-2 .pt/,
    );
  });
});

it("loadBuiltinPlugins: missing, broken, empty and working modules", async () => {
  await withTemp(async (dir) => {
    const url = (name: string) => new URL(`file://${dir}/${name}`);
    expect(await loadBuiltinPlugins(new Registry(), url("none.ts"))).toEqual({
      note: "plugins/mod.ts does not exist, so no built-in plugins are loaded",
    });
    await Deno.writeTextFile(`${dir}/broken.ts`, "import './nowhere.ts';\n");
    const broken = await loadBuiltinPlugins(new Registry(), url("broken.ts"));
    expect(broken.broken).toBe(true);
    expect(broken.note!).toMatch(
      /^plugins\/mod\.ts failed to load \(.*nowhere\.ts.*\), so no built-in plugins are loaded$/,
    );
    await Deno.writeTextFile(`${dir}/empty.ts`, "export const x = 1;\n");
    expect((await loadBuiltinPlugins(new Registry(), url("empty.ts"))).broken).toBe(true);
    await Deno.writeTextFile(
      `${dir}/ok.ts`,
      `export default [{ name: "p", version: "1", register(r) { r.step({ name: "demo", run() {} }); } }];\n`,
    );
    const r = new Registry();
    expect(await loadBuiltinPlugins(r, url("ok.ts"))).toEqual({});
    expect(r.get("steps", "demo").plugin).toBe("p");
  });
});

it("as a real process: deno task run, and Ctrl-C (SIGINT) gives exit code 130", async () => {
  const root = new URL("..", import.meta.url).pathname;
  await withTemp(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/plugin.ts`,
      `export default { name: "proc-test", version: "1", register(r) {
  r.step({ name: "touch", outputs: () => ({ file: "done.txt" }),
    run: (_p, ctx) => Deno.writeTextFile(ctx.outputs.file, "ok") });
  r.step({ name: "block", run: (_p, ctx) => new Promise((_ok, fail) => {
    Deno.writeTextFileSync("${dir}/started", "1");
    ctx.signal.addEventListener("abort", () => fail(new Error("stopped")));
  }) });
} };
`,
    );
    await Deno.writeTextFile(
      `${dir}/touch.yaml`,
      `name: touch\nplugins: [./plugin.ts]\noutputs: ${dir}/out\nsteps: [{ name: t, type: touch }]\n`,
    );
    const ok = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", "run", `${dir}/touch.yaml`],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const okErr = new TextDecoder().decode(ok.stderr);
    expect(ok.code, okErr).toBe(0);
    expect(okErr).toMatch(/touch: ran 1 step\(s\), skipped 0 finished/);
    expect(await Deno.readTextFile(`${dir}/out/t/done.txt`)).toBe("ok");

    await Deno.writeTextFile(
      `${dir}/block.yaml`,
      `name: block\nplugins: [./plugin.ts]\noutputs: ${dir}/out\nsteps: [{ name: b, type: block }]\n`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cli/main.ts", "run", `${dir}/block.yaml`],
      cwd: root,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const deadline = Date.now() + 60_000;
    while (!(await Deno.stat(`${dir}/started`).then(() => true, () => false))) {
      expect(Date.now(), "the blocking step never started").toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGINT");
    const result = await child.output();
    expect(result.code).toBe(130);
    expect(new TextDecoder().decode(result.stderr)).toMatch(
      /interrupting\.\.\.[^\n]*\ninterrupted during step 'b'\n$/,
    );
  });
});

it("every shipped task file in tasks/ passes validation with the built-in plugins (--dry-run)", async () => {
  const tasks = new URL("../tasks/", import.meta.url).pathname;
  const files = [...Deno.readDirSync(tasks)].filter((e) => e.name.endsWith(".yaml")).map((e) =>
    e.name
  ).sort();
  expect(files.length, `tasks/: ${files.join(", ")}`).toBeGreaterThanOrEqual(5);
  await withTemp(async (dir) => {
    for (const file of files) {
      let stdout = "";
      let stderr = "";
      const code = await main([
        "run",
        `${tasks}${file}`,
        "--dry-run",
        "--outputs",
        `${dir}/${file}`,
      ], {
        stdout: (t) => (stdout += t),
        stderr: (t) => (stderr += t),
        tty: false,
      });
      // A file for data that is not here (ImageNet, your own folder) validates but for the
      // dataset paths it names; nothing else may be wrong with it.
      if (code === 2 && onlyMissingData(stderr)) continue;
      expect(code, `${file}:\n${stderr}`).toBe(0);
      expect(stdout, file).toMatch(/^task \S+ \(/);
    }
  });
});

it("examples/custom-step: its task runs with the built-ins and the report's entropy is consistent", async () => {
  const task = new URL("../examples/custom-step/task.yaml", import.meta.url).pathname;
  await withTemp(async (dir) => {
    let stderr = "";
    const code = await main(["run", task, "--outputs", dir], {
      stdout: () => {},
      stderr: (t) => (stderr += t),
      tty: false,
    });
    expect(code, stderr).toBe(0);
    const report = JSON.parse(await Deno.readTextFile(`${dir}/stats/token-stats.json`));
    expect(report.all.images).toBe(512);
    expect(report.all.tokensPerImage).toBe(64);
    // Closed form: perplexity = 2^entropy, and 0 < entropy <= log2(K) for K = 32 centroids.
    expect(
      report.all.entropyBits > 0 && report.all.entropyBits <= 5 + 1e-9,
      `${report.all.entropyBits}`,
    ).toBeTruthy();
    expect(Math.abs(report.all.perplexity - 2 ** report.all.entropyBits)).toBeLessThan(1e-9);
    expect(Object.keys(report.classes).length).toBe(10);
    const shares = report.all.top.map((t: { share: number }) => t.share);
    expect(shares).toEqual([...shares].sort((a: number, b: number) => b - a));
  });
});

it("eval takes torch-fidelity's flags: --input1/--input2 and --fid/--isc/--prc/--fd become its params; --set wins", async () => {
  let out = "";
  const run = (args: string[]) =>
    main(["eval", ...args, "--dry-run"], {
      stdout: (t) => (out += t),
      stderr: (t) => (out += t),
      tty: false,
    });
  expect(await run(["--input1", "gen", "--input2", "ref.npz", "--fid", "--prc", "--fd", "dinov2"]))
    .toBe(0);
  expect(out).toMatch(
    /"generated":"gen","reference":"ref.npz","metrics":\["fid","prc","fd:dinov2"\]/,
  );
  out = "";
  expect(await run(["--input1", "gen", "--input2", "ref", "--isc", "--set", "metrics=[fid]"])).toBe(
    0,
  );
  expect(out).toMatch(/"metrics":\["fid"\]/);
  out = "";
  expect(await run(["--fid", "--input1"]), "a flag without its value is a usage error").toBe(2);
});
