/**
 * Dataset specs are checked while a task is planned: a misspelt kind gets a did-you-mean,
 * a missing path is named, paths that steps write are left alone, and the CLI exits 2.
 */

import { expect, it } from "./lib/test.ts";
import { main } from "../cli/main.ts";
import { ConfigError, s } from "../core/config.ts";
import { openDataset } from "../core/data/mod.ts";
import { Registry } from "../core/registry.ts";
import { DATASET_KINDS } from "../core/task_datasets.ts";
import { planTask, type TaskSpec } from "../core/tasks.ts";

const plugin = {
  name: "datasets-test",
  version: "1",
  register(r: Registry) {
    r.step({
      name: "read",
      params: s.object({ dataset: s.any(), held_out: s.any().optional() }),
      outputs: () => ({ images: "images" }),
      run() {},
    });
  },
};

async function plan(steps: TaskSpec["steps"]): Promise<string[]> {
  const registry = new Registry();
  await registry.use(plugin);
  try {
    planTask({ name: "t", steps }, registry, { file: "t.yaml", outputDir: "out/t" });
    return [];
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return [...e.problems];
  }
}

it("task datasets: a misspelt kind gets a did-you-mean, missing paths are named", async () => {
  expect(await plan([{ name: "a", type: "read", params: { dataset: { kind: "shaeps" } } }]))
    .toEqual([
      "t.yaml: steps[0].params.dataset.kind: unknown dataset kind 'shaeps' (did you mean 'shapes'?) " +
      "(kinds: shapes, imagefolder, fashion-mnist, idx, cifar10, list)",
    ]);
  const dir = await Deno.makeTempDir();
  try {
    const folder = (root: string) => ({ kind: "imagefolder", root });
    // Exists, or written by a step of the task (its outputs, or under the output folder): fine.
    expect(
      await plan([
        { name: "a", type: "read", params: { dataset: folder(dir) } },
        { name: "b", type: "read", params: { dataset: folder("out/t/a/images") } },
        { name: "c", type: "read", params: { dataset: folder("./out/t/elsewhere") } },
        { name: "d", type: "read", params: { dataset: { kind: "shapes", size: 8 } } },
      ]),
    ).toEqual([]);
    const missing = `${dir}/nope`;
    expect(
      await plan([
        { name: "a", type: "read", params: { dataset: folder(missing), held_out: folder(dir) } },
        { name: "b", type: "read", params: { dataset: { source: folder(missing) } } },
        { name: "c", type: "read", params: { dataset: { kind: "idx", images: dir } } },
      ]),
    ).toEqual([
      `t.yaml: steps[0].params.dataset.root: '${missing}' does not exist (and in 1 more place)`,
      "t.yaml: steps[2].params.dataset: dataset kind 'idx' needs 'labels' (a path)",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

it("task datasets: the kinds are core/data's, and `deno task run` exits 2 before running", async () => {
  const err = await openDataset({ kind: "nope" } as never).then(() => "", (e) => e.message);
  const listed = /\(([^)]*)\)$/.exec(err)![1].split(", ");
  expect(listed).toEqual(Object.keys(DATASET_KINDS));

  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/plugin.ts`,
      `import { s } from "${new URL("../core/config.ts", import.meta.url).href}";
export default { name: "p", version: "1", register(r) {
  r.step({ name: "read", params: s.object({ dataset: s.any() }),
    run: () => { throw new Error("ran"); } }); } };\n`,
    );
    await Deno.writeTextFile(
      `${dir}/task.yaml`,
      `name: t\nplugins: [plugin.ts]\nsteps:\n  - { name: a, type: read, params: { dataset: { kind: cifar11, dir: x } } }\n`,
    );
    let out = "";
    const code = await main(["run", `${dir}/task.yaml`, "--outputs", `${dir}/out`], {
      stdout: (t) => (out += t),
      stderr: (t) => (out += t),
      tty: false,
    });
    expect({ code, out }).toMatchObject({ code: 2 });
    expect(out).toContain("unknown dataset kind 'cifar11' (did you mean 'cifar10'?)");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
