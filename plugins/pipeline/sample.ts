/**
 * The `sample` step (what `deno task sample` runs): stage-1 sampling -> stage 2 -> VQGAN
 * -> `<step dir>/results/<id>.png`, `contact_sheet.png`, `vq_tokens.codecs`, plus
 * `semantic.tokens` (the stage-1 grids used) and `sources.json` (what was loaded).
 *
 * Parts are found and built by plugins/pipeline/parts.ts: given as experiment folders, our
 * checkpoints or released files (fairseq stage-1 .pt, DiGIT stage-2 .pt, MAGE .ckpt), else
 * searched for by their checkpoint kind under `dir`, by default the demo's output folder named
 * in tasks/demo.yaml, so `deno task sample` works right after `deno task demo`. Never-trained
 * baselines (checkpoint meta `untrained: true`) are passed over. Stage 1 may be replaced by a
 * file of semantic grids (token file, .codecs, .npy, .npz).
 *
 * Stage 1 draws batch by batch, batch b from seed + b*batch_size (as `sample-stage1` does),
 * so its grids depend on the batch size; stage 2 and the VQGAN do not (see pipeline.ts).
 */

import { type Infer, s } from "../../core/config.ts";
import type { TokenGrid } from "../../core/interfaces.ts";
import { writeTokenFile } from "../../core/io/tokens.ts";
import type { Logger, Registry, StepContext } from "../../core/registry.ts";
import { buildParts, type BuiltParts, checkFit, disposeParts } from "./build.ts";
import {
  DEMO_TASK,
  demoOutputDir,
  fingerprintPart,
  PART_NAMES,
  partAt,
  type PartName,
  type PartRef,
  resolveParts,
} from "./parts.ts";
import { runPipeline } from "./pipeline.ts";
import type { Stage1Part } from "./roles.ts";
import { readTokenGrids } from "./tokens.ts";

export const sampleParams = s.object({
  dir: s.string({
    description:
      "experiment folder searched for the parts not given below (default: the demo's outputs, from tasks/demo.yaml)",
  }).optional(),
  stage1: s.string({
    description:
      "stage-1 experiment folder (or its checkpoints/last|best), DiGIT's fairseq stage-1 .pt, or a file of semantic grids (.tokens, .codecs, .npy, .npz)",
  }).optional(),
  stage2: s.string({
    description: "stage-2 experiment folder, <dir>/checkpoints/last, or a DiGIT stage-2 .pt",
  }).optional(),
  vqgan: s.string({
    description:
      "VQGAN experiment folder or checkpoint (default: found beside the others, else the stage-2 .pt's vqgan.* keys)",
  }).optional(),
  checkpoint: s.enum(["last", "best"]).describe("which checkpoint of each experiment folder")
    .default("last"),
  count: s.int({ min: 1 }).describe(
    "images to sample (default 16; with a token file, all its grids)",
  ).optional(),
  seed: s.int().default(0),
  classes: s.array(s.int({ min: 0 })).describe(
    "class ids cycled over the images (default: every class of a class-conditional stage 1)",
  ).default([]),
  top_k: s.int({ min: 0 }).describe("stage-1 top-k (0: off)").default(200),
  top_p: s.number({ min: 0, max: 1 }).describe("stage-1 nucleus mass (1: off)").default(1),
  temperature: s.number({ positive: true }).describe("stage-1 temperature").default(1),
  guidance: s.number({ min: 0 }).describe("stage-1 classifier-free guidance scale (1: off)")
    .default(1),
  stage2_steps: s.int({ min: 1 }).describe("stage-2 MaskGIT iterations (NAR)").default(8),
  stage2_top_p: s.number({ min: 0, max: 1 }).describe("stage-2 nucleus mass (AR)").default(0.8),
  stage2_temperature: s.number({ positive: true }).describe("stage-2 temperature").default(1),
  batch_size: s.int({ min: 1 }).default(16),
  sheet_count: s.int({ min: 1 }).describe("images on the contact sheet").default(64),
});
export type SampleParams = Infer<typeof sampleParams>;

export const sampleOutputs = () => ({
  results: "results",
  sheet: "contact_sheet.png",
  vq_tokens: "vq_tokens.codecs",
  semantic: "semantic.tokens",
  sources: "sources.json",
});

/** What the step loads. */
export interface SampleSources {
  /**
   * A stage-1 experiment folder and its checkpoint, a released stage-1 file (fairseq .pt),
   * or a file of semantic grids.
   */
  stage1: { dir: string; which: "last" | "best" } | { file: string } | { tokens: string };
  /** A stage-2 checkpoint or DiGIT .pt (plugins/pipeline/parts.ts). */
  stage2: string;
  /** A VQGAN checkpoint or file; null: the VQGAN inside the stage-2 checkpoint. */
  vqgan: string | null;
  /** The folder searched, when one was. */
  root: string | null;
}

