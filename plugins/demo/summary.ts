/**
 * The demo's last step: one screen that says where the images are, how the trained
 * pipeline scores against an untrained one, how long each step took, and how to browse
 * the samples. It re-runs every time (it is cheap), so a second `deno task demo` that skips
 * everything else still prints it.
 */

import { type Infer, s } from "../../core/config.ts";
import type { StepContext } from "../../core/registry.ts";
import { pngFiles } from "./images.ts";

export const summaryParams = s.object({
  title: s.string().default("DiGIT demo"),
  samples: s.string({ nonEmpty: true, description: "folder of the trained pipeline's PNGs" }),
  sheet: s.string({ nonEmpty: true, description: "contact sheet of the trained pipeline's samples" }),
  real_sheet: s.string({ description: "contact sheet of held-out real images" }).optional(),
  baseline_sheet: s.string({ description: "contact sheet of the untrained pipeline's samples" }).optional(),
  trained_metrics: s.string({ nonEmpty: true, description: "metrics.json of the eval step on the trained samples" }),
  untrained_metrics: s.string({ nonEmpty: true, description: "metrics.json of the eval step on the untrained samples" }),
  task_dir: s.string({ description: "the task's output folder: step times are read from its step markers" }).optional(),
  serve: s.string({ description: "command that browses the samples" }).optional(),
});
export type SummaryParams = Infer<typeof summaryParams>;

/** What the summary step writes to summary.json (and what tests read). */
export interface DemoSummary {
  samples: { folder: string; count: number; sheet: string };
  /** Metric name -> { trained, untrained }. */
  metrics: Record<string, { trained: number; untrained: number }>;
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
  const trained = await readMetrics(p.trained_metrics);
  const untrained = await readMetrics(p.untrained_metrics);
  const metrics: DemoSummary["metrics"] = {};
  for (const k of Object.keys(trained)) if (k in untrained) metrics[k] = { trained: trained[k], untrained: untrained[k] };
  const count = (await pngFiles(p.samples)).length;
  const stepSeconds = p.task_dir ? await stepTimes(p.task_dir) : {};
  const summary: DemoSummary = { samples: { folder: p.samples, count, sheet: p.sheet }, metrics, stepSeconds };
  await Deno.writeTextFile(ctx.outputs.summary, JSON.stringify(summary, null, 2) + "\n");

  const lines = [
    "",
    `==== ${p.title} ====`,
    `samples:        ${count} PNGs in ${p.samples}`,
    `contact sheet:  ${p.sheet}`,
    ...(p.baseline_sheet ? [`untrained:      ${p.baseline_sheet}`] : []),
    ...(p.real_sheet ? [`real images:    ${p.real_sheet}`] : []),
    "Frechet distance to the held-out real images (lower is better):",
    ...Object.entries(metrics).map(([k, v]) =>
      `  ${k}: trained ${v.trained.toFixed(2)}  vs  untrained ${v.untrained.toFixed(2)}` +
      `  (${(v.untrained / Math.max(v.trained, 1e-9)).toFixed(1)}x lower)`
    ),
  ];
  const times = Object.entries(stepSeconds).sort((a, b) => b[1] - a[1]);
  if (times.length > 0) {
    const total = times.reduce((t, [, sec]) => t + sec, 0);
    lines.push(`step times (last runs, ${total.toFixed(0)} s in all): ${times.map(([n, sec]) => `${n} ${sec.toFixed(0)} s`).join(", ")}`);
  }
  if (p.serve) lines.push(`browse them:    ${p.serve}`);
  lines.push("");
  for (const line of lines) ctx.log.info(line);
  return summary;
}
