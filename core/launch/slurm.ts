/**
 * Slurm launcher: a job-array script (one array task per shard) and a merge script that runs
 * after the whole array succeeded (`sbatch --dependency=afterok:<array job>`). It writes and
 * submits scripts; scheduling stays Slurm's.
 *
 * Retries: a shard process that dies (killed, out of memory, node trouble) is re-run by the
 * array task itself, up to `retries` more times; the runner skips work a shard's marker says
 * is done, so a retry redoes only the unfinished shard. Config and usage errors (exit code 2)
 * are not retried: they would fail the same way. Re-submitting the array script after a
 * failure runs the unfinished shards only (finished ones exit at once, skipped).
 */

import {
  jobName,
  mergeCommand,
  shardCommand,
  shellLine,
  shellQuote,
  type WorkerSpec,
} from "./common.ts";

export interface SlurmOptions extends WorkerSpec {
  /** Name of the task, for the job names. */
  taskName: string;
  partition?: string;
  gpusPerTask?: number;
  cpusPerTask?: number;
  /** Slurm's --mem, e.g. "16G". */
  mem?: string;
  /** Slurm's --time, e.g. "02:00:00". */
  time?: string;
  account?: string;
  /** At most this many array tasks at once (`--array=0-(N-1)%M`). */
  maxParallel?: number;
  /** Extra attempts of a shard that died (default 2). */
  retries?: number;
  /** Folder for the array tasks' and the merge's log files (must exist before they run). */
  logDir: string;
}

export interface SlurmScripts {
  array: string;
  merge: string;
  /** Submits both, the merge depending on the array; prints the job ids. */
  submit: string;
}

function directives(o: SlurmOptions, name: string, extra: string[]): string[] {
  const lines = [`#SBATCH --job-name=${name}`, ...extra];
  if (o.partition) lines.push(`#SBATCH --partition=${o.partition}`);
  if (o.account) lines.push(`#SBATCH --account=${o.account}`);
  if (o.time) lines.push(`#SBATCH --time=${o.time}`);
  if (o.cpusPerTask) lines.push(`#SBATCH --cpus-per-task=${o.cpusPerTask}`);
  if (o.mem) lines.push(`#SBATCH --mem=${o.mem}`);
  return lines;
}

function checkOptions(o: SlurmOptions): void {
  if (!Number.isInteger(o.shards) || o.shards < 1) {
    throw new Error(`slurm: --shards must be >= 1, got ${o.shards}`);
  }
  for (
    const [k, v] of [["partition", o.partition], ["time", o.time], ["mem", o.mem], [
      "account",
      o.account,
    ]]
  ) {
    // These land in #SBATCH lines, where a space or newline would silently cut the directive.
    if (v !== undefined && !/^[A-Za-z0-9_:.,+-]+$/.test(v)) {
      throw new Error(`slurm: --${k} '${v}' has characters Slurm does not take`);
    }
  }
}

export function slurmScripts(o: SlurmOptions): SlurmScripts {
  checkOptions(o);
  const name = jobName(o.taskName, o.step);
  const retries = o.retries ?? 2;
  const array = `0-${o.shards - 1}${o.maxParallel ? `%${o.maxParallel}` : ""}`;
  const extra = [
    `#SBATCH --array=${array}`,
    `#SBATCH --output=${o.logDir}/%A_%a.out`,
    "#SBATCH --ntasks=1",
  ];
  if (o.gpusPerTask) extra.push(`#SBATCH --gpus-per-task=${o.gpusPerTask}`);
  const arrayScript = [
    "#!/bin/bash",
    ...directives(o, name, extra),
    `# Shard $SLURM_ARRAY_TASK_ID of ${o.shards} of step '${o.step}' of ${o.task} (written by \`deno task launch slurm\`).`,
    "# Re-submitting this script redoes only the shards that have not finished.",
    "set -u",
    `cd ${shellQuote(o.workdir)}`,
    "status=0",
    `for attempt in $(seq 1 ${retries + 1}); do`,
    `  ${shellLine(shardCommand(o))}`,
    "  status=$?",
    '  if [ "$status" -eq 0 ]; then exit 0; fi',
    "  # 2 is a usage or config error: the same command would fail the same way.",
    '  if [ "$status" -eq 2 ]; then break; fi',
    `  echo "shard $SLURM_ARRAY_TASK_ID: attempt $attempt of ${
      retries + 1
    } failed with status $status" >&2`,
    "done",
    'exit "$status"',
    "",
  ].join("\n");
  const mergeScript = [
    "#!/bin/bash",
    ...directives(o, `${name}-merge`, [
      `#SBATCH --output=${o.logDir}/merge_%j.out`,
      "#SBATCH --ntasks=1",
    ]),
    `# Merges the ${o.shards} shards of step '${o.step}' of ${o.task}; refuses while any is unfinished.`,
    "set -u",
    `cd ${shellQuote(o.workdir)}`,
    `exec ${shellLine(mergeCommand(o))}`,
    "",
  ].join("\n");
  const submit = [
    "#!/bin/bash",
    "# Submits the shard array, then the merge to run once every array task succeeded.",
    "set -euo pipefail",
    `cd ${shellQuote(o.logDir)}/..`,
    "array=$(sbatch --parsable array.sh)",
    "array=${array%%;*}",
    "merge=$(sbatch --parsable --dependency=afterok:$array merge.sh)",
    'echo "array job $array, merge job ${merge%%;*}"',
    "",
  ].join("\n");
  return { array: arrayScript, merge: mergeScript, submit };
}

export interface WrittenScripts {
  dir: string;
  array: string;
  merge: string;
  submit: string;
}

/** Writes array.sh, merge.sh and submit.sh into `dir` (logs go to `dir`/logs). */
export async function writeSlurmScripts(
  dir: string,
  scripts: SlurmScripts,
): Promise<WrittenScripts> {
  await Deno.mkdir(`${dir}/logs`, { recursive: true });
  const out = {
    dir,
    array: `${dir}/array.sh`,
    merge: `${dir}/merge.sh`,
    submit: `${dir}/submit.sh`,
  };
  await Deno.writeTextFile(out.array, scripts.array, { mode: 0o755 });
  await Deno.writeTextFile(out.merge, scripts.merge, { mode: 0o755 });
  await Deno.writeTextFile(out.submit, scripts.submit, { mode: 0o755 });
  return out;
}

async function sbatch(args: string[], sbatchPath: string): Promise<string> {
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command(sbatchPath, {
      args: ["--parsable", ...args],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
  } catch (e) {
    throw new Error(
      `slurm: cannot run ${sbatchPath} (${(e as Error).message}); is Slurm installed here?`,
    );
  }
  const text = new TextDecoder();
  if (!result.success) {
    throw new Error(`slurm: sbatch ${args.join(" ")} failed: ${text.decode(result.stderr).trim()}`);
  }
  // --parsable prints "jobid" or "jobid;cluster".
  const id = text.decode(result.stdout).trim().split(";")[0];
  if (!/^[0-9]+$/.test(id)) throw new Error(`slurm: sbatch printed '${id}', not a job id`);
  return id;
}

/** Submits the array, then the merge with --dependency=afterok on it; returns both job ids. */
export async function submitSlurm(
  written: WrittenScripts,
  sbatchPath = "sbatch",
): Promise<{ array: string; merge: string }> {
  const array = await sbatch([written.array], sbatchPath);
  const merge = await sbatch([`--dependency=afterok:${array}`, written.merge], sbatchPath);
  return { array, merge };
}
