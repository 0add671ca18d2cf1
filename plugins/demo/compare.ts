/**
 * The `compare-runs` step: two (or more) generation runs side by side, as Markdown and JSON,
 * with the paper's figures in a column beside ours. For each run: the domain Frechet distance
 * with its real-vs-real floor, class accuracy, the Inception-Score analogue, precision and
 * recall (from `eval`'s metrics.json), the best stage-1 linear probe (from probe-stage1's
 * probe.json) and the wall time of the run's own steps (from their step markers).
 */

import { type Infer, s } from "../../core/config.ts";
import type { StepContext } from "../../core/registry.ts";

export const compareParams = s.object({
  title: s.string().default("comparison"),
  task_dir: s.string({ nonEmpty: true }).describe("the task's output folder (step markers)"),
  runs: s.array(
    s.object({
      label: s.string({ nonEmpty: true }),
      metrics: s.string({ nonEmpty: true, description: "eval's metrics.json" }),
      probe: s.string({ description: "probe-stage1's probe.json" }).optional(),
      steps: s.array(s.string()).default([]).describe("the run's own steps (their times add up)"),
      paper: s.object({
        fid: s.number().optional(),
        probe: s.number().optional(),
      }).default({}).describe("the paper's figures for this method (FID, probe top-1 in %)"),
    }),
    { minLength: 1 },
  ),
});

export const compareOutputs = () => ({ markdown: "comparison.md", json: "comparison.json" });

interface RunRow {
  label: string;
  fd: number;
  fdFloor: number;
  classAccuracy: number;
  inceptionScore: number;
  precision: number;
  recall: number;
  probe: number | null;
  probeDepth: number | null;
  seconds: number;
  paper: { fid?: number; probe?: number };
}

async function readJson(path: string, what: string): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`compare-runs: cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

async function stepSeconds(taskDir: string, step: string): Promise<number> {
  const marker = await readJson(`${taskDir}/${step}/.digit-step.json`, `step marker of '${step}'`);
  if (typeof marker.seconds !== "number") {
    throw new Error(`compare-runs: the marker of step '${step}' records no time`);
  }
  return marker.seconds;
}

export async function compareRuns(
  p: Infer<typeof compareParams>,
  ctx: StepContext,
): Promise<RunRow[]> {
  const rows: RunRow[] = [];
  for (const run of p.runs) {
    const m = (await readJson(run.metrics, "metrics")).metrics as Record<string, number>;
    if (typeof m?.domain_fd !== "number") {
      throw new Error(
        `compare-runs: ${run.metrics} has no domain metrics (eval with metrics: [domain])`,
      );
    }
    const probe = run.probe
      ? (await readJson(run.probe, "probe report")).best as { depth: number; accuracy: number }
      : null;
    let seconds = 0;
    for (const step of run.steps) seconds += await stepSeconds(p.task_dir, step);
    rows.push({
      label: run.label,
      fd: m.domain_fd,
      fdFloor: m.domain_fd_floor,
      classAccuracy: m.domain_class_accuracy,
      inceptionScore: m.domain_is,
      precision: m.domain_precision,
      recall: m.domain_recall,
      probe: probe?.accuracy ?? null,
      probeDepth: probe?.depth ?? null,
      seconds,
      paper: run.paper,
    });
  }
  await Deno.writeTextFile(
    ctx.outputs.json,
    JSON.stringify({ title: p.title, runs: rows }, null, 2) + "\n",
  );
  await Deno.writeTextFile(ctx.outputs.markdown, markdown(p.title, rows));
  for (const line of markdown(p.title, rows).trimEnd().split("\n")) ctx.log.info(line);
  return rows;
}

const pct = (v: number | null) => (v === null ? "-" : `${(100 * v).toFixed(1)}%`);

function markdown(title: string, rows: RunRow[]): string {
  const lines = [
    `## ${title}`,
    "",
    "| run | domain FD (floor) | class accuracy | IS analogue | precision / recall | best probe (depth) | time | paper: FID, probe |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const r of rows) {
    const paper = [
      r.paper.fid !== undefined ? `FID ${r.paper.fid}` : null,
      r.paper.probe !== undefined ? `probe ${r.paper.probe}%` : null,
    ].filter(Boolean).join(", ") || "-";
    lines.push(
      `| ${r.label} | ${r.fd.toFixed(2)} (${r.fdFloor.toFixed(2)}) | ${pct(r.classAccuracy)} | ${
        r.inceptionScore.toFixed(2)
      } | ${r.precision.toFixed(2)} / ${r.recall.toFixed(2)} | ${pct(r.probe)}${
        r.probeDepth === null ? "" : ` (${r.probeDepth})`
      } | ${(r.seconds / 60).toFixed(1)} min | ${paper} |`,
    );
  }
  if (rows.length === 2) {
    const [a, b] = rows;
    lines.push(
      "",
      `${a.label} / ${b.label}: domain FD ratio ${(a.fd / b.fd).toFixed(2)}; probe difference ${
        a.probe !== null && b.probe !== null
          ? `${(100 * (a.probe - b.probe)).toFixed(1)} points`
          : "-"
      }.`,
    );
  }
  return lines.join("\n") + "\n";
}
