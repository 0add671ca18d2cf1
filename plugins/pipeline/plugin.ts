/**
 * The pipeline plugin's steps:
 *   `sample`           stage-1 sampling -> stage 2 -> VQGAN -> PNGs (`deno task sample`; sample.ts)
 *   `generate-images`  semantic token grids (stage-1 samples) -> stage 2 -> VQGAN
 *                      -> `<step dir>/results/<id>.png`, `contact_sheet.png` and `vq_tokens.codecs`;
 *                      shardable (generate_shards.ts).
 * and the generators that build the built-in stage-1 and stage-2 checkpoint kinds
 * (builtin_parts.ts), through which both steps build their parts (build.ts).
 */

import { type Infer, s } from "../../core/config.ts";
import { type DatasetSpec, openDataset } from "../../core/data/mod.ts";
import { definePlugin, type StepContext } from "../../core/registry.ts";
import { shardSlice, writeSlice } from "../../core/shard.ts";
import { buildParts, type BuiltParts, checkFit, disposeParts } from "./build.ts";
import { builtinParts } from "./builtin_parts.ts";
import { mergeGenerated } from "./generate_shards.ts";
import { partAt } from "./parts.ts";
import { runPipeline } from "./pipeline.ts";
import { type GridFile, readTokenGrids } from "./tokens.ts";
import { runSample, sampleComplete, sampleOutputs, sampleParams } from "./sample.ts";

const params = s.object({
  stage2: s.string({ nonEmpty: true, description: "DiGIT stage-2 .pt or <dir>/checkpoints/last" }),
  vqgan: s.string({
    description: "VQGAN weights; default: the vqgan.* keys of the stage-2 checkpoint",
  }).optional(),
  tokens: s.string({
    nonEmpty: true,
    description: "semantic token grids: token file, .codecs, .npy or .npz",
  }),
  seed: s.int().default(0),
  batch_size: s.int({ min: 1 }).default(8),
  steps: s.int({ min: 1 }).describe("MaskGIT iterations (NAR)").default(8),
  top_p: s.number({ min: 0, max: 1 }).describe("AR nucleus mass").default(0.8),
  temperature: s.number({ positive: true }).default(1),
  sheet_count: s.int({ min: 1 }).default(64),
  dataset: s.any().describe(
    "dataset spec whose class names go into results/labels.tsv (default: class ids)",
  ).optional(),
});
type GenerateParams = Infer<typeof params>;

/**
 * The `generate-images` step's work, once its parts are built and its token file read
 * (`range`: one shard's images).
 */
async function generate(
  p: GenerateParams,
  ctx: StepContext,
  parts: BuiltParts,
  tokens: GridFile,
  range?: { start: number; end: number },
): Promise<void> {
  // PNGs of an earlier, larger run would otherwise stay among these.
  await Deno.remove(ctx.outputs.results, { recursive: true }).catch(() => {});
  const res = await runPipeline({
    stage2: parts.stage2,
    decoder: parts.decoder,
    semantic: tokens.grid,
    ids: tokens.ids,
    labels: tokens.labels,
    outDir: ctx.stepDir,
    seed: p.seed,
    batchSize: p.batch_size,
    classNames: p.dataset ? (await openDataset(p.dataset as DatasetSpec)).classNames : undefined,
    sampling: { steps: p.steps, topP: p.top_p, temperature: p.temperature },
    // A shard draws no sheet: the merge draws the whole run's from the merged PNGs.
    sheet: { count: range ? 0 : p.sheet_count },
    range,
    signal: ctx.signal,
    onProgress: (d, t) => ctx.log.progress("generate", d, t),
  });
  ctx.log.info(
    `generate-images: ${res.count} images in ${res.resultsDir}, contact sheet ${res.contactSheet}`,
  );
}

/** Builds generate-images' stage 2 and decoder, runs `work`, and frees them. */
async function withParts(
  p: GenerateParams,
  ctx: StepContext,
  work: (parts: BuiltParts) => Promise<void>,
): Promise<void> {
  const refs = {
    stage2: await partAt("stage2", p.stage2, "last", ctx.registry),
    ...(p.vqgan ? { vqgan: await partAt("vqgan", p.vqgan, "last", ctx.registry) } : {}),
  };
  const parts = await buildParts(refs, { ctx, who: "generate-images" });
  try {
    checkFit(parts, refs, "generate-images");
    await work(parts);
  } finally {
    disposeParts(parts);
  }
}

export default definePlugin({
  name: "digit-pipeline",
  version: "0.1.0",
  description: "stage-1 samples or semantic tokens -> stage 2 -> VQGAN -> PNG files",
  async register(r) {
    await r.use(builtinParts);
    r.step({
      name: "sample",
      description:
        "sample images: stage 1 -> stage 2 -> VQGAN -> PNGs + contact sheet (default: the demo's models)",
      params: sampleParams,
      outputs: sampleOutputs,
      // Re-run when a part was retrained (or another one would be found) since the last run.
      complete: (p, outputs) => sampleComplete(p, outputs, undefined, r),
      run: (p, ctx) => runSample(p, ctx),
    });
    r.step({
      name: "generate-images",
      description: "decode semantic token grids to PNGs through stage 2 and the VQGAN",
      params,
      outputs: () => ({
        results: "results",
        sheet: "contact_sheet.png",
        vq_tokens: "vq_tokens.codecs",
      }),
      run: async (p, ctx) => {
        const tokens = await readTokenGrids(p.tokens);
        await withParts(p, ctx, (parts) => generate(p, ctx, parts, tokens));
      },
      shardable: {
        run: async (p, ctx, shard) => {
          const tokens = await readTokenGrids(p.tokens);
          const total = tokens.grid.count;
          // Batch-aligned: a shard's batches are the whole run's batches.
          const range = shardSlice(total, shard, p.batch_size);
          if (range.end > range.start) {
            await withParts(p, ctx, (parts) => generate(p, ctx, parts, tokens, range));
          }
          await writeSlice(shard.dir, { ...range, total, unit: "images" });
        },
        merge: (p, ctx, shards) => mergeGenerated(p, ctx, shards),
      },
    });
  },
});
