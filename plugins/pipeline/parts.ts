/**
 * The one place that finds the three parts of a DiGIT pipeline: stage 1 (semantic tokens),
 * stage 2 (semantic -> VQ tokens) and the decoder (VQ tokens -> pixels); build.ts builds them
 * through the registry. The `sample` and `generate-images` steps, the preview server
 * (`deno task serve`), the demo's guidance sweep and the public `DigitPipeline` all use it.
 *
 * A part is given as
 *   - one of our experiment folders (`<dir>`, holding `checkpoints/`) or checkpoints
 *     (`<dir>/checkpoints/last`, `.json` optional): the checkpoint's meta says what it is
 *     (`kind`: `stage1-gpt`, `stage2-ar`, `stage2-maskgit`, `vqgan`, or a kind a plugin
 *     registers as a generator or decoder with a `slot`) and records its config;
 *   - a released file: DiGIT's fairseq stage-1 `.pt`, DiGIT's stage-2 `.pt` (which also holds
 *     its VQGAN) or MAGE's VQGAN `.ckpt`; the slot it is given for says which.
 * Parts not given are searched for under experiment folders: every folder with a saved
 * `checkpoints/<which>` is identified by its kind, never-trained baselines (meta
 * `untrained: true`) are passed over, and the most recently saved part of each role wins.
 *
 * Runs from before checkpoints described themselves are still found and loaded through the
 * sidecar files their training wrote beside `checkpoints/` (model.json, stage2.json, vqgan.json).
 */

import { readYamlWithExtends } from "../../core/config.ts";
import { checkpointExists, modelMeta } from "../../core/io/checkpoint.ts";
import type { Logger, Registry } from "../../core/registry.ts";
import { joinPath } from "../../core/tasks.ts";
import { STAGE1_KIND } from "../stage1/load.ts";
import { STAGE2_KINDS } from "../stage2/load.ts";
import { VQGAN_KIND } from "../vqgan/load.ts";
import { RELEASED_KINDS } from "./builtin_parts.ts";

export { RELEASED_KINDS };

export type PartName = "stage1" | "stage2" | "vqgan";
export const PART_NAMES: readonly PartName[] = ["stage1", "stage2", "vqgan"];
export const PART_LABELS: Record<PartName, string> = {
  stage1: "stage 1",
  stage2: "stage 2",
  vqgan: "VQGAN",
};

/** The role of each checkpoint kind our training writes (plugins add theirs to the registry). */
export const PART_OF_KIND: Readonly<Record<string, PartName>> = {
  [STAGE1_KIND]: "stage1",
  [STAGE2_KINDS.ar]: "stage2",
  [STAGE2_KINDS.nar]: "stage2",
  [VQGAN_KIND]: "vqgan",
};

/** The kind a part's own checkpoints have when their meta does not say (legacy runs). */
const PART_OF_KIND_DEFAULT: Record<PartName, string> = {
  stage1: STAGE1_KIND,
  stage2: STAGE2_KINDS.ar,
  vqgan: VQGAN_KIND,
};

/**
 * The part a checkpoint kind fills: a built-in kind, else a registered decoder of that name
 * (the VQGAN's slot), else a registered generator of that name with `slot: stage1|stage2`.
 * Null when nothing loads the kind (its plugin is not loaded).
 */
export function partOfKind(kind: string, registry?: Registry): PartName | null {
  if (PART_OF_KIND[kind] !== undefined) return PART_OF_KIND[kind];
  if (registry === undefined) return null;
  if (registry.has("decoders", kind)) return "vqgan";
  if (!registry.has("generators", kind)) return null;
  const slot = registry.get("generators", kind).slot;
  return slot === "stage1" || slot === "stage2" ? slot : null;
}

/** Every kind that fills `part`: the built-in ones and those the registry's plugins add. */
export function kindsOf(part: PartName, registry?: Registry): string[] {
  const kinds = Object.keys(PART_OF_KIND).filter((k) => PART_OF_KIND[k] === part);
  for (
    const e of [...(registry?.list("generators") ?? []), ...(registry?.list("decoders") ?? [])]
  ) {
    if (!kinds.includes(e.name) && partOfKind(e.name, registry) === part) kinds.push(e.name);
  }
  return kinds;
}

/** Compatibility: the sidecar each part's training wrote beside `checkpoints/` before. */
const LEGACY_SIDECARS: Record<PartName, string> = {
  stage1: "model.json",
  stage2: "stage2.json",
  vqgan: "vqgan.json",
};

/** Folders the search does not enter: outputs of sampling and data, never a model. */
const SKIP = new Set(["checkpoints", "results", "samples", "images", "features", "node_modules"]);

/** The repository's demo task, whose outputs are the default place to look. */
export const DEMO_TASK = new URL("../../tasks/demo.yaml", import.meta.url);

/** A part to load: what it is and where. */
export interface PartRef {
  part: PartName;
  /** A kind of PART_OF_KIND (our checkpoints) or of RELEASED_KINDS (released files). */
  kind: string;
  /** A checkpoint path without `.json`, or a file. */
  path: string;
  /** The experiment folder of one of our checkpoints (`path` is `<dir>/checkpoints/<which>`). */
  dir?: string;
}

