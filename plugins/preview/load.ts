/**
 * Loading the preview's parts, once, from an experiment folder (default: the demo's outputs)
 * or from paths given part by part. Finding and building the parts is plugins/pipeline's job
 * (parts.ts, build.ts); this file only says where the preview looks.
 */

import type { Logger, RunContext } from "../../core/registry.ts";
import { buildParts, type BuiltParts } from "../pipeline/build.ts";
import {
  demoOutputDir,
  NoTrainedModelError,
  type PartName,
  type PartRef,
  resolveParts,
} from "../pipeline/parts.ts";

export { NoTrainedModelError };

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

export interface ResolvedSources {
  refs: Partial<Record<PartName, PartRef>>;
  /** The folder searched, when one was. */
  root: string | null;
}

/**
 * Where each part comes from: a path the user gave, or the newest one found under `dir`;
 * else under the run's output folder when it is itself a task's output folder
 * (`deno task demo --outputs X` then `deno task serve --outputs X`), else the demo's outputs.
 * Kinds that plugins register in `ctx.registry` are found too.
 * Throws NoTrainedModelError when a part is nowhere to be found.
 */
export async function resolveSources(o: PartSources, ctx: RunContext): Promise<ResolvedSources> {
  const roots: { dir: string; depth: number }[] = [];
  if (o.dir !== undefined) roots.push({ dir: o.dir, depth: 4 });
  else {
    if (o.outputDir !== undefined) roots.push({ dir: o.outputDir, depth: 1 });
    const demo = await demoOutputDir();
    if (demo !== null && demo !== o.outputDir) roots.push({ dir: demo, depth: 4 });
  }
  return await resolveParts({
    given: { stage1: o.stage1, stage2: o.stage2, vqgan: o.vqgan },
    which: o.checkpoint,
    roots,
    who: "digit preview",
    log: ctx.log,
    registry: ctx.registry,
  });
}

/** Builds stage 1, stage 2 and the decoder through the registry; says what was loaded. */
export async function loadParts(
  sources: ResolvedSources,
  ctx: RunContext,
  log: Logger = ctx.log,
): Promise<BuiltParts & { stage1: NonNullable<BuiltParts["stage1"]>; source: string }> {
  const { refs, root } = sources;
  const built = await buildParts(refs, { ctx, who: "digit preview" });
  const s2 = refs.stage2!.path;
  log.info(
    `digit preview: stage 1 ${
      refs.stage1!.dir ?? refs.stage1!.path
    }, stage 2 ${s2} (${built.stage2.variant.toUpperCase()}), ` +
      `VQGAN ${refs.vqgan?.path ?? `inside ${s2}`}`,
  );
  return { ...built, stage1: built.stage1!, source: root ?? s2 };
}
