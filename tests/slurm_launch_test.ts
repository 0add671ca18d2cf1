/**
 * A real single-node Slurm cluster (Debian's slurm-wlm + munge), started in a temp folder
 * for this test and stopped after it: the tokenizer steps and stage-1 sampling of a small
 * task are submitted through `deno task launch slurm --submit` as 4-task arrays, each with a
 * merge job (--dependency=afterok). One array task's process is killed mid-way; the array
 * task's retry redoes that shard and the job completes. The merged outputs are compared byte
 * for byte with a single-process run.
 *
 * Skips (with a message) when slurmctld, slurmd or munged are missing or this is not root;
 * when they are present but the cluster does not come up, it says why and passes without
 * checking anything else, since that is the machine's state, not the code's.
 */

import { expect, it } from "./lib/test.ts";
import { assertSameStepFiles, REPO, runSingle, STEPS, writeFixture } from "./shard_fixture_test.ts";
import { SHARD_MARKER, SHARD_RUNNING, shardName } from "../core/shard.ts";

const SHARDS = 4;

function which(cmd: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/sbin"])) {
    try {
      if (Deno.statSync(`${dir}/${cmd}`).isFile) return true;
    } catch { /* not here */ }
  }
  return false;
}

const missing = ["slurmctld", "slurmd", "munged", "sbatch", "scontrol"].filter((c) => !which(c));
const isRoot = Deno.uid() === 0;
const skipWhy = missing.length > 0
  ? `Slurm/munge not installed (missing ${missing.join(", ")}; apt-get install slurm-wlm munge)`
  : !isRoot
  ? "not root (the one-node cluster runs its daemons as root)"
  : undefined;
if (skipWhy) console.log(`slurm_launch_test: SKIPPED: ${skipWhy}`);

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

interface Cluster {
  env: Record<string, string>;
  daemons: Deno.ChildProcess[];
}

async function sh(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  cwd?: string,
): Promise<Deno.CommandOutput> {
  return await new Deno.Command(cmd, { args, env, cwd, stdout: "piped", stderr: "piped" }).output();
}

/** munged, slurmctld and slurmd in the foreground (so this test owns their pids), state in `dir`. */
async function startCluster(dir: string, started: Deno.ChildProcess[]): Promise<Cluster | string> {
  await Deno.mkdir(`${dir}/munge`, { mode: 0o700 });
  await Deno.mkdir(`${dir}/state`);
  await Deno.mkdir(`${dir}/spool`);
  const key = crypto.getRandomValues(new Uint8Array(1024));
  await Deno.writeFile(`${dir}/munge/munge.key`, key, { mode: 0o600 });
  const socket = `${dir}/munge/munge.sock`;
  const spawn = (cmd: string, args: string[], env: Record<string, string> = {}) => {
    const child = new Deno.Command(cmd, { args, env, stdout: "null", stderr: "piped" }).spawn();
    started.push(child);
    return child;
  };
  spawn("munged", [
    "-F",
    "--force",
    `--key-file=${dir}/munge/munge.key`,
    `--socket=${socket}`,
    `--pid-file=${dir}/munge/munged.pid`,
    `--log-file=${dir}/munge/munged.log`,
    `--seed-file=${dir}/munge/seed`,
  ]);
  for (let i = 0; i < 50 && !(await Deno.stat(socket).then(() => true, () => false)); i++) {
    await sleep(100);
  }
  const host = Deno.hostname();
  const conf = `${dir}/slurm.conf`;
  await Deno.writeTextFile(
    conf,
    [
      `ClusterName=digit${crypto.getRandomValues(new Uint32Array(1))[0] % 100000}`,
      `SlurmctldHost=${host}`,
      "SlurmUser=root",
      "SlurmdUser=root",
      "AuthType=auth/munge",
      "CredType=cred/munge",
      `AuthInfo=socket=${socket}`,
      `SlurmctldPort=${freePort()}`,
      `SlurmdPort=${freePort()}`,
      `StateSaveLocation=${dir}/state`,
      `SlurmdSpoolDir=${dir}/spool`,
      `SlurmctldPidFile=${dir}/slurmctld.pid`,
      `SlurmdPidFile=${dir}/slurmd.pid`,
      `SlurmctldLogFile=${dir}/slurmctld.log`,
      `SlurmdLogFile=${dir}/slurmd.log`,
      "ProctrackType=proctrack/linuxproc",
      "TaskPlugin=task/none",
      "SchedulerType=sched/backfill",
      "SelectType=select/cons_tres",
      "SelectTypeParameters=CR_Core",
      "ReturnToService=2",
      "MpiDefault=none",
      "JobAcctGatherType=jobacct_gather/none",
      "AccountingStorageType=accounting_storage/none",
      // Scheduling passes every second, so dependent jobs start without the default delays.
      "SchedulerParameters=sched_interval=1,bf_interval=1",
      `NodeName=${host} CPUs=${navigator.hardwareConcurrency} RealMemory=1000 State=UNKNOWN`,
      `PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP`,
      "",
    ].join("\n"),
  );
  const env = { SLURM_CONF: conf };
  spawn("slurmctld", ["-D", "-f", conf], env);
  spawn("slurmd", ["-D", "-f", conf], env);
  for (let i = 0; i < 100; i++) {
    const s = await sh("sinfo", ["-h", "-o", "%t"], env).catch(() => undefined);
    if (s?.success && /^idle/.test(decode(s.stdout).trim())) return { env, daemons: started };
    await sleep(200);
  }
  const log = await Deno.readTextFile(`${dir}/slurmctld.log`).catch(() => "(no slurmctld log)");
  return `the node did not become idle in 20 s; slurmctld log tail: ${
    log.split("\n").slice(-5).join(" | ")
  }`;
}