const SILENT: Logger = { info() {}, warn() {}, debug() {}, progress() {} };

async function stat(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch {
    return null;
  }
}

/** Where each part comes from: the params, else the newest trained one under `dir` (or the demo's outputs). */
export async function resolveSampleSources(
  p: SampleParams,
  log: Logger,
  demoTask: URL = DEMO_TASK,
  registry?: Registry,
): Promise<SampleSources> {
  const which = p.checkpoint;
  let tokens: string | undefined;
  if (p.stage1 !== undefined) {
    const info = await stat(p.stage1);
    const isCheckpoint = /\/checkpoints\/(last|best)(\.json)?$/.test(p.stage1);
    if (!info && !isCheckpoint) {
      throw new Error(
        `sample: stage1 '${p.stage1}' does not exist (a stage-1 experiment folder, a fairseq .pt or a token file)`,
      );
    }
    if (info?.isFile && !isCheckpoint && !/\.pt$/.test(p.stage1)) tokens = p.stage1;
  }
  const demo = p.dir === undefined ? await demoOutputDir(demoTask) : null;
  const { refs, root } = await resolveParts({
    given: { stage1: p.stage1, stage2: p.stage2, vqgan: p.vqgan },
    parts: tokens !== undefined ? ["stage2", "vqgan"] : PART_NAMES,
    which,
    roots: p.dir !== undefined
      ? [{ dir: p.dir, depth: 4 }]
      : demo !== null
      ? [{ dir: demo, depth: 4 }]
      : [],
    who: "sample",
    log,
    demoTask,
    registry,
  });
  const s1 = refs.stage1;
  return {
    stage1: tokens !== undefined
      ? { tokens }
      : s1!.dir !== undefined
      ? { dir: s1!.dir, which: /\/checkpoints\/(best)$/.test(s1!.path) ? "best" : "last" }
      : { file: s1!.path },
    stage2: refs.stage2!.path,
    vqgan: refs.vqgan?.path ?? null,
    root,
  };
}

function stage1Path(src: SampleSources): string {
  return "tokens" in src.stage1
    ? src.stage1.tokens
    : "file" in src.stage1
    ? src.stage1.file
    : `${src.stage1.dir}/checkpoints/${src.stage1.which}`;
}

/** The sources and the fingerprints of their files, as sources.json records them. */
export async function describeSources(src: SampleSources): Promise<Record<string, unknown>> {
  const stage1 = stage1Path(src);
  return {
    stage1: "tokens" in src.stage1 ? { tokens: stage1 } : { model: stage1 },
    stage2: src.stage2,
    vqgan: src.vqgan ?? `inside ${src.stage2}`,
    fingerprints: {
      stage1: await fingerprintPart(stage1),
      stage2: await fingerprintPart(src.stage2),
      vqgan: src.vqgan === null ? null : await fingerprintPart(src.vqgan),
    },
  };
}

/** Finished outputs are current when the same parts, saved the same time, would be loaded now. */
export async function sampleComplete(
  p: SampleParams,
  outputs: Record<string, string>,
  demoTask: URL = DEMO_TASK,
  registry?: Registry,
): Promise<boolean> {
  try {
    const recorded = await Deno.readTextFile(outputs.sources);
    const now = await describeSources(await resolveSampleSources(p, SILENT, demoTask, registry));
    return JSON.stringify(now) === JSON.stringify(JSON.parse(recorded));
  } catch {
    return false;
  }
}

/** Fails early, naming the file, when given grids hold tokens stage 2 does not know. */
function checkGrids(src: SampleSources, semantic: TokenGrid, parts: BuiltParts): void {
  const max = semantic.tokens.reduce((m, t) => Math.max(m, t), 0);
  if (max >= parts.stage2.conditionVocab) {
    throw new Error(
      `sample: token ${max} in ${
        JSON.stringify(src.stage1)
      } is outside stage 2's ${parts.stage2.conditionVocab} semantic clusters`,
    );
  }
}

/** Stage-1 grids for `count` images, batch by batch, classes cycled over the images. */
async function sampleSemantic(
  stage1: Stage1Part,
  p: SampleParams,
  count: number,
  classes: number[],
  ctx: StepContext,
): Promise<TokenGrid> {
  const L = stage1.length;
  const tokens = new Int32Array(count * L);
  let height = 0, width = 0;
  for (let i = 0; i < count; i += p.batch_size) {
    ctx.signal.throwIfAborted();
    const n = Math.min(p.batch_size, count - i);
    const grid = await stage1.sample({
      count: n,
      seed: p.seed + i,
      topK: p.top_k,
      topP: p.top_p,
      temperature: p.temperature,
      guidance: p.guidance,
      classes: classes.length
        ? Int32Array.from({ length: n }, (_, j) => classes[(i + j) % classes.length])
        : undefined,
      onProgress: (d) => ctx.log.progress("stage 1", i * L + d * n, count * L),
    });
    tokens.set(grid.tokens, i * L);
    ({ height, width } = grid);
  }
  return { tokens, count, height, width };
}

