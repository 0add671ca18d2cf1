import assert from "node:assert/strict";
import { s } from "../core/config.ts";
import { type Plugin, Registry } from "../core/registry.ts";
import { type BuiltinsResult, loadBuiltinPlugins, main } from "../cli/main.ts";

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
          generate: () => Promise.resolve([]),
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

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("help: overall, per command, and a step type's config keys", async () => {
  const top = await cli(["--help"]);
  assert.equal(top.code, 0);
  for (const c of ["train", "sample", "eval", "run", "demo", "serve"]) {
    assert.match(top.stdout, new RegExp(`\\n  ${c} `));
  }
  assert.equal((await cli([])).stdout, top.stdout);

  const train = await cli(["train", "stage1", "--help"]);
  assert.equal(train.code, 0);
  assert.match(train.stdout, /^Usage: digit train <stage1\|stage2\|vqgan\|tokenizer>/);
  assert.match(
    train.stdout,
    /Config keys of step type 'train-stage1' \(plugin fake-builtins\): fake stage-1 trainer/,
  );
  assert.match(train.stdout, / {2}optimization\.lr +a number > 0 — peak learning rate/);
  assert.match(train.stdout, / {2}optimization\.max_update +an integer >= 1 \(default 10\)/);
  assert.match((await cli(["train", "--help"])).stdout, /Registered: stage1\./);
  assert.match((await cli(["help", "run"])).stdout, /Step types:\n {2}eval/);
  assert.match((await cli(["serve", "-h"])).stdout, /Options of fake-preview:\n {2}classes/);
});

Deno.test("usage errors exit with 2 and point at --help", async () => {
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
    assert.equal(r.code, 2, args.join(" "));
    assert.equal(r.stderr, expected, args.join(" "));
  }
});

Deno.test("train stage1: config file plus --set, then skipped when finished, re-run with --force", async () => {
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
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(seen, [{
      optimization: { lr: 3e-4, max_update: 5 },
      model: { decoder_layers: 2 },
    }]);
    assert.match(first.stderr, /\[1\/1\] train-stage1 \(train-stage1\): new\n/);
    assert.match(first.stderr, /train-stage1: update 5\/5 \(100%\)\n/);
    assert.ok(
      first.stderr.endsWith(
        `train-stage1: ran 1 step(s), skipped 0 finished; outputs in ${dir}/out\n`,
      ),
    );
    const checkpoint = JSON.parse(
      await Deno.readTextFile(`${dir}/out/train-stage1/checkpoint_last.json`),
    );
    assert.equal(checkpoint.model.decoder_layers, 2);

    const again = await cli(args, { seen });
    assert.equal(again.code, 0);
    assert.match(again.stderr, /finished earlier, skipped/);
    assert.equal(seen.length, 1);
    assert.equal((await cli([...args, "--force"], { seen })).code, 0);
    assert.equal(seen.length, 2);

    const dry = await cli([...args, "--set", "model.decoder_layers=3", "--dry-run"], { seen });
    assert.equal(dry.code, 0);
    assert.match(dry.stdout, /1\. train-stage1 \(train-stage1\): changed\n/);
    assert.match(
      dry.stdout,
      new RegExp(`checkpoint -> ${dir}/out/train-stage1/checkpoint_last\\.json`),
    );
    assert.equal(seen.length, 2);
  });
});

Deno.test("config problems exit with 2 and name the file and key", async () => {
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
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr,
      `error: ${dir}/s1.yaml: optimization.lr: expected a number > 0, got 'abc'\n` +
        `error: ${dir}/s1.yaml: model.layers: unknown key (allowed: decoder_layers)\n`,
    );
    await Deno.writeTextFile(`${dir}/broken.yaml`, "model: [1, 2\n");
    const syntax = await cli(["train", "stage1", "-c", `${dir}/broken.yaml`, "-o", dir]);
    assert.equal(syntax.code, 2);
    assert.match(
      syntax.stderr,
      new RegExp(`^error: ${dir}/broken\\.yaml:2:1: YAML syntax error: `),
    );
    const noFile = await cli(["train", "stage1", "--set", "optimization.lr=1", "-o", dir], {
      cwd: dir,
    });
    assert.equal(noFile.code, 2);
    assert.equal(
      noFile.stderr,
      "error: command line: model: missing required key (expected a mapping)\n",
    );
  });
});

