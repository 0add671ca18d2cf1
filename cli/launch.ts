/**
 * `deno task launch`: sharded steps on Slurm or Kubernetes, and the two commands their
 * workers run.
 *
 *   launch slurm TASK --step NAME --shards N [--partition P --gpus-per-task G --time T ...] [--submit]
 *   launch k8s   TASK --step NAME --shards N [--image I --claim PVC --mount-path /shared ...]
 *   launch run   TASK --step NAME [--shard i/N | --shards N]   one shard (index from --shard,
 *                                 SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX)
 *   launch merge TASK --step NAME --shards N [--wait SECONDS]  combine finished shards
 *
 * Exit codes as the main CLI: 0 ok, 1 failure, 2 usage or config error (the Slurm script does
 * not retry those).
 */

import { parseArgs } from "node:util";
import { ConfigError, parseOverrides } from "../core/config.ts";
import { k8sManifests } from "../core/launch/k8s.ts";
import { slurmScripts, submitSlurm, writeSlurmScripts } from "../core/launch/slurm.ts";
import { type DeviceChoice, DEVICES, loadPlugins, Registry } from "../core/registry.ts";
import { mergeShards, resolveShard, runShard, shardableStep, ShardError } from "../core/shard.ts";
import { joinPath, loadTask, type TaskPlan } from "../core/tasks.ts";
import { stringify } from "yaml";
import { UsageError } from "./args.ts";
import { consoleLogger } from "./log.ts";
import { loadBuiltinPlugins } from "./main.ts";

const OPTIONS = {
  help: { type: "boolean", short: "h" },
  step: { type: "string" },
  shard: { type: "string" },
  shards: { type: "string" },
  set: { type: "string", multiple: true },
  outputs: { type: "string", short: "o" },
  device: { type: "string" },
  plugin: { type: "string", multiple: true },
  force: { type: "boolean" },
  wait: { type: "string" },
  verbose: { type: "boolean", short: "v" },
  // slurm
  partition: { type: "string" },
  "gpus-per-task": { type: "string" },
  "cpus-per-task": { type: "string" },
  mem: { type: "string" },
  time: { type: "string" },
  account: { type: "string" },
  "max-parallel": { type: "string" },
  retries: { type: "string" },
  submit: { type: "boolean" },
  sbatch: { type: "string" },
  // both launchers
  dir: { type: "string" },
  deno: { type: "string" },
  workdir: { type: "string" },
  repo: { type: "string" },
  // k8s
  image: { type: "string" },
  namespace: { type: "string" },
  parallelism: { type: "string" },
  claim: { type: "string" },
  "mount-path": { type: "string" },
  gpus: { type: "string" },
  cpu: { type: "string" },
  memory: { type: "string" },
} as const;

type Values = ReturnType<typeof parse>["values"];

const HELP = `deno task launch <slurm|k8s|run|merge> TASK --step NAME [options]

  slurm TASK --step NAME --shards N   write (--submit: and submit) an sbatch array of N shards + a merge job
      --partition P --gpus-per-task G --cpus-per-task C --mem 16G --time 02:00:00 --account A
      --max-parallel M (array %M)  --retries R (extra attempts of a dead shard, default 2)
      --dir DIR (scripts; default <step folder>/launch/slurm-N)  --sbatch PATH
  k8s TASK --step NAME --shards N     write an Indexed Job + merge Job manifest (YAML)
      --image IMAGE (default digit-ts:latest)  --claim PVC (default digit-shared)
      --mount-path /shared (default)  --parallelism P  --retries R  --gpus G --cpu C --memory M
      --namespace NS  --dir DIR (default <step folder>/launch)
      The task file and --outputs must lie under --mount-path (or in the image) as the pods see it.
  run TASK --step NAME [--shard i/N | --shards N]   run one shard; without --shard the index comes
      from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX (count: --shards, DIGIT_SHARDS, Slurm's)
  merge TASK --step NAME --shards N [--wait SECONDS]  merge when every shard is done, else name
      the missing or partial ones (exit 1); --wait polls for them first

  Common: --set key=value (as \`deno task run\`), --outputs DIR, --device cpu|webgpu|auto, --plugin P
  Workers: --deno PATH (default this Deno), --workdir DIR (default the current folder),
      --repo DIR (the repository as workers see it; default this one)
`;

function parse(args: string[]) {
  try {
    return parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError(
      (e as Error).message.replace(/\. To specify a positional argument.*$/s, ""),
    );
  }
}

