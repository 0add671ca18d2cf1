/**
 * The `sample` step (what `deno task sample` runs): stage-1 sampling -> stage 2 -> VQGAN
 * -> `<step dir>/results/<id>.png`, `contact_sheet.png`, `vq_tokens.codecs`, plus
 * `semantic.tokens` (the stage-1 grids used) and `sources.json` (what was loaded).
 *
 * Parts not given are found by their training markers (plugins/preview/locate.ts) under
 * `dir`, by default the demo's output folder named in tasks/demo.yaml, so `deno task sample`
 * works right after `deno task demo`. Never-trained baselines (checkpoint meta
 * `untrained: true`, the demo's `untrained-models` step) are passed over. Stage 1 may be
 * replaced by a file of semantic grids (token file, .codecs, .npy, .npz).
 *
 * Stage 1 draws batch by batch, batch b from seed + b*batch_size (as `sample-stage1` does),
 * so its grids depend on the batch size; stage 2 and the VQGAN do not (see pipeline.ts).
 */

import { type Infer, s } from "../../core/config.ts";
import { useDevice } from "../../core/device.ts";
import type { TokenGrid } from "../../core/interfaces.ts";
import { checkpointExists } from "../../core/io/checkpoint.ts";
import { writeTokenFile } from "../../core/io/tokens.ts";
import type { Logger, StepContext } from "../../core/registry.ts";
import {
  checkpointPath,
  DEMO_TASK,
  demoOutputDir,
  findParts,
  MARKERS,
  PART_LABELS,
  type PartName,
  stage1Folder,
} from "../preview/locate.ts";
import type { Stage1GPT } from "../stage1/model.ts";
import { loadStage1 } from "../stage1/plugin.ts";
import { sampleStage1 } from "../stage1/sampler.ts";
import { loadStage2 } from "../stage2/load.ts";
import type { Stage2Model } from "../stage2/model.ts";
import type { VQGAN } from "../vqgan/vqgan.ts";
import { loadVqgan } from "../vqgan/weights.ts";
import { runPipeline } from "./pipeline.ts";
import { readTokenGrids } from "./tokens.ts";