Deno.test("a missing plugin is a clear config error (2); a failing step is a runtime error (1)", async () => {
  const missing = await cli(["sample"], {
    note: "plugins/mod.ts does not exist, so no built-in plugins are loaded",
  });
  assert.equal(missing.code, 2);
  assert.equal(
    missing.stderr,
    "error: sample: no step type named 'sample' (no step types are registered; plugins loaded: none)\n" +
      "note: plugins/mod.ts does not exist, so no built-in plugins are loaded\n",
  );
  await withTemp(async (dir) => {
    const failed = await cli(["eval", "-o", dir]);
    assert.equal(failed.code, 1);
    assert.match(
      failed.stderr,
      /error: step 'eval' \(eval\) failed: boom\n\(--verbose shows the stack trace\)\n$/,
    );
    const verbose = await cli(["eval", "-o", dir, "-v"]);
    assert.match(verbose.stderr, /error: step 'eval' \(eval\) failed: boom\nError: boom\n +at /);
  });
});

Deno.test("run: a task file with --set, --dry-run, --force-step; Ctrl-C exits with 130", async () => {
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
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(
      dry.stdout,
      `task t (${dir}/task.yaml), device auto, outputs ${dir}/out\n` +
        `  1. train (train-stage1): not run\n` +
        `       params: {"optimization":{"lr":0.5,"max_update":10},"model":{"decoder_layers":1}}\n` +
        `       checkpoint -> ${dir}/out/train/checkpoint_last.json\n`,
    );
    assert.equal((await cli(["run", `${dir}/task.yaml`, "--device", "cpu"], { seen })).code, 0);
    assert.equal((await cli(["run", `${dir}/task.yaml`], { seen })).code, 0);
    assert.equal(seen.length, 1);
    assert.equal(
      (await cli(["run", `${dir}/task.yaml`, "--force-step", "train"], { seen })).code,
      0,
    );
    assert.equal(seen.length, 2);
    const wrongStep = await cli(["run", `${dir}/task.yaml`, "--force-step", "trian"], { seen });
    assert.equal(wrongStep.code, 2);
    assert.match(wrongStep.stderr, /--force-step trian: no such step \(steps: train\)/);

    await Deno.writeTextFile(
      `${dir}/wait.yaml`,
      `name: w\noutputs: ${dir}/out\nsteps: [{ name: w, type: wait }]\n`,
    );
    const controller = new AbortController();
    const running = cli(["run", `${dir}/wait.yaml`], { seen, signal: controller.signal });
    while (!seen.includes("waiting")) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    const stopped = await running;
    assert.equal(stopped.code, 130);
    assert.match(stopped.stderr, /interrupted during step 'w'\n$/);
  });
});

