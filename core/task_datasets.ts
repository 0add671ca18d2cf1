/**
 * The dataset specs of a task, checked while the task is planned (before any step runs):
 * a misspelt `kind` gets a did-you-mean, and the files and folders a spec names must exist,
 * so a typo in a path fails in milliseconds with exit 2 rather than hours into a run.
 *
 * A dataset spec is an object with a `kind` under a params key ending in `dataset` or named
 * `held_out` (or its `source`, as `train-vqgan` nests it). Paths inside the task's output
 * folder, or inside a step's outputs, are made by earlier steps and are not checked.
 */

import { didYouMean, type KeyPath, type Problem } from "./config.ts";

/**
 * The kinds core/data's `openDataset` knows, with the path fields each needs (required) and
 * may name (optional). tests/task_datasets_test.ts keeps this in step with core/data.
 */
export const DATASET_KINDS: Readonly<
  Record<string, { required: readonly string[]; optional?: readonly string[] }>
> = {
  shapes: { required: [] },
  imagefolder: { required: ["root"] },
  "fashion-mnist": { required: [], optional: ["dir"] },
  idx: { required: ["images", "labels"] },
  cifar10: { required: ["dir"] },
  list: { required: ["dir", "tsv"] },
};

/** Params keys that hold a dataset spec. */
const DATASET_KEY = /(^|_)dataset$|^held_out$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The problems of one spec at `path`; `made(p)` is true for paths that steps will write. */
function specProblems(
  spec: Record<string, unknown>,
  path: KeyPath,
  made: (p: string) => boolean,
): Problem[] {
  const kind = spec.kind;
  if (typeof kind !== "string") return [];
  const fields = DATASET_KINDS[kind];
  const names = Object.keys(DATASET_KINDS);
  if (fields === undefined) {
    return [{
      path: [...path, "kind"],
      message: `unknown dataset kind '${kind}'${didYouMean(kind, names)} (kinds: ${
        names.join(", ")
      })`,
    }];
  }
  const problems: Problem[] = [];
  for (const key of [...fields.required, ...(fields.optional ?? [])]) {
    const value = spec[key];
    if (value === undefined) {
      if (fields.required.includes(key)) {
        problems.push({ path, message: `dataset kind '${kind}' needs '${key}' (a path)` });
      }
      continue;
    }
    if (typeof value !== "string" || made(value)) continue;
    let exists = true;
    try {
      Deno.statSync(value);
    } catch {
      exists = false;
    }
    if (!exists) problems.push({ path: [...path, key], message: `'${value}' does not exist` });
  }
  return problems;
}

/**
 * Problems of every dataset spec in a step's (resolved) params. `madeUnder` lists folders and
 * files that steps of the task write: paths at or under them are not checked.
 */
export function datasetProblems(
  params: unknown,
  path: KeyPath,
  madeUnder: readonly string[],
): Problem[] {
  const plain = (p: string) => p.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
  const roots = madeUnder.map(plain);
  const made = (p: string) => roots.some((r) => plain(p) === r || plain(p).startsWith(`${r}/`));
  const problems: Problem[] = [];
  const visit = (value: unknown, at: KeyPath, key: string | number | null) => {
    if (Array.isArray(value)) {
      value.forEach((v, i) => visit(v, [...at, i], i));
      return;
    }
    if (!isObject(value)) return;
    if (typeof key === "string" && DATASET_KEY.test(key)) {
      const source = isObject(value.source) ? value.source : null;
      if (source) problems.push(...specProblems(source, [...at, "source"], made));
      else problems.push(...specProblems(value, at, made));
      return;
    }
    for (const [k, v] of Object.entries(value)) visit(v, [...at, k], k);
  };
  visit(params, path, null);
  return problems;
}
