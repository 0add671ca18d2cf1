/**
 * The preview plugin: registers the `digit` preview model that `deno task serve` loads. Its
 * parts are built through the registry by their checkpoint kind, so a plugin given with
 * `--plugin` supplies a stage 2 or decoder too (examples/custom-decoder).
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
import { definePlugin } from "../../core/registry.ts";
import { disposeParts } from "../pipeline/build.ts";
import { builtinParts } from "../pipeline/builtin_parts.ts";
import { loadParts, resolveSources } from "./load.ts";
import { previewOf } from "./model.ts";

export const previewOptions = s.object({
  dir: s.string({ nonEmpty: true })
    .describe("experiment folder searched for trained parts (default: the demo's outputs)")
    .optional(),
  stage1: s.string({ nonEmpty: true })
    .describe("stage-1 experiment folder, <dir>/checkpoints/last, or DiGIT's fairseq stage-1 .pt")
    .optional(),
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
  async register(r) {
    await r.use(builtinParts);
    r.preview({
      name: "digit",
      description:
        "class id -> stage 1 -> stage 2 -> VQGAN -> PNG, from the demo's (or any) trained outputs",
      options: previewOptions,
      create: async (o, ctx) => {
        // Find the parts before loading any: nothing trained is the common failure.
        const sources = await resolveSources({ ...o, outputDir: ctx.outputDir }, ctx);
        const parts = await loadParts(sources, ctx);
        try {
          const settings = { topP: o.stage2_top_p, temperature: o.stage2_temperature };
          return previewOf(parts, settings, parts.source);
        } catch (e) {
          // The parts do not fit together: free them before reporting.
          disposeParts(parts);
          throw e;
        }
      },
    });
  },
});