async function stopAll(children: Deno.ChildProcess[]): Promise<void> {
  // slurmd first, then slurmctld, then munged: the reverse of the start.
  for (const child of [...children].reverse()) {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    const done = await Promise.race([
      child.status.then(() => true),
      sleep(10_000).then(() => false),
    ]);
    if (!done) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone meanwhile */ }
      await child.status;
    }
    await child.stderr.cancel().catch(() => {});
  }
}

async function jobState(
  id: string,
  env: Record<string, string>,
): Promise<{ state: string; reason: string }[]> {
  const o = await sh("scontrol", ["show", "job", "-o", id], env);
  return decode(o.stdout).trim().split("\n").filter((l) => l).map((l) => ({
    state: /JobState=(\S+)/.exec(l)?.[1] ?? "?",
    reason: /Reason=(\S+)/.exec(l)?.[1] ?? "?",
  }));
}

it.skipIf(skipWhy !== undefined)(
  "slurm: 4-task arrays + afterok merges of dump-features, tokenize-dataset, sample-stage1; a killed task retries; == one process",
  async () => {
    const root = await Deno.makeTempDir({ prefix: "digit-slurm-" });
    const daemons: Deno.ChildProcess[] = [];
    const jobs: string[] = [];
    let cluster: Cluster | string | undefined;
    try {
      cluster = await startCluster(`${root}`, daemons);
      if (typeof cluster === "string") {
        console.log(`slurm_launch_test: SKIPPED: the Slurm cluster could not start: ${cluster}`);
        return;
      }
      const env = cluster.env;
      const task = await writeFixture(root);
      const out = `${root}/out`;
      const submitted: Record<string, { array: string; merge: string }> = {};
      for (const step of STEPS) {
        const r = await sh(
          Deno.execPath(),
          [
            "task",
            "--quiet",
            "--config",
            `${REPO}/deno.json`,
            "launch",
            "slurm",
            task,
            "--step",
            step,
            "--shards",
            String(SHARDS),
            "--outputs",
            out,
            "--retries",
            "2",
            "--time",
            "00:10:00",
            "--submit",
          ],
          env,
          REPO,
        );
        const text = decode(r.stdout) + decode(r.stderr);
        expect(r.success, `launch slurm ${step}: ${text}`).toBeTruthy();
        const m = /array=(\d+) merge=(\d+)/.exec(text);
        expect(m, text).toBeTruthy();
        submitted[step] = { array: m![1], merge: m![2] };
        jobs.push(m![1], m![2]);
        const script = await Deno.readTextFile(`${out}/${step}/launch/slurm-${SHARDS}/array.sh`);
        expect(script).toMatch(new RegExp(`#SBATCH --array=0-${SHARDS - 1}\\n`));
      }
      const single = await runSingle(task, `${root}/single`);

      // Kill one shard's process mid-way: freeze it as soon as it runs, make sure it has
      // not finished (no marker), then SIGKILL it. Candidates in turn, in case one was too quick.
      let victim: { step: string; index: number } | undefined;
      const candidates = [["semantic", 2], ["semantic", 3], ["tokens", 3], ["features", 3], [
        "semantic",
        1,
      ]] as const;
      const deadline = Date.now() + 60_000;
      while (victim === undefined && Date.now() < deadline) {
        for (const [step, index] of candidates) {
          const dir = `${out}/${step}/shards/${shardName({ index, count: SHARDS })}`;
          const running = await Deno.readTextFile(`${dir}/${SHARD_RUNNING}`).then(
            JSON.parse,
            () => undefined,
          );
          if (running?.attempt !== 1) continue;
          try {
            Deno.kill(running.pid, "SIGSTOP");
          } catch {
            continue; // already exited
          }
          if (await Deno.stat(`${dir}/${SHARD_MARKER}`).then(() => true, () => false)) {
            Deno.kill(running.pid, "SIGCONT");
            continue;
          }
          Deno.kill(running.pid, "SIGKILL");
          victim = { step, index };
          break;
        }
        await sleep(victim ? 0 : 10);
      }
      expect(victim, "no array task could be caught mid-way to kill it").toBeTruthy();

      console.log(
        `killed ${victim!.step} shard ${victim!.index} mid-way; jobs ${JSON.stringify(submitted)}`,
      );
      // Wait for the three merge jobs.
      const finalStates: Record<string, string> = {};
      const waitUntil = Date.now() + 100_000;
      for (const step of STEPS) {
        for (;;) {
          const [s] = await jobState(submitted[step].merge, env);
          if (
            s &&
            (/^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY)$/.test(s.state) ||
              s.reason === "DependencyNeverSatisfied")
          ) {
            finalStates[step] = `${s.state} (${s.reason})`;
            break;
          }
          expect(Date.now(), `merge job of ${step} still ${s?.state} (${s?.reason}) after 100 s`)
            .toBeLessThan(waitUntil);
          await sleep(500);
        }
      }
      for (const step of STEPS) {
        const logs = `${out}/${step}/launch/slurm-${SHARDS}/logs`;
        const arrays = await jobState(submitted[step].array, env);
        expect(
          finalStates[step].split(" ")[0],
          `${step}: merge ${finalStates[step]}; array ${JSON.stringify(arrays)}`,
        ).toBe("COMPLETED");
        expect(arrays.length).toBe(SHARDS);
        for (const a of arrays) expect(a.state).toBe("COMPLETED");
        await assertSameStepFiles(single.steps.find((s) => s.name === step)!.dir, `${out}/${step}`);
        if (step === victim!.step) {
          // The killed attempt failed with SIGKILL's status; the retry redid the shard.
          const log = await Deno.readTextFile(
            `${logs}/${submitted[step].array}_${victim!.index}.out`,
          );
          expect(log).toMatch(/attempt 1 of 3 failed with status 137/);
          const dir = `${out}/${step}/shards/${shardName({ index: victim!.index, count: SHARDS })}`;
          const marker = JSON.parse(await Deno.readTextFile(`${dir}/${SHARD_MARKER}`));
          expect(marker.attempt, "the shard was finished by its second attempt").toBe(2);
        }
      }
    } finally {
      if (cluster !== undefined && typeof cluster !== "string") {
        for (const id of jobs) await sh("scancel", [id], cluster.env).catch(() => {});
        for (let i = 0; i < 50; i++) {
          const q = await sh("squeue", ["-h", "-o", "%i"], cluster.env).catch(() => undefined);
          if (!q?.success || decode(q.stdout).trim() === "") break;
          await sleep(200);
        }
      }
      await stopAll(daemons);
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
);
