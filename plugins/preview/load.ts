/**
 * Loading the preview's three networks, once, from an experiment folder (default: the
 * demo's outputs) or from paths given part by part.
 */

import type { Logger } from "../../core/registry.ts";
import { loadStage1 } from "../stage1/plugin.ts";
import type { Stage1GPT } from "../stage1/model.ts";
import { loadStage2 } from "../stage2/load.ts";
import type { Stage2Model } from "../stage2/model.ts";
import type { VQGAN } from "../vqgan/vqgan.ts";
import { loadVqgan } from "../vqgan/weights.ts";
import type { DigitParts } from "./model.ts";
import {
  checkpointPath,
  DEMO_TASK,
  demoOutputDir,
  findParts,
  type FoundParts,
  MARKERS,
  PART_LABELS,
  PART_NAMES,
  type PartName,
  stage1Folder,
} from "./locate.ts";

export interface PartSources {
  /** Experiment folder searched for parts not given below. */
  dir?: string;
  stage1?: string;
  stage2?: string;
  vqgan?: string;
  /** Which checkpoint of each experiment folder. */
  checkpoint: "last" | "best";
  /**
   * The run's output folder (`--outputs`); searched one level deep before the demo's
   * outputs when `dir` is not given.
   */
  outputDir?: string;
}

/** Nothing trained to serve: the message says what was looked for and what to run. */
export class NoTrainedModelError extends Error {
  override name = "NoTrainedModelError";
}

function shownPath(url: URL): string {
  const path = decodeURIComponent(url.pathname);
  const cwd = Deno.cwd() + "/";
  return path.startsWith(cwd) ? path.slice(cwd.length) : path;
}

export interface ResolvedSources {
  paths: Partial<Record<PartName, string>>;
  /** The folder searched, when one was. */
  root: string | null;
}

/**
 * Where each part comes from: a path the user gave, or the newest one found under `dir`.
 * Throws NoTrainedModelError when a part is nowhere to be found.
 */
export async function resolveSources(o: PartSources, log: Logger): Promise<ResolvedSources> {
  const given: Partial<Record<PartName, string>> = {
    stage1: o.stage1,
    stage2: o.stage2,
    vqgan: o.vqgan,
  };
  const wanted = PART_NAMES.filter((p) => given[p] === undefined);
  if (wanted.length === 0) return { paths: given, root: o.dir ?? null };
  // A DiGIT stage-2 .pt carries its VQGAN, so then a missing VQGAN is decided after loading.
  const needed = wanted.filter((p) => !(p === "vqgan" && given.stage2 !== undefined));

  // Where to look: the folder given; else the run's output folder when it is itself a
  // task's output folder (`deno task demo --outputs X` then `deno task serve --outputs X`),
  // else the demo's outputs. The first place holding every missing part wins, so parts of
  // different experiments are never mixed.
  const roots: { dir: string; depth: number }[] = [];
  if (o.dir !== undefined) roots.push({ dir: o.dir, depth: 4 });
  else {
    if (o.outputDir !== undefined) roots.push({ dir: o.outputDir, depth: 1 });
    const demo = await demoOutputDir();
    if (demo !== null && demo !== o.outputDir) roots.push({ dir: demo, depth: 4 });
  }
  let best: { root: string; found: FoundParts; missing: PartName[] } | null = null;
  for (const { dir, depth } of roots) {
    const found = await findParts(dir, o.checkpoint, depth);
    const missing = needed.filter((p) => found[p].length === 0);
    if (best === null || missing.length < best.missing.length) best = { root: dir, found, missing };
    if (missing.length === 0) break;
  }
  if (best === null) throw noModelError(null, o, needed);
  if (best.missing.length > 0) throw noModelError(roots.map((r) => r.dir), o, best.missing);

  const paths = { ...given };
  for (const part of wanted) {
    const list = best.found[part];
    if (list.length === 0) continue;
    paths[part] = list[0].dir;
    if (list.length > 1) {
      log.info(
        `digit preview: ${list.length} trained ${PART_LABELS[part]} models under ${best.root}; ` +
          `using the newest, ${list[0].dir} (others: ${
            list.slice(1).map((f) => f.dir).join(", ")
          })`,
      );
    }
  }
  return { paths, root: best.root };
}

function noModelError(
  searched: string[] | null,
  o: PartSources,
  missing: PartName[],
): NoTrainedModelError {
  const where = searched === null
    ? `no experiment folder was given and ${shownPath(DEMO_TASK)} does not exist`
    : `found no trained ${missing.map((p) => PART_LABELS[p]).join(", ")} under ${
      searched.map((d) => `'${d}'`).join(" or ")
    }`;
  const looked = missing.map((p) =>
    `${PART_LABELS[p]}: ${MARKERS[p]} + checkpoints/${o.checkpoint}.json`
  ).join("; ");
  return new NoTrainedModelError(
    `digit preview: ${where} (looked for ${looked}). Run \`deno task demo\` first to train a ` +
      `small pipeline, or point the preview at one: --set dir=<experiment folder> ` +
      `(or stage1=, stage2=, vqgan=).`,
  );
}

/** Loads stage 1, stage 2 and the VQGAN; frees whatever was loaded if a later part fails. */
export async function loadParts(
  o: PartSources,
  log: Logger,
  sources?: ResolvedSources,
): Promise<DigitParts> {
  const { paths, root } = sources ?? await resolveSources(o, log);
  let stage1: Stage1GPT | undefined, stage2: Stage2Model | undefined, vqgan: VQGAN | null = null;
  try {
    const s1 = stage1Folder(paths.stage1!);
    stage1 = await loadStage1(s1.dir, s1.which ?? o.checkpoint);
    const s2 = await checkpointPath(paths.stage2!, o.checkpoint);
    const loaded = await loadStage2(s2);
    stage2 = loaded.model;
    if (paths.vqgan !== undefined) {
      loaded.vqgan?.dispose();
      vqgan = await loadVqgan(await checkpointPath(paths.vqgan, o.checkpoint));
    } else {
      vqgan = loaded.vqgan;
    }
    if (vqgan === null) {
      throw noModelError(root === null ? null : [root], o, ["vqgan"]);
    }
    log.info(
      `digit preview: stage 1 ${s1.dir}, stage 2 ${s2} (${stage2.cfg.variant.toUpperCase()}), ` +
        `VQGAN ${paths.vqgan ?? `inside ${s2}`}`,
    );
    return { stage1, stage2, vqgan, source: root ?? paths.stage2 };
  } catch (e) {
    stage1?.dispose();
    stage2?.dispose();
    vqgan?.dispose();
    throw e;
  }
}
