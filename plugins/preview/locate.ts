/**
 * Finding the three trained parts of a DiGIT pipeline in an experiment folder.
 *
 * Each training step leaves a marker beside its `checkpoints/` folder:
 *   stage 1 (train-stage1)  model.json   (the Stage1Config)
 *   stage 2 (train-stage2)  stage2.json  ({ config: Stage2Config })
 *   VQGAN   (train-vqgan)   vqgan.json   ({ kind: "vqgan", config })
 * so a folder tree is searched for those markers rather than for step names, which the
 * task file is free to choose. When a part appears more than once, the most recently
 * saved one wins (and the others are named in the log).
 */

import { isUntrained } from "../pipeline/sample.ts";
import { readYamlWithExtends } from "../../core/config.ts";
import { joinPath } from "../../core/tasks.ts";

export type PartName = "stage1" | "stage2" | "vqgan";
export const PART_NAMES: readonly PartName[] = ["stage1", "stage2", "vqgan"];

/** The marker file each part's training writes beside its checkpoints. */
export const MARKERS: Record<PartName, string> = {
  stage1: "model.json",
  stage2: "stage2.json",
  vqgan: "vqgan.json",
};

export const PART_LABELS: Record<PartName, string> = {
  stage1: "stage 1",
  stage2: "stage 2",
  vqgan: "VQGAN",
};

/** Folders the search does not enter: outputs of sampling and data, never a model. */
const SKIP = new Set(["checkpoints", "results", "samples", "images", "features", "node_modules"]);

/** The repository's demo task, whose outputs are the default place to look. */
export const DEMO_TASK = new URL("../../tasks/demo.yaml", import.meta.url);

/** A part found on disk: its experiment folder and when its checkpoint was saved. */
export interface FoundPart {
  dir: string;
  /** Milliseconds since the epoch of the checkpoint marker; 0 when unknown. */
  saved: number;
}

export type FoundParts = Record<PartName, FoundPart[]>;

async function stat(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch {
    return null;
  }
}

/** The output folder of the demo task (its `outputs:`, else `outputs/<name>`), cwd-relative. */
export async function demoOutputDir(task: URL = DEMO_TASK): Promise<string | null> {
  const path = decodeURIComponent(task.pathname);
  if (!(await stat(path))) return null;
  const doc = await readYamlWithExtends(path) as { name?: unknown; outputs?: unknown };
  if (typeof doc?.outputs === "string" && doc.outputs !== "") return doc.outputs;
  if (typeof doc?.name === "string" && doc.name !== "") return `outputs/${doc.name}`;
  return null;
}

/** The checkpoint marker of an experiment folder, `<dir>/checkpoints/<which>.json`, if saved. */
async function checkpointTime(dir: string, which: string): Promise<number | null> {
  const info = await stat(`${dir}/checkpoints/${which}.json`);
  return info ? (info.mtime?.getTime() ?? 0) : null;
}

/**
 * Every trained part under `root` (down to `depth` folders), newest first. Parts whose
 * marker exists but whose `which` checkpoint does not (training never saved) are left out.
 */
export async function findParts(root: string, which = "last", depth = 4): Promise<FoundParts> {
  const found: FoundParts = { stage1: [], stage2: [], vqgan: [] };
  async function visit(dir: string, level: number): Promise<void> {
    const subdirs: string[] = [];
    const files = new Set<string>();
    try {
      for await (const e of Deno.readDir(dir)) {
        if (e.isDirectory && !SKIP.has(e.name) && !e.name.startsWith(".")) subdirs.push(e.name);
        else if (e.isFile) files.add(e.name);
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return;
      throw e;
    }
    for (const part of PART_NAMES) {
      if (!files.has(MARKERS[part])) continue;
      const saved = await checkpointTime(dir, which);
      // The demo's never-trained baseline copies are newer than the trained models.
      if (saved !== null && !(await isUntrained(dir, which))) found[part].push({ dir, saved });
    }
    if (level < depth) {
      for (const name of subdirs.sort()) await visit(joinPath(dir, name), level + 1);
    }
  }
  await visit(root, 0);
  for (const part of PART_NAMES) {
    found[part].sort((a, b) => b.saved - a.saved || a.dir.localeCompare(b.dir));
  }
  return found;
}

/**
 * What to load for a part given by the user: an experiment folder (has `checkpoints/`)
 * becomes `<dir>/checkpoints/<which>`; anything else (a checkpoint path, a .pt/.ckpt file)
 * is used as it is.
 */
export async function checkpointPath(path: string, which: string): Promise<string> {
  const info = await stat(path);
  if (info?.isDirectory && (await stat(`${path}/checkpoints`))?.isDirectory) {
    return `${path}/checkpoints/${which}`;
  }
  return path.replace(/\.json$/, "");
}

/** The experiment folder of a stage-1 path: `<dir>`, `<dir>/checkpoints/last(.json)`. */
export function stage1Folder(path: string): { dir: string; which?: "last" | "best" } {
  const m = /^(.*)\/checkpoints\/(last|best)(\.json)?$/.exec(path);
  return m
    ? { dir: m[1] || ".", which: m[2] as "last" | "best" }
    : { dir: path.replace(/\/+$/, "") };
}
