/**
 * What both launchers share: the command one shard (or the merge) runs, built so that the
 * engine's environment picks the shard (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX) while
 * the shard count is explicit, and the merge waits for nothing but the shards' markers.
 */

/** Where and how the worker processes run a task's step. */
export interface WorkerSpec {
  /** Deno executable on the workers. */
  deno: string;
  /** The repository's cli/launch.ts and deno.json, as paths the workers see. */
  launchScript: string;
  denoConfig: string;
  /** Folder the workers start in (task file and relative output paths resolve from it). */
  workdir: string;
  /** Task file, as the workers see it. */
  task: string;
  step: string;
  shards: number;
  /** Output folder (must be on the filesystem every worker and the merge share). */
  outputs?: string;
  /** `--set key=value` overrides, passed through unchanged. */
  set?: readonly string[];
  device?: string;
}

function common(w: WorkerSpec): string[] {
  return [
    w.task,
    "--step",
    w.step,
    "--shards",
    String(w.shards),
    ...(w.outputs !== undefined ? ["--outputs", w.outputs] : []),
    ...(w.device !== undefined ? ["--device", w.device] : []),
    ...(w.set ?? []).flatMap((s) => ["--set", s]),
  ];
}

/** argv of one shard's process; the shard index comes from the engine's environment. */
export function shardCommand(w: WorkerSpec): string[] {
  return [w.deno, "run", "-A", "--config", w.denoConfig, w.launchScript, "run", ...common(w)];
}

/** argv of the merge; `waitSeconds` > 0 lets it start before the shards finish (Kubernetes). */
export function mergeCommand(w: WorkerSpec, waitSeconds = 0): string[] {
  return [
    w.deno,
    "run",
    "-A",
    "--config",
    w.denoConfig,
    w.launchScript,
    "merge",
    ...common(w),
    ...(waitSeconds > 0 ? ["--wait", String(waitSeconds)] : []),
  ];
}

/** A word for a POSIX shell: bare when safe, else single-quoted. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

export function shellLine(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}

/** A name Slurm and Kubernetes both accept: lowercase letters, digits and '-', at most 52 chars. */
export function jobName(task: string, step: string): string {
  const clean = `digit-${task}-${step}`.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(
    /-+/g,
    "-",
  );
  // 52 leaves room for the "-merge" suffix and Kubernetes' pod-name suffixes (63 in all).
  return clean.slice(0, 52).replace(/-+$/, "");
}