function positiveInt(v: string | undefined, what: string, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = /^[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${what}: expected a whole number >= ${min}, got '${v}'`);
  }
  return n;
}

function absolute(path: string): string {
  return joinPath(Deno.cwd(), path);
}

async function plan(task: string, values: Values, registry: Registry): Promise<TaskPlan> {
  if (values.device !== undefined && !(DEVICES as readonly string[]).includes(values.device)) {
    throw new UsageError(`--device: expected one of ${DEVICES.join(", ")}, got '${values.device}'`);
  }
  return await loadTask(task, {
    registry,
    overrides: parseOverrides(values.set ?? []),
    outputDir: values.outputs,
    device: values.device as DeviceChoice | undefined,
  });
}

export interface LaunchOptions {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  signal?: AbortSignal;
}

/** Runs `launch` with `args`; returns the exit code. */
export async function launch(args: string[], options: LaunchOptions = {}): Promise<number> {
  const enc = new TextEncoder();
  const out = options.stdout ?? ((t: string) => Deno.stdout.writeSync(enc.encode(t)));
  const err = options.stderr ?? ((t: string) => Deno.stderr.writeSync(enc.encode(t)));
  const controller = new AbortController();
  const signal = options.signal ?? controller.signal;
  const onTerm = () => controller.abort();
  // Slurm (scancel, time limit) and Kubernetes stop a worker with SIGTERM: stop cleanly.
  if (options.signal === undefined) Deno.addSignalListener("SIGTERM", onTerm);
  let verbose = false;
  try {
    const { values, positionals } = parse(args);
    verbose = values.verbose ?? false;
    const [command, task, ...rest] = positionals;
    if (values.help || command === undefined || command === "help") {
      out(HELP);
      return 0;
    }
    if (!["slurm", "k8s", "run", "merge"].includes(command)) {
      throw new UsageError(`unknown launch command '${command}' (slurm, k8s, run, merge)`);
    }
    if (task === undefined || rest.length > 0) {
      throw new UsageError(
        `${command}: expected one task file, got ${positionals.slice(1).join(" ") || "nothing"}`,
      );
    }
    if (values.step === undefined) throw new UsageError(`${command}: --step NAME is required`);
    const log = consoleLogger(err, { verbose, tty: false });
    const registry = new Registry();
    const builtins = await loadBuiltinPlugins(registry);
    if (builtins.note) log.warn(builtins.note);
    if (values.plugin) await loadPlugins(registry, values.plugin, "./command-line", "--plugin");
    const p = await plan(task, values, registry);
    const step = shardableStep(p, values.step);
    const shards = positiveInt(values.shards, "shards");
    const opts = { registry, log, signal, force: values.force ?? false };

    if (command === "run") {
      const shard = resolveShard({ flag: values.shard, count: shards });
      if (shard === undefined) {
        throw new UsageError(
          "run: no shard given: pass --shard i/N, or run under a Slurm array or an Indexed Job",
        );
      }
      await runShard(p, step.name, shard, opts);
      return 0;
    }
    if (shards === undefined) throw new UsageError(`${command}: --shards N is required`);
    if (command === "merge") {
      await mergeShards(p, step.name, shards, {
        ...opts,
        waitSeconds: positiveInt(values.wait, "wait", 0) ?? 0,
      });
      return 0;
    }

    const repo = values.repo ??
      decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
    const worker = {
      deno: values.deno ?? Deno.execPath(),
      launchScript: `${repo}/cli/launch.ts`,
      denoConfig: `${repo}/deno.json`,
      workdir: values.workdir ?? Deno.cwd(),
      task,
      step: step.name,
      shards,
      outputs: values.outputs,
      set: values.set,
      device: values.device,
    };
    if (command === "slurm") {
      const dir = absolute(values.dir ?? `${step.dir}/launch/slurm-${shards}`);
      const scripts = slurmScripts({
        ...worker,
        taskName: p.name,
        partition: values.partition,
        gpusPerTask: positiveInt(values["gpus-per-task"], "gpus-per-task"),
        cpusPerTask: positiveInt(values["cpus-per-task"], "cpus-per-task"),
        mem: values.mem,
        time: values.time,
        account: values.account,
        maxParallel: positiveInt(values["max-parallel"], "max-parallel"),
        retries: positiveInt(values.retries, "retries", 0),
        logDir: `${dir}/logs`,
      });
      const written = await writeSlurmScripts(dir, scripts);
      out(`wrote ${written.array}, ${written.merge} and ${written.submit}\n`);
      if (values.submit) {
        const ids = await submitSlurm(written, values.sbatch ?? "sbatch");
        out(
          `submitted array job ${ids.array} (${shards} tasks) and merge job ${ids.merge} (afterok:${ids.array})\n`,
        );
        out(`array=${ids.array} merge=${ids.merge}\n`);
      } else {
        out(`submit with: bash ${written.submit}\n`);
      }
      return 0;
    }
    // k8s
    const manifests = k8sManifests({
      ...worker,
      taskName: p.name,
      image: values.image ?? "digit-ts:latest",
      namespace: values.namespace,
      parallelism: positiveInt(values.parallelism, "parallelism"),
      retries: positiveInt(values.retries, "retries", 0),
      claimName: values.claim ?? "digit-shared",
      mountPath: values["mount-path"] ?? "/shared",
      gpusPerPod: positiveInt(values.gpus, "gpus"),
      cpu: values.cpu,
      memory: values.memory,
    });
    const dir = absolute(values.dir ?? `${step.dir}/launch`);
    await Deno.mkdir(dir, { recursive: true });
    const file = `${dir}/k8s-${shards}.yaml`;
    await Deno.writeTextFile(
      file,
      `${stringify(manifests.shards)}---\n${stringify(manifests.merge)}`,
    );
    out(`wrote ${file}\napply with: kubectl apply -f ${file}\n`);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      err(`error: ${e.message}\n(see deno task launch --help)\n`);
      return 2;
    }
    if (e instanceof ConfigError) {
      for (const line of e.problems) err(`error: ${line}\n`);
      return 2;
    }
    if (e instanceof ShardError && e.usage) {
      err(`error: ${e.message}\n`);
      return 2;
    }
    const error = e instanceof Error ? e : new Error(String(e));
    err(`error: ${error.message}\n`);
    if (verbose) err(`${error.stack}\n`);
    return signal.aborted ? 130 : 1;
  } finally {
    if (options.signal === undefined) Deno.removeSignalListener("SIGTERM", onTerm);
  }
}

if (import.meta.main) {
  Deno.exit(await launch(Deno.args));
}