export const sampleParams = s.object({
  dir: s.string({
    description:
      "experiment folder searched for the parts not given below (default: the demo's outputs, from tasks/demo.yaml)",
  }).optional(),
  stage1: s.string({
    description:
      "stage-1 experiment folder (or its checkpoints/last|best), or a file of semantic grids (.tokens, .codecs, .npy, .npz)",
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
  /** A stage-1 experiment folder and its checkpoint, or a file of semantic grids. */
  stage1: { dir: string; which: "last" | "best" } | { tokens: string };
  /** A path loadStage2 takes. */
  stage2: string;
  /** A path loadVqgan takes; null: the VQGAN inside the stage-2 checkpoint. */
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

/** The demo's `untrained-models` step marks its checkpoints `untrained: true`. */
export async function isUntrained(dir: string, which: string): Promise<boolean> {
  try {
    const marker = JSON.parse(await Deno.readTextFile(`${dir}/checkpoints/${which}.json`));
    return marker?.meta?.untrained === true;
  } catch {
    return false;
  }
}

function shownPath(url: URL): string {
  const path = decodeURIComponent(url.pathname);
  const cwd = Deno.cwd() + "/";
  return path.startsWith(cwd) ? path.slice(cwd.length) : path;
}

/** Where each part comes from: the params, else the newest trained one under `dir` (or the demo's outputs). */
export async function resolveSampleSources(
  p: SampleParams,
  log: Logger,
  demoTask: URL = DEMO_TASK,
): Promise<SampleSources> {
  const which = p.checkpoint;
  let stage1: SampleSources["stage1"] | undefined;
  if (p.stage1 !== undefined) {
    const info = await stat(p.stage1);
    const isCheckpoint = /\/checkpoints\/(last|best)(\.json)?$/.test(p.stage1);
    if (info?.isFile && !isCheckpoint) stage1 = { tokens: p.stage1 };
    else if (info || isCheckpoint) {
      const f = stage1Folder(p.stage1);
      stage1 = { dir: f.dir, which: f.which ?? which };
    } else {throw new Error(
        `sample: stage1 '${p.stage1}' does not exist (a stage-1 experiment folder or a token file)`,
      );}
  }
  let stage2 = p.stage2 !== undefined ? await checkpointPath(p.stage2, which) : undefined;
  let vqgan = p.vqgan !== undefined ? await checkpointPath(p.vqgan, which) : undefined;
  // A DiGIT .pt given as stage 2 carries its own VQGAN: look for none beside it.
  const vqganInside = stage2 !== undefined && !(await checkpointExists(stage2));
  const wanted: PartName[] = [];
  if (!stage1) wanted.push("stage1");
  if (!stage2) wanted.push("stage2");
  if (vqgan === undefined && !vqganInside) wanted.push("vqgan");
  if (wanted.length === 0) {
    return { stage1: stage1!, stage2: stage2!, vqgan: vqgan ?? null, root: null };
  }

  const root = p.dir ?? (await demoOutputDir(demoTask));
  const fixes =
    "set dir=<experiment folder>, or stage1=, stage2=, vqgan= (e.g. --set stage2=outputs/x/stage2)";
  if (root === null) {
    throw new Error(
      `sample: no trained ${wanted.map((w) => PART_LABELS[w]).join(", ")} given, and ${
        shownPath(demoTask)
      } ` +
        `does not exist to find the demo's. Run \`deno task demo\` first, or ${fixes}.`,
    );
  }
  const found = await findParts(root, which);
  const missing: PartName[] = [];
  for (const part of wanted) {
    const trained = [];
    for (const f of found[part]) if (!(await isUntrained(f.dir, which))) trained.push(f.dir);
    if (trained.length === 0) {
      missing.push(part);
      continue;
    }
    if (trained.length > 1) {
      log.info(
        `${trained.length} trained ${PART_LABELS[part]} models under ${root}; using the newest, ${
          trained[0]
        } (others: ${trained.slice(1).join(", ")})`,
      );
    }
    if (part === "stage1") stage1 = { dir: trained[0], which };
    else if (part === "stage2") stage2 = `${trained[0]}/checkpoints/${which}`;
    else vqgan = `${trained[0]}/checkpoints/${which}`;
  }
  if (missing.length > 0) {
    const looked = missing.map((m) =>
      `${PART_LABELS[m]}: ${MARKERS[m]} + checkpoints/${which}.json`
    ).join("; ");
    const next = p.dir === undefined
      ? `Run \`deno task demo\` first (it trains them), or ${fixes}`
      : `Check dir, or ${fixes}`;
    throw new Error(
      `sample: found no trained ${
        missing.map((m) => PART_LABELS[m]).join(", ")
      } under '${root}' (looked for ${looked}). ${next}.`,
    );
  }
  return { stage1: stage1!, stage2: stage2!, vqgan: vqgan ?? null, root };
}

/** What identifies a saved part: a checkpoint's save id, else a file's size and time. */
async function fingerprint(path: string): Promise<string> {
  const base = path.replace(/\.json$/, "");
  try {
    const marker = JSON.parse(await Deno.readTextFile(`${base}.json`));
    if (typeof marker?.saveId === "string") return `checkpoint ${marker.saveId}`;
  } catch { /* not one of our checkpoints */ }
  const info = await stat(path);
  return info ? `${info.size} bytes, ${info.mtime?.toISOString() ?? "?"}` : "missing";
}

/** The sources and the fingerprints of their files, as sources.json records them. */
export async function describeSources(src: SampleSources): Promise<Record<string, unknown>> {
  const stage1 = "tokens" in src.stage1
    ? src.stage1.tokens
    : `${src.stage1.dir}/checkpoints/${src.stage1.which}`;
  return {
    stage1: "tokens" in src.stage1 ? { tokens: stage1 } : { model: stage1 },
    stage2: src.stage2,
    vqgan: src.vqgan ?? `inside ${src.stage2}`,
    fingerprints: {
      stage1: await fingerprint(stage1),
      stage2: await fingerprint(src.stage2),
      vqgan: src.vqgan === null ? null : await fingerprint(src.vqgan),
    },
  };
}

/** Finished outputs are current when the same parts, saved the same time, would be loaded now. */
export async function sampleComplete(
  p: SampleParams,
  outputs: Record<string, string>,
  demoTask: URL = DEMO_TASK,
): Promise<boolean> {
  try {
    const recorded = await Deno.readTextFile(outputs.sources);
    const now = await describeSources(await resolveSampleSources(p, SILENT, demoTask));
    return JSON.stringify(now) === JSON.stringify(JSON.parse(recorded));
  } catch {
    return false;
  }
}

/** Fails early, naming both files, when the parts were not trained together. */
function checkCompatible(
  src: SampleSources,
  stage1: Stage1GPT | null,
  semantic: TokenGrid | null,
  stage2: Stage2Model,
  vqgan: VQGAN,
): void {
  const s2 = stage2.cfg;
  if (stage1 && stage1.cfg.clusters !== s2.clusters) {
    throw new Error(
      `sample: stage 1 (${
        JSON.stringify(src.stage1)
      }) has ${stage1.cfg.clusters} semantic clusters, stage 2 (${src.stage2}) expects ${s2.clusters}`,
    );
  }
  if (stage1 && stage1.cfg.length !== s2.prefixLength) {
    throw new Error(
      `sample: stage 1 makes ${stage1.cfg.length} tokens per image, stage 2 (${src.stage2}) expects a ${s2.prefixLength}-token prefix`,
    );
  }
  if (semantic) {
    const max = semantic.tokens.reduce((m, t) => Math.max(m, t), 0);
    if (max >= s2.clusters) {
      throw new Error(
        `sample: token ${max} in ${
          JSON.stringify(src.stage1)
        } is outside stage 2's ${s2.clusters} semantic clusters`,
      );
    }
  }
  if (s2.codebookSize !== vqgan.cfg.nEmbed) {
    throw new Error(
      `sample: stage 2 (${src.stage2}) makes codes of ${s2.codebookSize} entries, the VQGAN (${
        src.vqgan ?? "inside stage 2"
      }) has ${vqgan.cfg.nEmbed}`,
    );
  }
}

/** Stage-1 grids for `count` images, batch by batch, classes cycled over the images. */
async function sampleSemantic(
  model: Stage1GPT,
  p: SampleParams,
  count: number,
  classes: number[],
  ctx: StepContext,
): Promise<TokenGrid> {
  const L = model.cfg.length;
  const tokens = new Int32Array(count * L);
  let height = 0, width = 0;
  for (let i = 0; i < count; i += p.batch_size) {
    ctx.signal.throwIfAborted();
    const n = Math.min(p.batch_size, count - i);
    const grid = await sampleStage1(model, {
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
  const src = await resolveSampleSources(p, ctx.log, demoTask);
  const backend = await useDevice(ctx.device);
  let stage1: Stage1GPT | null = null,
    stage2: Stage2Model | null = null,
    vqgan: VQGAN | null = null;
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
    } else {
      stage1 = await loadStage1(src.stage1.dir, src.stage1.which);
    }
    const loaded = await loadStage2(src.stage2);
    stage2 = loaded.model;
    if (src.vqgan !== null) {
      loaded.vqgan?.dispose();
      vqgan = await loadVqgan(src.vqgan);
    } else {
      vqgan = loaded.vqgan;
      if (!vqgan) {
        throw new Error(
          `sample: ${src.stage2} holds no vqgan.* weights; set vqgan=<VQGAN folder or checkpoint>`,
        );
      }
    }
    checkCompatible(src, stage1, semantic, stage2, vqgan);
    ctx.log.info(
      `${backend.name}: stage 1 ${
        "tokens" in src.stage1 ? `grids from ${src.stage1.tokens}` : src.stage1.dir
      }, ` +
        `stage 2 ${src.stage2} (${stage2.cfg.variant.toUpperCase()}), VQGAN ${
          src.vqgan ?? "inside stage 2"
        }`,
    );

    if (stage1) {
      const count = p.count ?? 16;
      let classes = p.classes;
      if (classes.length > 0 && stage1.cfg.classes === 0) {
        throw new Error(
          `sample: classes [${classes}] given, but stage 1 (${
            JSON.stringify(src.stage1)
          }) is unconditional`,
        );
      }
      if (classes.length === 0 && stage1.cfg.classes > 0) {
        classes = Array.from({ length: stage1.cfg.classes }, (_, c) => c);
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
      vocab: stage2.cfg.clusters,
      labels,
      source: `sample ${JSON.stringify(src.stage1)}`,
    });
    // PNGs of an earlier, larger run would otherwise stay among these.
    await Deno.remove(ctx.outputs.results, { recursive: true }).catch(() => {});
    const res = await runPipeline({
      stage2,
      decoder: vqgan,
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
    stage1?.dispose();
    stage2?.dispose();
    vqgan?.dispose();
  }
}