/** A part found on disk: its experiment folder and when its checkpoint was saved. */
export interface FoundPart {
  dir: string;
  /** Milliseconds since the epoch of the checkpoint marker; 0 when unknown. */
  saved: number;
}

export type FoundParts = Record<PartName, FoundPart[]>;

/** Nothing trained to use: the message says what was looked for and what to run. */
export class NoTrainedModelError extends Error {
  override name = "NoTrainedModelError";
}

async function stat(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch {
    return null;
  }
}

function shownPath(url: URL): string {
  const path = decodeURIComponent(url.pathname);
  const cwd = Deno.cwd() + "/";
  return path.startsWith(cwd) ? path.slice(cwd.length) : path;
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

/** The meta of a checkpoint marker as written, or undefined when it cannot be read. */
async function rawMeta(base: string): Promise<{ meta: unknown } | null> {
  try {
    const marker = JSON.parse(await Deno.readTextFile(`${base}.json`));
    return { meta: marker?.meta };
  } catch {
    return null;
  }
}

/** The experiment folder of `<dir>/checkpoints/<which>`, or null for another layout. */
function experimentOf(base: string): string | null {
  const m = /^(.*)\/checkpoints\/[^/]+$/.exec(base);
  return m ? (m[1] || ".") : null;
}

/**
 * What one of our checkpoints holds, from its meta (`kind`); for runs from before checkpoints
 * described themselves, from `meta.model` (stage 1) or the sidecar beside `checkpoints/`.
 * Null when the marker is absent or tells nothing.
 */
export async function identifyCheckpoint(
  base: string,
  registry?: Registry,
): Promise<{ part: PartName; kind: string; untrained: boolean } | null> {
  const raw = await rawMeta(base);
  if (raw === null) return null;
  const untrained = (raw.meta as { untrained?: unknown } | null)?.untrained === true;
  const m = modelMeta(raw.meta);
  if (m) {
    const part = partOfKind(m.kind, registry);
    return part ? { part, kind: m.kind, untrained } : null;
  }
  if ((raw.meta as { model?: unknown } | null)?.model !== undefined) {
    return { part: "stage1", kind: STAGE1_KIND, untrained };
  }
  const dir = experimentOf(base);
  if (dir === null) return null;
  for (const part of PART_NAMES) {
    if (!(await stat(`${dir}/${LEGACY_SIDECARS[part]}`))?.isFile) continue;
    return { part, kind: PART_OF_KIND_DEFAULT[part], untrained };
  }
  return null;
}

/** The demo's `untrained-models` step marks its checkpoints `untrained: true`. */
export async function isUntrained(dir: string, which: string): Promise<boolean> {
  const raw = await rawMeta(`${dir}/checkpoints/${which}`);
  return (raw?.meta as { untrained?: unknown } | null | undefined)?.untrained === true;
}

/**
 * Every trained part under `root` (down to `depth` folders), newest first: folders whose
 * `checkpoints/<which>` is saved, identified by their kind. Never-trained baselines are left out.
 */
export async function findParts(
  root: string,
  which = "last",
  depth = 4,
  registry?: Registry,
): Promise<FoundParts> {
  const found: FoundParts = { stage1: [], stage2: [], vqgan: [] };
  async function visit(dir: string, level: number): Promise<void> {
    const subdirs: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
        if (e.isDirectory && !SKIP.has(e.name) && !e.name.startsWith(".")) subdirs.push(e.name);
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return;
      throw e;
    }
    const marker = await stat(`${dir}/checkpoints/${which}.json`);
    if (marker) {
      const id = await identifyCheckpoint(`${dir}/checkpoints/${which}`, registry);
      if (id && !id.untrained) found[id.part].push({ dir, saved: marker.mtime?.getTime() ?? 0 });
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

/** The kind a checkpoint's meta records, whether or not anything loads it. */
async function recordedKind(base: string): Promise<string | null> {
  return modelMeta((await rawMeta(base))?.meta)?.kind ?? null;
}

/**
 * A part given by the user, for the `part` slot: an experiment folder becomes
 * `<dir>/checkpoints/<which>`; one of our checkpoints is identified by its meta
 * (and must be a checkpoint of that role); any other path is a released file for the slot.
 */
export async function partAt(
  part: PartName,
  path: string,
  which = "last",
  registry?: Registry,
): Promise<PartRef> {
  const info = await stat(path);
  let base = path.replace(/\.json$/, "");
  // A folder is an experiment folder (released files are files); its checkpoint may be unsaved.
  if (info?.isDirectory) base = `${path.replace(/\/+$/, "") || "."}/checkpoints/${which}`;
  if (info?.isDirectory || await checkpointExists(base)) {
    const id = await identifyCheckpoint(base, registry);
    if (id && id.part !== part) {
      throw new Error(
        `${base} is a ${PART_LABELS[id.part]} checkpoint (kind '${id.kind}'), given as ${
          PART_LABELS[part]
        }`,
      );
    }
    const recorded = id === null ? await recordedKind(base) : null;
    if (recorded !== null) {
      throw new Error(
        `${base} is a checkpoint of kind '${recorded}', which no loaded plugin builds ` +
          `(load the plugin that registers it, e.g. --plugin path/to/plugin.ts)`,
      );
    }
    const dir = experimentOf(base);
    return {
      part,
      kind: id?.kind ?? PART_OF_KIND_DEFAULT[part],
      path: base,
      ...(dir !== null ? { dir } : {}),
    };
  }
  return { part, kind: RELEASED_KINDS[part], path };
}

export interface ResolvePartsOptions {
  /** Paths given part by part (folders, checkpoints or released files). */
  given: Partial<Record<PartName, string>>;
  /** The parts wanted (default: all three; `sample` with a token file needs no stage 1). */
  parts?: readonly PartName[];
  /** Which checkpoint of each experiment folder. */
  which: "last" | "best";
  /**
   * Folders searched for the parts not given, in order: the first that holds every missing
   * part wins, else the one missing fewest, so parts of different experiments are not mixed.
   * Empty: there was nowhere to look (no folder given, no demo task).
   */
  roots: { dir: string; depth: number }[];
  /** Prefixes messages, e.g. "sample" or "digit preview". */
  who: string;
  log: Logger;
  demoTask?: URL;
  /** Where plugins' checkpoint kinds are registered (default: the built-in kinds only). */
  registry?: Registry;
}

export interface ResolvedParts {
  /** A ref for every part (the VQGAN may be absent: it is then inside a DiGIT stage-2 .pt). */
  refs: Partial<Record<PartName, PartRef>>;
  /** The folder searched, when one was. */
  root: string | null;
}

const FIXES = "point at one: --set dir=<experiment folder> (or stage1=, stage2=, vqgan=)";

/** Where each part comes from: the path given, or the newest trained one under the roots. */
export async function resolveParts(o: ResolvePartsOptions): Promise<ResolvedParts> {
  const refs: Partial<Record<PartName, PartRef>> = {};
  for (const part of o.parts ?? PART_NAMES) {
    const path = o.given[part];
    if (path !== undefined) refs[part] = await partAt(part, path, o.which, o.registry);
  }
  const wanted = (o.parts ?? PART_NAMES).filter((p) => refs[p] === undefined);
  // A DiGIT stage-2 .pt carries its own VQGAN: none is looked for beside it.
  const vqganInside = refs.stage2?.kind === RELEASED_KINDS.stage2;
  const needed = wanted.filter((p) => !(p === "vqgan" && vqganInside));
  if (needed.length === 0) return { refs, root: null };
  if (o.roots.length === 0) {
    throw new NoTrainedModelError(
      `${o.who}: no trained ${needed.map((p) => PART_LABELS[p]).join(", ")} given, and ${
        shownPath(o.demoTask ?? DEMO_TASK)
      } does not exist to find the demo's. Run \`deno task demo\` first to train a small pipeline, or ${FIXES}.`,
    );
  }
  let best: { root: string; found: FoundParts; missing: PartName[] } | null = null;
  for (const { dir, depth } of o.roots) {
    const found = await findParts(dir, o.which, depth, o.registry);
    const missing = needed.filter((p) => found[p].length === 0);
    if (best === null || missing.length < best.missing.length) best = { root: dir, found, missing };
    if (missing.length === 0) break;
  }
  if (best!.missing.length > 0) {
    const looked = best!.missing.map((p) =>
      `${PART_LABELS[p]}: checkpoints/${o.which}.json of kind ${kindsOf(p, o.registry).join("/")}`
    ).join("; ");
    throw new NoTrainedModelError(
      `${o.who}: found no trained ${best!.missing.map((p) => PART_LABELS[p]).join(", ")} under ${
        o.roots.map((r) => `'${r.dir}'`).join(" or ")
      } (looked for ${looked}). Run \`deno task demo\` first to train a small pipeline, or ${FIXES}.`,
    );
  }
  const { root, found } = best!;
  for (const part of wanted) {
    const list = found[part];
    if (list.length === 0) continue;
    if (list.length > 1) {
      o.log.info(
        `${o.who}: ${list.length} trained ${PART_LABELS[part]} models under ${root}; ` +
          `using the newest, ${list[0].dir} (others: ${
            list.slice(1).map((f) => f.dir).join(", ")
          })`,
      );
    }
    refs[part] = await partAt(part, list[0].dir, o.which, o.registry);
  }
  return { refs, root };
}

/** What identifies a saved part: a checkpoint's save id, else a file's size and time. */
export async function fingerprintPart(path: string): Promise<string> {
  const base = path.replace(/\.json$/, "");
  try {
    const marker = JSON.parse(await Deno.readTextFile(`${base}.json`));
    if (typeof marker?.saveId === "string") return `checkpoint ${marker.saveId}`;
  } catch { /* not one of our checkpoints */ }
  const info = await stat(path);
  return info ? `${info.size} bytes, ${info.mtime?.toISOString() ?? "?"}` : "missing";
}
