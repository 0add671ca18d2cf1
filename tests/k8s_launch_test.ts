/**
 * The Kubernetes launcher: the manifest (an Indexed Job + a merge Job) carries the index
 * and volume wiring; the manifest types reject a wrong field at `deno check`; and the pods'
 * exact commands, run here as N local processes with JOB_COMPLETION_INDEX=0..N-1 (as the
 * Job would start them) plus the merge, give byte-identical outputs to a one-process run.
 */

import { expect, it } from "./lib/test.ts";
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
  expect(code, err.join("")).toBe(0);
  const file = /wrote (\S+)/.exec(out.join(""))![1];
  expect(file.startsWith(`${root}/out/${step}/launch/`), file).toBeTruthy();
  const text = await Deno.readTextFile(file);
  const docs = parseAllDocuments(text) as unknown as { toJS(): unknown }[];
  expect(docs.length).toBe(2);
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

it("k8s manifests: Indexed Job with index and volume wiring, and a merge Job", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-k8s-" });
  try {
    const task = await writeFixture(root);
    const { shards, merge } = await manifests(root, task, "semantic");
    expect(shards.apiVersion).toBe("batch/v1");
    expect(shards.kind).toBe("Job");
    expect(shards.spec!.completionMode).toBe("Indexed");
    expect(shards.spec!.completions).toBe(N);
    expect(shards.spec!.parallelism).toBe(2);
    expect(shards.spec!.backoffLimitPerIndex).toBe(1);
    const pod = shards.spec!.template.spec!;
    expect(pod.restartPolicy).toBe("Never");
    const c = pod.containers[0];
    expect(c.image).toBe("registry.example/digit-ts:1");
    expect(c.workingDir).toBe(REPO);
    const index = c.env!.find((e) => e.name === "JOB_COMPLETION_INDEX")!;
    expect(index.valueFrom!.fieldRef!.fieldPath).toBe(
      `metadata.annotations['${INDEX_ANNOTATION}']`,
    );
    expect(c.env!.find((e) => e.name === "DIGIT_SHARDS")!.value).toBe(String(N));
    const args = c.args!;
    expect(args.slice(args.lastIndexOf("run"), args.lastIndexOf("run") + 6)).toEqual([
      "run",
      task,
      "--step",
      "semantic",
      "--shards",
      String(N),
    ]);
    expect(args[args.indexOf("--outputs") + 1]).toBe(`${root}/out`);
    expect(pod.volumes).toEqual([{
      name: "digit-shared",
      persistentVolumeClaim: { claimName: "digit-pvc" },
    }]);
    expect(c.volumeMounts).toEqual([{ name: "digit-shared", mountPath: root }]);
    expect(c.resources!.limits!["nvidia.com/gpu"]).toBe("1");
    // The merge: same volume, one pod, waits for the shards' markers, no GPU.
    const m = merge.spec!.template.spec!.containers[0];
    expect(merge.metadata!.name).toBe(`${shards.metadata!.name}-merge`);
    expect(merge.spec!.completionMode).toBe(undefined);
    expect(m.args!.includes("merge") && m.args!.includes("--wait"), m.args!.join(" ")).toBeTruthy();
    expect(m.volumeMounts).toEqual(c.volumeMounts);
    expect(m.resources).toBe(undefined);
    // A step that cannot be sharded is refused with a usage error.
    const err: string[] = [];
    const code = await launch(["k8s", task, "--step", "nope", "--shards", "2"], {
      stdout: () => {},
      stderr: (t) => err.push(t),
      signal: new AbortController().signal,
    });
    expect(code).toBe(2);
    expect(err.join("")).toMatch(/has no step 'nope'/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

it("k8s manifest types: a misspelt Job field fails deno check", async () => {
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
    expect(ok.success, text(ok)).toBeTruthy();
    const bad = await check("bad.ts");
    expect(bad.success).toBe(false);
    expect(text(bad)).toMatch(/completionMod/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

it(`k8s: the pods' commands as ${N} local processes with JOB_COMPLETION_INDEX + the merge == one process`, async () => {
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
      results.forEach((r, i) => expect(r.success, `${step} index ${i}: ${text(r)}`).toBeTruthy());
      const merged = early
        ? await early
        : await run([...mc.command!, ...mc.args!], mergeEnv, mc.workingDir!);
      expect(merged.success, `${step} merge: ${text(merged)}`).toBeTruthy();
      if (early) expect(text(merged)).toMatch(/waiting for shards/);
      await assertSameStepFiles(
        single.steps.find((s) => s.name === step)!.dir,
        `${root}/out/${step}`,
      );
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
