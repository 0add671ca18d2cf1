/**
 * The demo's last step: contact sheets with one row per class (samples, baselines, real
 * images, VQGAN reconstructions), and one screen of numbers a user can judge the run by:
 * class accuracy of the domain classifier, the Frechet distance on its features next to the
 * real-vs-real floor, precision/recall, colour saturation next to the real images', the
 * VQGAN's reconstruction report, the stage-1 probe, the guidance sweep and step times.
 * It re-runs every time (it only reads a few hundred small files), so a second
 * `deno task demo` that skips everything else still prints it. Because of that it can
 * also see a scored folder that changed since its eval ran (the preview server or a
 * user adding images): it warns, since those numbers no longer describe the folder.
 */

import { type Infer, s } from "../../core/config.ts";
import { readLabelRows } from "../../core/data/labels.ts";
import { readImage, writePng } from "../../core/image/codec.ts";
import type { RgbImage } from "../../core/image/rgb.ts";
import type { StepContext } from "../../core/registry.ts";
import { ImageFolder } from "../metrics/folder.ts";
import { classSheet } from "./class_sheet.ts";
import { pngFiles } from "./images.ts";

const LABEL = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

export const summaryParams = s.object({
  title: s.string().default("DiGIT demo"),
  runs: s.array(
    s.object({
      label: s.string({ pattern: LABEL, patternName: "a file-name-safe label" }).describe(
        "names the sheet: sheet-<label>.png",
      ),
      description: s.string({ nonEmpty: true }),
      images: s.string({
        nonEmpty: true,
        description: "folder of the run's PNGs (with labels.tsv)",
      }),
      metrics: s.string({
        nonEmpty: true,
        description: "metrics.json of the eval step on those PNGs",
      }),
    }),
    { minLength: 1 },
  ).describe("sample sets, the trained pipeline first, then its baselines"),
  reference: s.string({
    nonEmpty: true,
    description: "folder of held-out real images (sheet-real.png)",
  }),
  reconstructions: s.object({
    images: s.string({ nonEmpty: true, description: "reconstruct-vqgan's results folder" }),
    report: s.string({ nonEmpty: true, description: "reconstruct-vqgan's recon.json" }),
    metrics: s.string({
      nonEmpty: true,
      description: "metrics.json of the eval step on the reconstructions",
    }),
  }).optional(),
  probe: s.string({ description: "probe-stage1's probe.json" }).optional(),
  guidance: s.string({ description: "guidance-sweep's sweep.json" }).optional(),
  sheet: s.object({
    per_class: s.int({ min: 1 }).default(10).describe("images per class row"),
    scale: s.int({ min: 1 }).default(2),
  }).default({ per_class: 10, scale: 2 }),
  task_dir: s.string({
    description: "the task's output folder: step times come from its step markers",
  }).optional(),
  serve: s.string({ description: "command that browses the samples" }).optional(),
});
export type SummaryParams = Infer<typeof summaryParams>;

export function summaryOutputs(p: SummaryParams): Record<string, string> {
  const out: Record<string, string> = { summary: "summary.json", "sheet-real": "sheet-real.png" };
  for (const r of p.runs) out[`sheet-${r.label}`] = `sheet-${r.label}.png`;
  if (p.reconstructions) out["sheet-reconstructions"] = "sheet-reconstructions.png";
  return out;
}

type Numbers = Record<string, number>;

/** What summary.json holds (tests read it). */
export interface DemoSummary {
  reference: { folder: string; count: number; sheet: string; saturation?: number };
  runs: {
    label: string;
    description: string;
    folder: string;
    count: number;
    sheet: string;
    /** Metric name -> value, as the eval step wrote them. */
    metrics: Numbers;
  }[];
  reconstructions?: {
    folder: string;
    sheet: string;
    psnr: number;
    saturationRatio: number;
    codebookUsage: number;
    metrics: Numbers;
  };
  probe?: { accuracy: number[]; best: { depth: number; accuracy: number } };
  guidance?: { guidance: number; classAccuracy: number; images: number }[];
  /** Step name -> seconds of its last run. */
  stepSeconds: Record<string, number>;
  /** Scored folders whose image count differs from the one their metrics were computed on. */
  changedSinceScored: { folder: string; metrics: string; scored: number; now: number }[];
}

