/**
 * The Kubernetes launcher: the manifest (an Indexed Job + a merge Job) carries the index
 * and volume wiring; the manifest types reject a wrong field at `deno check`; and the pods'
 * exact commands, run here as N local processes with JOB_COMPLETION_INDEX=0..N-1 (as the
 * Job would start them) plus the merge, give byte-identical outputs to a one-process run.
 */

import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import type { Job } from "kubernetes-types/batch/v1.d.ts";
import { launch } from "../cli/launch.ts";
import { INDEX_ANNOTATION } from "../core/launch/k8s.ts";
import { assertSameStepFiles, REPO, runSingle, STEPS, writeFixture } from "./shard_fixture_test.ts";

const N = 3;

async function manifests(
  root: string,
  task: string,
  step: string,
): Promise<{ shards: Job; merge: Job; text: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await launch([
    "k8s",
    task,
    "--step",
    step,
    "--shards",
    String(N),
    "--outputs",
    `${root}/out`,
    "--mount-path",
    root,
    "--claim",
    "digit-pvc",
    "--image",
    "registry.example/digit-ts:1",
    "--workdir",
    REPO,
    "--deno",
    Deno.execPath(),
    "--retries",
    "1",
    "--gpus",
    "1",
    "--parallelism",
    "2",
  ], {
    stdout: (t) => out.push(t),
    stderr: (t) => err.push(t),
    signal: new AbortController().signal,
  });
  assert.equal(code, 0, err.join(""));
  const file = /wrote (\S+)/.exec(out.join(""))![1];
  assert.ok(file.startsWith(`${root}/out/${step}/launch/`), file);
  const text = await Deno.readTextFile(file);
  const docs = parseAllDocuments(text) as unknown as { toJS(): unknown }[];
  assert.equal(docs.length, 2);
  return { shards: docs[0].toJS() as Job, merge: docs[1].toJS() as Job, text };
}

function run(
  argv: string[],
  env: Record<string, string>,
  cwd: string,
): Promise<Deno.CommandOutput> {
  return new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
}

function text(o: Deno.CommandOutput): string {
  return new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
}

Deno.test("k8s manifests: Indexed Job with index and volume wiring, and a merge Job", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-k8s-" });
  try {
    const task = await writeFixture(root);
    const { shards, merge } = await manifests(root, task, "semantic");
    assert.equal(shards.apiVersion, "batch/v1");
    assert.equal(shards.kind, "Job");
    assert.equal(shards.spec!.completionMode, "Indexed");
    assert.equal(shards.spec!.completions, N);
    assert.equal(shards.spec!.parallelism, 2);
    assert.equal(shards.spec!.backoffLimitPerIndex, 1);
    const pod = shards.spec!.template.spec!;
    assert.equal(pod.restartPolicy, "Never");
    const c = pod.containers[0];
    assert.equal(c.image, "registry.example/digit-ts:1");
    assert.equal(c.workingDir, REPO);
    const index = c.env!.find((e) => e.name === "JOB_COMPLETION_INDEX")!;
    assert.equal(
      index.valueFrom!.fieldRef!.fieldPath,
      `metadata.annotations['${INDEX_ANNOTATION}']`,
    );
    assert.equal(c.env!.find((e) => e.name === "DIGIT_SHARDS")!.value, String(N));
    const args = c.args!;
    assert.deepEqual(args.slice(args.lastIndexOf("run"), args.lastIndexOf("run") + 6), [
      "run",
      task,
      "--step",
      "semantic",
      "--shards",
      String(N),
    ]);
    assert.equal(args[args.indexOf("--outputs") + 1], `${root}/out`);
    assert.deepEqual(pod.volumes, [{
      name: "digit-shared",
      persistentVolumeClaim: { claimName: "digit-pvc" },
    }]);
    assert.deepEqual(c.volumeMounts, [{ name: "digit-shared", mountPath: root }]);
    assert.equal(c.resources!.limits!["nvidia.com/gpu"], "1");
    // The merge: same volume, one pod, waits for the shards' markers, no GPU.
    const m = merge.spec!.template.spec!.containers[0];
    assert.equal(merge.metadata!.name, `${shards.metadata!.name}-merge`);
    assert.equal(merge.spec!.completionMode, undefined);
    assert.ok(m.args!.includes("merge") && m.args!.includes("--wait"), m.args!.join(" "));
    assert.deepEqual(m.volumeMounts, c.volumeMounts);
    assert.equal(m.resources, undefined);
    // A step that cannot be sharded is refused with a usage error.
    const err: string[] = [];
    const code = await launch(["k8s", task, "--step", "nope", "--shards", "2"], {
      stdout: () => {},
      stderr: (t) => err.push(t),
      signal: new AbortController().signal,
    });
    assert.equal(code, 2);
    assert.match(err.join(""), /has no step 'nope'/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("k8s manifest types: a misspelt Job field fails deno check", async () => {
  const dir = await Deno.makeTempDir({ prefix: "digit-k8s-check-" });
  try {
    const good = `import type { Job } from "kubernetes-types/batch/v1.d.ts";
export const ok: Job = { apiVersion: "batch/v1", kind: "Job", spec: { completionMode: "Indexed", completions: 2, template: {} } };
`;
    await Deno.writeTextFile(`${dir}/good.ts`, good);
    await Deno.writeTextFile(
      `${dir}/bad.ts`,
      good.replace("completionMode", "completionMod").replace("ok:", "bad:"),
    );
    const check = (f: string) =>
      run(
        [Deno.execPath(), "check", "--quiet", "--config", `${REPO}/deno.json`, `${dir}/${f}`],
        {},
        REPO,
      );
    const ok = await check("good.ts");
    assert.ok(ok.success, text(ok));
    const bad = await check("bad.ts");
    assert.equal(bad.success, false);
    assert.match(text(bad), /completionMod/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(`k8s: the pods' commands as ${N} local processes with JOB_COMPLETION_INDEX + the merge == one process`, async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-k8s-run-" });
  try {
    const task = await writeFixture(root);
    const single = await runSingle(task, `${root}/single`);
    for (const step of STEPS) {
      const { shards, merge } = await manifests(root, task, step);
      const pod = shards.spec!.template.spec!.containers[0];
      const argv = [...pod.command!, ...pod.args!];
      const envOf = (i: number) => {
        // What the kubelet gives the pod: the annotation's value for the fieldRef, the rest as written.
        const env: Record<string, string> = {};
        for (const e of pod.env!) env[e.name] = e.valueFrom ? String(i) : e.value!;
        return env;
      };
      const mc = merge.spec!.template.spec!.containers[0];
      const mergeEnv = Object.fromEntries(mc.env!.map((e) => [e.name, e.value!]));
      // For one step the merge Job starts with the shards, as `kubectl apply` of both would.
      const early = step === "semantic"
        ? run([...mc.command!, ...mc.args!], mergeEnv, mc.workingDir!)
        : undefined;
      const results = await Promise.all(
        Array.from({ length: N }, (_, i) => run(argv, envOf(i), pod.workingDir!)),
      );
      results.forEach((r, i) => assert.ok(r.success, `${step} index ${i}: ${text(r)}`));
      const merged = early
        ? await early
        : await run([...mc.command!, ...mc.args!], mergeEnv, mc.workingDir!);
      assert.ok(merged.success, `${step} merge: ${text(merged)}`);
      if (early) assert.match(text(merged), /waiting for shards/);
      await assertSameStepFiles(
        single.steps.find((s) => s.name === step)!.dir,
        `${root}/out/${step}`,
      );
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
