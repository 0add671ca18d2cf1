/**
 * The preview plugin: registers the `digit` preview model that `deno task serve` loads.
 *
 *   deno task demo                                   # trains a small pipeline
 *   deno task serve                                  # then serves it at 127.0.0.1:8000
 *   deno task serve --set dir=outputs/my-experiment  # or any folder holding trained parts
 *   deno task serve --set stage2=ckpt/stage2_nar.pt --set stage1=outputs/stage1/train
 *
 * A request runs class id -> stage 1 (top-k, temperature, seed from the request) ->
 * stage 2 (MaskGIT iterations from the request when the model is NAR; AR keeps DiGIT's
 * top-p) -> VQGAN decoder -> PNG.
 */

import { s } from "../../core/config.ts";
import { useDevice } from "../../core/device.ts";
import { definePlugin } from "../../core/registry.ts";
import { loadParts, resolveSources } from "./load.ts";
import { DigitPreview } from "./model.ts";

export const previewOptions = s.object({
  dir: s.string({ nonEmpty: true })
    .describe("experiment folder searched for trained parts (default: the demo's outputs)")
    .optional(),
  stage1: s.string({ nonEmpty: true })
    .describe("stage-1 experiment folder (model.json + checkpoints/)").optional(),
  stage2: s.string({ nonEmpty: true })
    .describe("stage-2 experiment folder, <dir>/checkpoints/last, or a DiGIT stage-2 .pt")
    .optional(),
  vqgan: s.string({ nonEmpty: true })
    .describe(
      "VQGAN experiment folder, <dir>/checkpoints/last, or MAGE's .ckpt (default: found, or inside the stage-2 .pt)",
    )
    .optional(),
  checkpoint: s.enum(["last", "best"]).default("last"),
  stage2_top_p: s.number({ min: 0, max: 1 }).default(0.8).describe(
    "AR stage-2 nucleus mass (DiGIT: 0.8)",
  ),
  stage2_temperature: s.number({ positive: true }).default(1),
});

export default definePlugin({
  name: "digit-preview",
  version: "0.1.0",
  description:
    "the `digit` preview model: a trained stage 1 + stage 2 + VQGAN behind `deno task serve`",
  register(r) {
    r.preview({
      name: "digit",
      description:
        "class id -> stage 1 -> stage 2 -> VQGAN -> PNG, from the demo's (or any) trained outputs",
      options: previewOptions,
      create: async (o, ctx) => {
        // Find the parts before choosing a device: nothing trained is the common failure.
        const where = { ...o, outputDir: ctx.outputDir };
        const sources = await resolveSources(where, ctx.log);
        await useDevice(ctx.device);
        const parts = await loadParts(where, ctx.log, sources);
        try {
          return new DigitPreview(parts, {
            topP: o.stage2_top_p,
            temperature: o.stage2_temperature,
          });
        } catch (e) {
          // The parts do not fit together: free them before reporting.
          for (const m of [parts.stage1, parts.stage2, parts.vqgan]) m.dispose();
          throw e;
        }
      },
    });
  },
});