async function readJson(path: string, what: string): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`demo-summary: cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

async function readMetrics(path: string): Promise<Numbers> {
  const doc = await readJson(path, "metrics file") as { metrics?: Record<string, unknown> };
  const out: Numbers = {};
  for (const [k, v] of Object.entries(doc.metrics ?? {})) if (typeof v === "number") out[k] = v;
  if (Object.keys(out).length === 0) {
    throw new Error(`demo-summary: ${path} has no numeric 'metrics'`);
  }
  return out;
}

/**
 * `folder` against what eval recorded in `metricsPath` (metrics.json `generated`: `total`,
 * the images the folder held, and `count`, those it scored, fewer under a `limit`; older
 * files have only `count`): null when the folder still holds as many images, or when the
 * file does not say.
 */
async function changedSinceScored(
  folder: string,
  metricsPath: string,
): Promise<DemoSummary["changedSinceScored"][number] | null> {
  const doc = await readJson(metricsPath, "metrics file") as {
    generated?: { count?: unknown; total?: unknown };
  };
  const { count, total } = doc.generated ?? {};
  if (typeof count !== "number") return null;
  // eval counts png/jpg/jpeg the way ImageFolder lists them; so does this.
  const now = (await ImageFolder.open(folder).catch(() => null))?.count ?? 0;
  const scored = typeof total === "number" ? total : count;
  return now === scored ? null : { folder, metrics: metricsPath, scored, now };
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

/** A sheet with one row per class (from the folder's labels.tsv), else rows of the files in order. */
async function folderClassSheet(dir: string, perClass: number, scale: number): Promise<RgbImage> {
  const rows = await readLabelRows(dir);
  const groups = new Map<number, { label: string; files: string[] }>();
  if (rows) {
    for (const r of [...rows].sort((a, b) => a.classId - b.classId)) {
      const g = groups.get(r.classId) ?? { label: r.className, files: [] };
      if (g.files.length < perClass) g.files.push(r.file);
      groups.set(r.classId, g);
    }
  } else {
    const files = await pngFiles(dir);
    for (let i = 0; i * perClass < Math.min(files.length, perClass * 10); i++) {
      groups.set(i, { label: "", files: files.slice(i * perClass, (i + 1) * perClass) });
    }
  }
  if (groups.size === 0) throw new Error(`demo-summary: '${dir}' has no PNG images`);
  const sheetRows = [];
  for (const g of groups.values()) {
    sheetRows.push({
      label: g.label,
      images: await Promise.all(g.files.map((f) => readImage(`${dir}/${f}`))),
    });
  }
  return classSheet(sheetRows, perClass, scale);
}

export async function writeSummary(p: SummaryParams, ctx: StepContext): Promise<DemoSummary> {
  const { per_class: perClass, scale } = p.sheet;
  const sheet = async (dir: string, out: string) =>
    await writePng(out, await folderClassSheet(dir, perClass, scale));
  await sheet(p.reference, ctx.outputs["sheet-real"]);
  const runs: DemoSummary["runs"] = [];
  for (const r of p.runs) {
    const out = ctx.outputs[`sheet-${r.label}`];
    await sheet(r.images, out);
    runs.push({
      label: r.label,
      description: r.description,
      folder: r.images,
      count: (await pngFiles(r.images)).length,
      sheet: out,
      metrics: await readMetrics(r.metrics),
    });
  }
  const summary: DemoSummary = {
    reference: {
      folder: p.reference,
      count: (await pngFiles(p.reference)).length,
      sheet: ctx.outputs["sheet-real"],
      saturation: runs[0].metrics.reference_saturation,
    },
    runs,
    stepSeconds: p.task_dir ? await stepTimes(p.task_dir) : {},
    changedSinceScored: [],
  };
  const scored = [...p.runs.map((r) => [r.images, r.metrics])];
  if (p.reconstructions) scored.push([p.reconstructions.images, p.reconstructions.metrics]);
  for (const [folder, metrics] of scored) {
    const changed = await changedSinceScored(folder, metrics);
    if (changed) summary.changedSinceScored.push(changed);
  }
  if (p.reconstructions) {
    const rc = p.reconstructions;
    await sheet(rc.images, ctx.outputs["sheet-reconstructions"]);
    const report = (await readJson(rc.report, "reconstruction report")).metrics as {
      psnr: number;
      saturation: { ratio: number };
      codebook: { usage: number };
    };
    summary.reconstructions = {
      folder: rc.images,
      sheet: ctx.outputs["sheet-reconstructions"],
      psnr: report.psnr,
      saturationRatio: report.saturation.ratio,
      codebookUsage: report.codebook.usage,
      metrics: await readMetrics(rc.metrics),
    };
  }
  if (p.probe) summary.probe = await readJson(p.probe, "probe report") as DemoSummary["probe"];
  if (p.guidance) {
    summary.guidance = (await readJson(p.guidance, "guidance sweep"))
      .points as DemoSummary["guidance"];
  }
  await Deno.writeTextFile(ctx.outputs.summary, JSON.stringify(summary, null, 2) + "\n");
  for (const line of describe(summary, p)) ctx.log.info(line);
  for (const c of summary.changedSinceScored) {
    ctx.log.warn(
      `${c.folder} holds ${c.now} image(s) but ${c.metrics} scored ${c.scored}: it changed after ` +
        `its eval ran, so those numbers describe another set (re-run the eval step with --force-step)`,
    );
  }
  return summary;
}

const pct = (v: number | undefined) => (v === undefined ? "-" : `${(100 * v).toFixed(1)}%`);
const num = (v: number | undefined, digits = 2) => (v === undefined ? "-" : v.toFixed(digits));

/** The lines printed at the end of the demo. */
function describe(summary: DemoSummary, p: SummaryParams): string[] {
  const [trained] = summary.runs;
  const width = Math.max(...summary.runs.map((r) => r.description.length), 24);
  const floor = trained.metrics.domain_fd_floor;
  const realSat = summary.reference.saturation;
  const lines = [
    "",
    `==== ${p.title} ====`,
    `samples:       ${trained.count} PNGs in ${trained.folder}`,
    `contact sheets (a row per class, ${p.sheet.per_class} images each, ${p.sheet.scale}x):`,
    ...summary.runs.map((r) => `  ${r.description.padEnd(width)}  ${r.sheet}`),
    `  ${"held-out real images".padEnd(width)}  ${summary.reference.sheet}`,
  ];
  if (summary.reconstructions) {
    lines.push(`  ${"VQGAN reconstructions".padEnd(width)}  ${summary.reconstructions.sheet}`);
  }
  lines.push(
    `judged by the domain classifier against ${summary.reference.count} held-out real images`,
    `  ${"".padEnd(width)}  class acc.  domain FD (floor ${
      num(floor)
    })  precision  recall  saturation (real ${num(realSat)})`,
  );
  for (const r of summary.runs) {
    const m = r.metrics;
    const ratio = m.domain_fd !== undefined && floor
      ? ` = ${(m.domain_fd / floor).toFixed(1)}x floor`
      : "";
    lines.push(
      `  ${r.description.padEnd(width)}  ${pct(m.domain_class_accuracy).padStart(9)}  ${
        (num(m.domain_fd) + ratio).padEnd(27)
      }` +
        `  ${num(m.domain_precision).padStart(9)}  ${num(m.domain_recall).padStart(6)}  ${
          num(m.saturation)
        }`,
    );
  }
  const rc = summary.reconstructions;
  if (rc) {
    lines.push(
      `VQGAN on held-out images: PSNR ${rc.psnr.toFixed(2)} dB, saturation kept ${
        pct(rc.saturationRatio)
      }, ` +
        `codebook in use ${pct(rc.codebookUsage)}, class accuracy of the reconstructions ${
          pct(rc.metrics.domain_class_accuracy)
        }`,
    );
  }
  if (summary.probe) {
    lines.push(
      `stage-1 linear probe on the semantic tokens (chance ${pct(1 / 10)}): best ${
        pct(summary.probe.best.accuracy)
      } ` +
        `at depth ${summary.probe.best.depth} (per depth: ${
          summary.probe.accuracy.map(pct).join(", ")
        })`,
    );
  }
  if (summary.guidance?.length) {
    lines.push(
      `guidance sweep (class accuracy): ${
        summary.guidance.map((g) => `${g.guidance} -> ${pct(g.classAccuracy)}`).join(", ")
      }`,
    );
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
