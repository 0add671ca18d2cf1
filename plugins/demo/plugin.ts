/**
 * The demo plugin: the glue `deno task demo` (tasks/demo.yaml) needs that no other plugin
 * provides.
 *
 *   encoder  random-conv       weight-free features for Frechet distances on small images
 *   step     train-tokenizer   dump features -> K-Means -> token files (`deno task train tokenizer`)
 *   step     export-images     a dataset as numbered PNGs + an enlarged contact sheet (the reference set)
 *   step     untrained-models  never-trained copies of the stage-1, stage-2 and VQGAN models (baselines)
 *   step     contact-sheet     an enlarged contact sheet of a folder of PNGs
 *   step     demo-summary      contact sheets, trained vs untrained Frechet distances, step times
 *   step     compare-runs      two runs side by side with the paper's figures (Markdown + JSON)
 *
 * It also loads the example random-projection encoder (examples/custom-encoder), the
 * weight-free encoder the demo's semantic tokenizer uses, so that `train-tokenizer` works
 * without DINOv2 weights.
 */

import { s } from "../../core/config.ts";
import { type DatasetSpec, openDataset } from "../../core/data/mod.ts";
import { writePng } from "../../core/image/codec.ts";
import { definePlugin } from "../../core/registry.ts";
import { builtinParts } from "../pipeline/builtin_parts.ts";
import randomProjection from "../../examples/custom-encoder/plugin.ts";
import { compareOutputs, compareParams, compareRuns } from "./compare.ts";
import { guidanceSweep, sweepParams } from "./guidance_sweep.ts";
import { contactSheet, exportDataset, folderSheet } from "./images.ts";
import { RandomConvEncoder } from "./random_conv_encoder.ts";
import { summaryOutputs, summaryParams, writeSummary } from "./summary.ts";
import { trainTokenizer, trainTokenizerOutputs, trainTokenizerParams } from "./train_tokenizer.ts";
import { writeUntrained } from "./untrained.ts";

const sheetParams = s.object({
  count: s.int({ min: 1 }).default(40),
  columns: s.int({ min: 1 }).default(10),
  scale: s.int({ min: 1 }).default(2).describe("nearest-neighbour enlargement of each image"),
}).default({ count: 40, columns: 10, scale: 2 });

export default definePlugin({
  name: "digit-demo",
  version: "0.1.0",
  description:
    "glue of the end-to-end demo: weight-free FD encoder, one-shot tokenizer, reference images, summary",
  async register(r) {
    await r.use(randomProjection, undefined, "examples/custom-encoder/plugin.ts");
    // `untrained-models` builds its baselines through the built-in stage-1/stage-2 kinds.
    await r.use(builtinParts);
    r.encoder({
      name: "random-conv",
      description:
        "three seeded random 3x3 conv + ReLU layers (weight-free Frechet-distance features)",
      options: s.object({
        image_size: s.int({ min: 4 }).default(32),
        channels: s.array(s.int({ min: 1 }), { minLength: 3 }).default([32, 64, 64]),
        seed: s.int().default(0),
      }),
      create: (o) =>
        new RandomConvEncoder({
          imageSize: o.image_size,
          channels: [o.channels[0], o.channels[1], o.channels[2]],
          seed: o.seed,
        }),
    });
    r.step({
      name: "train-tokenizer",
      description:
        "fit the semantic tokenizer (features -> K-Means) and tokenize a dataset (+ a held-out set)",
      params: trainTokenizerParams,
      outputs: trainTokenizerOutputs,
      run: trainTokenizer,
    });
    r.step({
      name: "export-images",
      description:
        "write the first `count` images of a dataset as PNGs, plus an enlarged contact sheet",
      params: s.object({
        dataset: s.any().describe(
          "dataset spec (core/data), e.g. { kind: shapes, size: 32, length: 256, seed: 1 }",
        ),
        count: s.int({ min: 1 }).optional().describe("default: the whole dataset"),
        sheet: sheetParams,
      }),
      outputs: () => ({ images: "images", sheet: "sheet.png" }),
      run: async (p, ctx) => {
        const dataset = await openDataset(p.dataset as DatasetSpec);
        const images = await exportDataset(dataset, {
          count: p.count ?? dataset.length,
          dir: ctx.outputs.images,
          signal: ctx.signal,
          onProgress: (done, total) => ctx.log.progress("export", done, total),
        });
        await writePng(
          ctx.outputs.sheet,
          contactSheet(images.slice(0, p.sheet.count), p.sheet.columns, p.sheet.scale),
        );
        ctx.log.info(`${images.length} images of ${dataset.name} in ${ctx.outputs.images}`);
      },
    });
    r.step({
      name: "untrained-models",
      description:
        "freshly initialised stage-1, stage-2 and VQGAN models shaped like trained ones (the demo's baselines)",
      params: s.object({
        stage1: s.string({
          nonEmpty: true,
          description: "trained stage-1 experiment folder (holds checkpoints/)",
        }),
        stage2: s.string({
          nonEmpty: true,
          description: "trained stage-2 experiment folder (holds checkpoints/)",
        }),
        vqgan: s.string({
          nonEmpty: true,
          description: "trained VQGAN experiment folder (holds checkpoints/)",
        }),
        seed: s.int().default(12345),
      }),
      outputs: () => ({
        stage1: "stage1/checkpoints/last.json",
        stage2: "stage2/checkpoints/last.json",
        vqgan: "vqgan/checkpoints/last.json",
      }),
      run: async (p, ctx) => {
        await writeUntrained("stage1", p.stage1, `${ctx.stepDir}/stage1`, p.seed, ctx);
        await writeUntrained("stage2", p.stage2, `${ctx.stepDir}/stage2`, p.seed + 1, ctx);
        await writeUntrained("vqgan", p.vqgan, `${ctx.stepDir}/vqgan`, p.seed + 2, ctx);
      },
    });
    r.step({
      name: "guidance-sweep",
      description:
        "class accuracy of class-conditional samples at several classifier-free guidance scales",
      params: sweepParams,
      outputs: () => ({ sweep: "sweep.json" }),
      run: async (p, ctx) => {
        const points = await guidanceSweep(p, ctx);
        await Deno.writeTextFile(ctx.outputs.sweep, JSON.stringify({ points }, null, 2) + "\n");
      },
    });
    r.step({
      name: "contact-sheet",
      description: "an enlarged contact sheet of the first images of a folder of PNGs",
      params: s.object({ images: s.string({ nonEmpty: true }), sheet: sheetParams }),
      outputs: () => ({ sheet: "sheet.png" }),
      run: async (p, ctx) => {
        await writePng(
          ctx.outputs.sheet,
          await folderSheet(p.images, p.sheet.count, p.sheet.columns, p.sheet.scale),
        );
      },
    });
    r.step({
      name: "demo-summary",
      description:
        "contact sheets, where the demo's images are, trained vs untrained Frechet distances, step times",
      params: summaryParams,
      outputs: summaryOutputs,
      // Always re-run: it only reads files, and a re-run of the demo should still print it.
      complete: () => false,
      run: async (p, ctx) => {
        await writeSummary(p, ctx);
      },
    });
    r.step({
      name: "compare-runs",
      description:
        "runs side by side (domain FD and floor, class accuracy, IS analogue, P/R, probe, time, the paper's figures) as Markdown and JSON",
      params: compareParams,
      outputs: compareOutputs,
      run: async (p, ctx) => void await compareRuns(p, ctx),
    });
  },
});
