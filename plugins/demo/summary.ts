/**
 * The demo's last step: enlarged contact sheets of every sample set, and one screen that
 * says where the images are, how the trained pipeline scores against the baselines, how
 * long each step took, and how to browse the samples. It re-runs every time (it only reads
 * a few hundred small files), so a second `deno task demo` that skips everything else still
 * prints it.
 */

import { type Infer, s } from "../../core/config.ts";
import { writePng } from "../../core/image/codec.ts";
import type { StepContext } from "../../core/registry.ts";
import { folderSheet, pngFiles } from "./images.ts";

const LABEL = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

export const summaryParams = s.object({
  title: s.string().default("DiGIT demo"),
  runs: s.array(
    s.object({
      label: s.string({ pattern: LABEL, patternName: "a file-name-safe label" }).describe("names the sheet: sheet-<label>.png"),
      description: s.string({ nonEmpty: true }),
      images: s.string({ nonEmpty: true, description: "folder of the run's PNGs" }),
      metrics: s.string({ nonEmpty: true, description: "metrics.json of the eval step on those PNGs" }),
    }),
    { minLength: 1 },
  ).describe("sample sets, the trained pipeline first, then its baselines"),
  reference: s.string({ nonEmpty: true, description: "folder of held-out real images (sheet-real.png)" }),
  sheet: s.object({
    count: s.int({ min: 1 }).default(50),
    columns: s.int({ min: 1 }).default(10),
    scale: s.int({ min: 1 }).default(2),
  }).default({ count: 50, columns: 10, scale: 2 }),
  task_dir: s.string({ description: "the task's output folder: step times come from its step markers" }).optional(),
  serve: s.string({ description: "command that browses the samples" }).optional(),
});
export type SummaryParams = Infer<typeof summaryParams>;

export function summaryOutputs(p: SummaryParams): Record<string, string> {
  const out: Record<string, string> = { summary: "summary.json", "sheet-real": "sheet-real.png" };
  for (const r of p.runs) out[`sheet-${r.label}`] = `sheet-${r.label}.png`;
  return out;
}

/** What summary.json holds (tests read it). */
export interface DemoSummary {
  reference: { folder: string; count: number; sheet: string };
  runs: {
    label: string;
    description: string;
    folder: string;
    count: number;
    sheet: string;
    /** Metric name -> value (Frechet distances: lower is closer to the real images). */
    metrics: Record<string, number>;
  }[];
  /** Step name -> seconds of its last run. */
  stepSeconds: Record<string, number>;
}

async function readMetrics(path: string): Promise<Record<string, number>> {
  let doc: { metrics?: Record<string, unknown> };
  try {
    doc = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`demo-summary: cannot read metrics file ${path}: ${(e as Error).message}`);
  }
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(doc.metrics ?? {})) if (typeof v === "number") out[k] = v;
  if (Object.keys(out).length === 0) throw new Error(`demo-summary: ${path} has no numeric 'metrics'`);
  return out;
}

/** Seconds of each finished step under `dir`, from the task runner's step markers. */
async function stepTimes(dir: string): Promise<Record<string, number>> {
  const times: Record<string, number> = {};
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isDirectory) continue;
      try {
        const marker = JSON.parse(await Deno.readTextFile(`${dir}/${e.name}/.digit-step.json`));
        if (typeof marker.seconds === "number") times[e.name] = marker.seconds;
      } catch { /* not a finished step */ }
    }
  } catch { /* no folder: no times */ }
  return times;
}

export async function writeSummary(p: SummaryParams, ctx: StepContext): Promise<DemoSummary> {
  const { count, columns, scale } = p.sheet;
  const sheet = (dir: string, out: string) => folderSheet(dir, count, columns, scale).then((img) => writePng(out, img));
  await sheet(p.reference, ctx.outputs["sheet-real"]);
  const runs: DemoSummary["runs"] = [];
  for (const r of p.runs) {
    const out = ctx.outputs[`sheet-${r.label}`];
    await sheet(r.images, out);
    runs.push({
      label: r.label, description: r.description, folder: r.images, count: (await pngFiles(r.images)).length, sheet: out,
      metrics: await readMetrics(r.metrics),
    });
  }
  const summary: DemoSummary = {
    reference: { folder: p.reference, count: (await pngFiles(p.reference)).length, sheet: ctx.outputs["sheet-real"] },
    runs,
    stepSeconds: p.task_dir ? await stepTimes(p.task_dir) : {},
  };
  await Deno.writeTextFile(ctx.outputs.summary, JSON.stringify(summary, null, 2) + "\n");
  for (const line of describe(summary, p)) ctx.log.info(line);
  return summary;
}

/** The lines printed at the end of the demo. */
function describe(summary: DemoSummary, p: SummaryParams): string[] {
  const [trained] = summary.runs;
  const width = Math.max(...summary.runs.map((r) => r.description.length));
  const lines = [
    "",
    `==== ${p.title} ====`,
    `samples:       ${trained.count} PNGs in ${trained.folder}`,
    `contact sheets (${p.sheet.count} images each, ${p.sheet.scale}x):`,
    ...summary.runs.map((r) => `  ${r.description.padEnd(width)}  ${r.sheet}`),
    `  ${"held-out real images".padEnd(width)}  ${summary.reference.sheet}`,
  ];
  for (const name of Object.keys(trained.metrics)) {
    lines.push(`${name} to ${summary.reference.count} held-out real images (lower is closer):`);
    for (const r of summary.runs) {
      const v = r.metrics[name];
      if (v === undefined) continue;
      const ratio = r === trained ? "" : `  (${(v / Math.max(trained.metrics[name], 1e-12)).toFixed(1)}x the trained pipeline's)`;
      lines.push(`  ${r.description.padEnd(width)}  ${v.toFixed(3)}${ratio}`);
    }
  }
  const times = Object.entries(summary.stepSeconds).sort((a, b) => b[1] - a[1]);
  if (times.length > 0) {
    const total = times.reduce((t, [, sec]) => t + sec, 0);
    lines.push(
      `step times (${total.toFixed(0)} s in all, last runs): ` +
        times.map(([n, sec]) => `${n} ${sec < 10 ? sec.toFixed(1) : sec.toFixed(0)} s`).join(", "),
    );
  }
  if (p.serve) lines.push(`browse them:   ${p.serve}`);
  lines.push("");
  return lines;
}
