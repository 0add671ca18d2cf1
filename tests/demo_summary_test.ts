/**
 * The demo summary warns when a folder an eval step scored changed afterwards (issue 17: the
 * preview server once wrote into the scored samples folder, so the printed FD was for 100
 * images of a folder that held 133). eval records the folder's image count in metrics.json
 * (`generated.total`; older files: `generated.count`), and the summary compares.
 */

import { expect, it } from "./lib/test.ts";
import { cpuBackend } from "../core/device.ts";
import { ShapesDataset } from "../core/data/shapes.ts";
import { memoryLogger, Registry, type StepContext } from "../core/registry.ts";
import { exportDataset } from "../plugins/demo/images.ts";
import { summaryOutputs, summaryParams, writeSummary } from "../plugins/demo/summary.ts";
import { validate } from "../core/config.ts";

const shapes = (length: number, seed: number) =>
  new ShapesDataset({ size: 16, length, seed, numClasses: 2 });

async function summarize(root: string) {
  const p = validate(summaryParams, {
    runs: [
      { label: "a", description: "run a", images: `${root}/a`, metrics: `${root}/a.json` },
      { label: "b", description: "run b", images: `${root}/b`, metrics: `${root}/b.json` },
    ],
    reference: `${root}/real`,
    sheet: { per_class: 2, scale: 1 },
  }, "test");
  const outputs: Record<string, string> = {};
  for (const [k, v] of Object.entries(summaryOutputs(p))) outputs[k] = `${root}/out/${v}`;
  await Deno.mkdir(`${root}/out`, { recursive: true });
  const log = memoryLogger();
  const ctx: StepContext = {
    registry: new Registry(),
    device: "cpu",
    backend: cpuBackend(),
    log,
    outputDir: root,
    signal: new AbortController().signal,
    stepName: "summary",
    stepDir: `${root}/out`,
    outputs,
  };
  const summary = await writeSummary(p, ctx);
  return { summary, warnings: log.lines.filter((l) => l.includes("changed after")) };
}

it("demo summary: a scored folder that gained or lost images since its eval is flagged", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-summary-" });
  try {
    await exportDataset(shapes(4, 1), { count: 4, dir: `${root}/real` });
    await exportDataset(shapes(4, 2), { count: 4, dir: `${root}/a` });
    await exportDataset(shapes(4, 3), { count: 4, dir: `${root}/b` });
    const metrics = (folder: string, generated: Record<string, number>) =>
      Deno.writeTextFile(
        `${root}/${folder}.json`,
        JSON.stringify({ metrics: { domain_fd: 1 }, generated: { folder, ...generated } }),
      );
    // a: scored 2 of its 4 under a limit; b: an older metrics.json with only the count.
    await metrics("a", { count: 2, total: 4 });
    await metrics("b", { count: 4 });

    const before = await summarize(root);
    expect(before.summary.changedSinceScored).toEqual([]);
    expect(before.warnings).toEqual([]);

    // The preview server (or a user) adds an image to a; b was scored when it held one more
    // image than now (a removed file, without breaking its labels.tsv for the sheet).
    await Deno.copyFile(`${root}/real/00000.png`, `${root}/a/preview-1.png`);
    await metrics("b", { count: 5 });
    const after = await summarize(root);
    expect(after.summary.changedSinceScored).toEqual([
      { folder: `${root}/a`, metrics: `${root}/a.json`, scored: 4, now: 5 },
      { folder: `${root}/b`, metrics: `${root}/b.json`, scored: 5, now: 4 },
    ]);
    expect(after.warnings.length).toBe(2);
    expect(after.warnings[0]).toContain(`${root}/a holds 5 image(s) but ${root}/a.json scored 4`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
