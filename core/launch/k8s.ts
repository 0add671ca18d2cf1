/**
 * Kubernetes launcher: an Indexed Job (one pod per shard index, `completionMode: Indexed`)
 * plus a merge Job, both mounting one shared volume (a PersistentVolumeClaim, ReadWriteMany)
 * for the task's outputs. Typed against the API's own types (npm `kubernetes-types`), so a
 * misspelt or misplaced field fails `deno check`.
 *
 * The shard index reaches the worker as JOB_COMPLETION_INDEX, which Kubernetes sets in
 * Indexed Jobs; it is also set explicitly from the pod's job-completion-index annotation,
 * the documented way for clusters older than 1.22's automatic variable. The count is in
 * the command (--shards) and in DIGIT_SHARDS. Kubernetes has no job dependencies, so the
 * merge Job may be applied together with the Indexed Job: it polls the shards' markers
 * (`merge --wait`) and merges when all are done, or fails naming the missing ones.
 */

import type { Job } from "kubernetes-types/batch/v1.d.ts";
import type {
  Container,
  EnvVar,
  PodSpec,
  ResourceRequirements,
  Volume,
  VolumeMount,
} from "kubernetes-types/core/v1.d.ts";
import { jobName, mergeCommand, shardCommand, type WorkerSpec } from "./common.ts";

export interface K8sOptions extends WorkerSpec {
  taskName: string;
  image: string;
  namespace?: string;
  /** Pods running at once (default: all shards). */
  parallelism?: number;
  /** Retries of each index (`backoffLimitPerIndex`, Kubernetes >= 1.29; default 2). */
  retries?: number;
  /** The shared volume: a PersistentVolumeClaim, mounted at `mountPath` in every pod. */
  claimName: string;
  mountPath: string;
  gpusPerPod?: number;
  cpu?: string;
  memory?: string;
  /** How long the merge Job waits for the shards (seconds; default 7 days). */
  mergeWaitSeconds?: number;
}

export interface K8sManifests {
  shards: Job;
  merge: Job;
}

const VOLUME = "digit-shared";
export const INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index";

function resources(o: K8sOptions, gpus: boolean): ResourceRequirements | undefined {
  const limits: Record<string, string> = {};
  const requests: Record<string, string> = {};
  if (gpus && o.gpusPerPod) limits["nvidia.com/gpu"] = String(o.gpusPerPod);
  if (o.cpu) requests.cpu = o.cpu;
  if (o.memory) (requests.memory = o.memory, limits.memory = o.memory);
  if (Object.keys(limits).length === 0 && Object.keys(requests).length === 0) return undefined;
  return { limits, requests };
}

function podSpec(o: K8sOptions, name: string, command: string[], env: EnvVar[]): PodSpec {
  const mount: VolumeMount = { name: VOLUME, mountPath: o.mountPath };
  const volume: Volume = { name: VOLUME, persistentVolumeClaim: { claimName: o.claimName } };
  const container: Container = {
    name,
    image: o.image,
    command: command.slice(0, 1),
    args: command.slice(1),
    workingDir: o.workdir,
    env,
    volumeMounts: [mount],
  };
  // The merge only moves bytes: it gets no GPU.
  const res = resources(o, name === "shard");
  if (res) container.resources = res;
  // Retries are the Job's business (a fresh pod per attempt), not the kubelet's.
  return { restartPolicy: "Never", containers: [container], volumes: [volume] };
}

export function k8sManifests(o: K8sOptions): K8sManifests {
  if (!Number.isInteger(o.shards) || o.shards < 1) {
    throw new Error(`k8s: --shards must be >= 1, got ${o.shards}`);
  }
  if (!o.mountPath.startsWith("/")) {
    throw new Error(`k8s: --mount-path must be absolute, got '${o.mountPath}'`);
  }
  const name = jobName(o.taskName, o.step);
  const labels = {
    "app.kubernetes.io/name": "digit-ts",
    "digit-ts/task": jobName(o.taskName, ""),
    "digit-ts/step": name,
  };
  const retries = o.retries ?? 2;
  const shardEnv: EnvVar[] = [
    {
      name: "JOB_COMPLETION_INDEX",
      valueFrom: { fieldRef: { fieldPath: `metadata.annotations['${INDEX_ANNOTATION}']` } },
    },
    { name: "DIGIT_SHARDS", value: String(o.shards) },
  ];
  const shards: Job = {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name, labels, ...(o.namespace ? { namespace: o.namespace } : {}) },
    spec: {
      completionMode: "Indexed",
      completions: o.shards,
      parallelism: Math.min(o.parallelism ?? o.shards, o.shards),
      backoffLimitPerIndex: retries,
      // With per-index retries the Job-wide limit only caps the total: one index's failures
      // must not stop the others.
      backoffLimit: o.shards * (retries + 1),
      template: { metadata: { labels }, spec: podSpec(o, "shard", shardCommand(o), shardEnv) },
    },
  };
  const mergeName = `${name}-merge`;
  const merge: Job = {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: mergeName, labels, ...(o.namespace ? { namespace: o.namespace } : {}) },
    spec: {
      completions: 1,
      parallelism: 1,
      backoffLimit: retries,
      template: {
        metadata: { labels },
        spec: podSpec(o, "merge", mergeCommand(o, o.mergeWaitSeconds ?? 7 * 24 * 3600), [
          { name: "DIGIT_SHARDS", value: String(o.shards) },
        ]),
      },
    },
  };
  return { shards, merge };
}