Deno.test("serve: loads the registered preview model, answers on loopback, stops on abort", async () => {
  await withTemp(async (dir) => {
    const controller = new AbortController();
    let stderr = "";
    const serving = main(["serve", "--port", "0", "--samples", dir, "--set", "classes=7"], {
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
    assert.deepEqual(await (await fetch(`${url}healthz`)).json(), {
      ok: true,
      model: "fake-preview/7",
      busy: 0,
    });
    controller.abort();
    assert.equal(await serving, 130);
  });
});

Deno.test("loadBuiltinPlugins: missing, broken, empty and working modules", async () => {
  await withTemp(async (dir) => {
    const url = (name: string) => new URL(`file://${dir}/${name}`);
    assert.deepEqual(await loadBuiltinPlugins(new Registry(), url("none.ts")), {
      note: "plugins/mod.ts does not exist, so no built-in plugins are loaded",
    });
    await Deno.writeTextFile(`${dir}/broken.ts`, "import './nowhere.ts';\n");
    const broken = await loadBuiltinPlugins(new Registry(), url("broken.ts"));
    assert.equal(broken.broken, true);
    assert.match(
      broken.note!,
      /^plugins\/mod\.ts failed to load \(.*nowhere\.ts.*\), so no built-in plugins are loaded$/,
    );
    await Deno.writeTextFile(`${dir}/empty.ts`, "export const x = 1;\n");
    assert.equal((await loadBuiltinPlugins(new Registry(), url("empty.ts"))).broken, true);
    await Deno.writeTextFile(
      `${dir}/ok.ts`,
      `export default [{ name: "p", version: "1", register(r) { r.step({ name: "demo", run() {} }); } }];\n`,
    );
    const r = new Registry();
    assert.deepEqual(await loadBuiltinPlugins(r, url("ok.ts")), {});
    assert.equal(r.get("steps", "demo").plugin, "p");
  });
});

Deno.test("as a real process: deno task run, and Ctrl-C (SIGINT) gives exit code 130", async () => {
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
    assert.equal(ok.code, 0, okErr);
    assert.match(okErr, /touch: ran 1 step\(s\), skipped 0 finished/);
    assert.equal(await Deno.readTextFile(`${dir}/out/t/done.txt`), "ok");

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
      assert.ok(Date.now() < deadline, "the blocking step never started");
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGINT");
    const result = await child.output();
    assert.equal(result.code, 130);
    assert.match(
      new TextDecoder().decode(result.stderr),
      /interrupting\.\.\.[^\n]*\ninterrupted during step 'b'\n$/,
    );
  });
});

Deno.test("every shipped task file in tasks/ passes validation with the built-in plugins (--dry-run)", async () => {
  const tasks = new URL("../tasks/", import.meta.url).pathname;
  const files = [...Deno.readDirSync(tasks)].filter((e) => e.name.endsWith(".yaml")).map((e) =>
    e.name
  ).sort();
  assert.ok(files.length >= 5, `tasks/: ${files.join(", ")}`);
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
      assert.equal(code, 0, `${file}:\n${stderr}`);
      assert.match(stdout, /^task \S+ \(/, file);
    }
  });
});

Deno.test("examples/custom-step: its task runs with the built-ins and the report's entropy is consistent", async () => {
  const task = new URL("../examples/custom-step/task.yaml", import.meta.url).pathname;
  await withTemp(async (dir) => {
    let stderr = "";
    const code = await main(["run", task, "--outputs", dir], {
      stdout: () => {},
      stderr: (t) => (stderr += t),
      tty: false,
    });
    assert.equal(code, 0, stderr);
    const report = JSON.parse(await Deno.readTextFile(`${dir}/stats/token-stats.json`));
    assert.equal(report.all.images, 512);
    assert.equal(report.all.tokensPerImage, 64);
    // Closed form: perplexity = 2^entropy, and 0 < entropy <= log2(K) for K = 32 centroids.
    assert.ok(
      report.all.entropyBits > 0 && report.all.entropyBits <= 5 + 1e-9,
      `${report.all.entropyBits}`,
    );
    assert.ok(Math.abs(report.all.perplexity - 2 ** report.all.entropyBits) < 1e-9);
    assert.equal(Object.keys(report.classes).length, 10);
    const shares = report.all.top.map((t: { share: number }) => t.share);
    assert.deepEqual(shares, [...shares].sort((a: number, b: number) => b - a));
  });
});

Deno.test("eval takes torch-fidelity's flags: --input1/--input2 and --fid/--isc/--prc/--fd become its params; --set wins", async () => {
  let out = "";
  const run = (args: string[]) =>
    main(["eval", ...args, "--dry-run"], {
      stdout: (t) => (out += t),
      stderr: (t) => (out += t),
      tty: false,
    });
  assert.equal(
    await run(["--input1", "gen", "--input2", "ref.npz", "--fid", "--prc", "--fd", "dinov2"]),
    0,
  );
  assert.match(
    out,
    /"generated":"gen","reference":"ref.npz","metrics":\["fid","prc","fd:dinov2"\]/,
  );
  out = "";
  assert.equal(
    await run(["--input1", "gen", "--input2", "ref", "--isc", "--set", "metrics=[fid]"]),
    0,
  );
  assert.match(out, /"metrics":\["fid"\]/);
  out = "";
  assert.equal(await run(["--fid", "--input1"]), 2, "a flag without its value is a usage error");
});
