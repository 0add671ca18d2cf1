/**
 * tasks/own-images.yaml, the README's "Train on your own images" recipe, run end to end on a
 * small generated image folder (3 classes of 40x40 PNGs, so `resize: 32` crops them), with
 * the same file shortened only in sizes and update counts.
 */

import { expect, it } from "./lib/test.ts";
import { parseOverrides } from "../core/config.ts";
import { readLabelRows } from "../core/data/labels.ts";
import { ShapesDataset } from "../core/data/shapes.ts";
import { writePng } from "../core/image/codec.ts";
import { silentLogger } from "../core/registry.ts";
import { loadTask, runTask } from "../core/tasks.ts";
import { registry } from "./shard_fixture_test.ts";

const TASK = new URL("../tasks/own-images.yaml", import.meta.url).pathname;

it("own-images task: an image folder goes through every step to samples with labels and a domain score", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-own-images-" });
  try {
    const shapes = new ShapesDataset({ size: 40, length: 72, seed: 5, numClasses: 3 });
    for (let i = 0; i < shapes.length; i++) {
      const { image, label } = shapes.getSync(i);
      const dir = `${root}/images/${shapes.classNames[label]}`;
      await Deno.mkdir(dir, { recursive: true });
      await writePng(`${dir}/${String(i).padStart(3, "0")}.png`, image);
    }
    // The only text edits are the ones the file asks a user to make: root and held-out size.
    const text = (await Deno.readTextFile(TASK))
      .replaceAll("root: data/my-images", `root: ${root}/images`)
      .replace("offset: 256", "offset: 24")
      .replace("limit: 256", "limit: 24");
    expect(text).toContain("classes: [0, 1, 2]");
    await Deno.writeTextFile(`${root}/task.yaml`, text);
    const sets = [
      "steps[0].params.steps=5",
      "steps[0].params.min_accuracy=0",
      "steps[0].params.floor.generated=8",
      "steps[0].params.floor.reference=16",
      "steps[1].params.optimization.max_update=4",
      "steps[1].params.loss.vq_warmup=2",
      "steps[1].params.dataset.batch_size=8",
      "steps[3].params.optimization.max_update=3",
      "steps[3].params.dataset.batch_size=8",
      "steps[6].params.optimization.max_update=3",
      "steps[6].params.dataset.batch_size=8",
      "steps[7].params.optimization.max_update=3",
      "steps[7].params.dataset.batch_size=8",
      "steps[8].params.count=12",
      "steps[8].params.batch_size=12",
      "steps[9].params.batch_size=12",
      "steps[10].params.count=16",
    ];
    const r = await registry();
    const plan = await loadTask(`${root}/task.yaml`, {
      registry: r,
      outputDir: `${root}/out`,
      overrides: parseOverrides(sets),
    });
    const summary = await runTask(plan, {
      registry: r,
      log: silentLogger,
      signal: new AbortController().signal,
    });
    expect(summary.ran.length).toBe(plan.steps.length);
    const labels = (await readLabelRows(`${root}/out/sample/results`))!;
    expect(labels.length).toBe(12);
    expect(new Set(labels.map((l) => l.className))).toEqual(
      new Set(["circle", "square", "triangle"]),
    );
    const metrics = JSON.parse(await Deno.readTextFile(`${root}/out/eval/metrics.json`)).metrics;
    expect(metrics.domain_class_accuracy).toBeGreaterThanOrEqual(0);
    expect(Number.isFinite(metrics.domain_fd)).toBe(true);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