export async function runSample(
  p: SampleParams,
  ctx: StepContext,
  demoTask: URL = DEMO_TASK,
): Promise<void> {
  const src = await resolveSampleSources(p, ctx.log, demoTask, ctx.registry);
  const backend = ctx.backend;
  let parts: BuiltParts | null = null;
  try {
    let semantic: TokenGrid | null = null,
      ids: string[] | undefined,
      labels: Int32Array | undefined;
    if ("tokens" in src.stage1) {
      if (p.classes.length) {
        ctx.log.warn(`classes are ignored: the semantic grids come from ${src.stage1.tokens}`);
      }
      const file = await readTokenGrids(src.stage1.tokens);
      const n = Math.min(p.count ?? file.grid.count, file.grid.count);
      const L = file.grid.height * file.grid.width;
      semantic = { ...file.grid, count: n, tokens: file.grid.tokens.slice(0, n * L) };
      ids = file.ids.slice(0, n);
      labels = file.labels?.slice(0, n); // labels.tsv of the results
    }
    const at = (part: PartName, path: string) => partAt(part, path, "last", ctx.registry);
    const refs: Partial<Record<PartName, PartRef>> = {
      ...("tokens" in src.stage1 ? {} : { stage1: await at("stage1", stage1Path(src)) }),
      stage2: await at("stage2", src.stage2),
      ...(src.vqgan !== null ? { vqgan: await at("vqgan", src.vqgan) } : {}),
    };
    parts = await buildParts(refs, { ctx, who: "sample" });
    checkFit(parts, refs, "sample");
    if (semantic) checkGrids(src, semantic, parts);
    const { stage1, stage2 } = parts;
    ctx.log.info(
      `${backend.name}: stage 1 ${
        "tokens" in src.stage1 ? `grids from ${src.stage1.tokens}` : stage1Path(src)
      }, ` +
        `stage 2 ${src.stage2} (${stage2.variant.toUpperCase()}), VQGAN ${
          src.vqgan ?? "inside stage 2"
        }`,
    );

    if (stage1) {
      const count = p.count ?? 16;
      let classes = p.classes;
      if (classes.length > 0 && stage1.classes === 0) {
        throw new Error(
          `sample: classes [${classes}] given, but stage 1 (${
            JSON.stringify(src.stage1)
          }) is unconditional`,
        );
      }
      if (classes.length === 0 && stage1.classes > 0) {
        classes = Array.from({ length: stage1.classes }, (_, c) => c);
        ctx.log.info(
          `class-conditional stage 1; cycling over its ${classes.length} classes (set classes to choose)`,
        );
      }
      semantic = await sampleSemantic(stage1, p, count, classes, ctx);
      if (classes.length) {
        labels = Int32Array.from({ length: count }, (_, i) => classes[i % classes.length]);
      }
      const digits = Math.max(4, String(count - 1).length);
      ids = Array.from({ length: count }, (_, i) => String(i).padStart(digits, "0"));
    }
    const grid = semantic!;
    await writeTokenFile(ctx.outputs.semantic, {
      ...grid,
      vocab: stage2.conditionVocab,
      labels,
      source: `sample ${JSON.stringify(src.stage1)}`,
    });
    // PNGs of an earlier, larger run would otherwise stay among these.
    await Deno.remove(ctx.outputs.results, { recursive: true }).catch(() => {});
    const res = await runPipeline({
      stage2,
      decoder: parts.decoder,
      semantic: grid,
      ids,
      labels,
      outDir: ctx.stepDir,
      seed: p.seed,
      batchSize: p.batch_size,
      sampling: { steps: p.stage2_steps, topP: p.stage2_top_p, temperature: p.stage2_temperature },
      sheet: { count: p.sheet_count },
      signal: ctx.signal,
      onProgress: (d, t) => ctx.log.progress("stage 2 + VQGAN", d, t),
    });
    await Deno.writeTextFile(
      ctx.outputs.sources,
      JSON.stringify(await describeSources(src), null, 2) + "\n",
    );
    ctx.log.info(`${res.count} images in ${res.resultsDir}, contact sheet ${res.contactSheet}`);
  } finally {
    if (parts) disposeParts(parts);
  }
}
