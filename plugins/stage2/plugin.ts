/**
 * The stage-2 plugin: `train-stage2` (AR st2vtlm or MaskGIT st2vtlm_nar on semantic + VQ
 * token files) and the `digit-stage2` generator (semantic grids -> VQ grids).
 */

import { s } from "../../core/config.ts";
import { experimentDir, experimentPath } from "../../core/tasks.ts";
import { definePlugin } from "../../core/registry.ts";
import { TrainReporter } from "../../core/train/reporter.ts";
import { stage2ConfigSchema } from "./config.ts";
import { Stage2Generator } from "./generator.ts";
import { loadStage2 } from "./load.ts";
import { trainStage2FromConfig } from "./train.ts";

export default definePlugin({
  name: "digit-stage2",
  version: "0.1.0",
  description: "DiGIT stage 2: semantic tokens -> VQGAN codes (AR or MaskGIT)",
  register(r) {
    r.step({
      name: "train-stage2",
      description: "train the stage-2 pixel decoder on semantic + VQ token files",
      params: stage2ConfigSchema,
      outputs: (p) => ({ checkpoint: experimentPath(p.output.dir, "checkpoints/last.json") }),
      run: async (p, ctx) => {
        const dir = experimentDir(p.output.dir, ctx.stepDir);
        using report = new TrainReporter(dir, ctx.log, {
          signal: ctx.signal,
          fresh: ctx.fresh,
          label: "stage 2",
          unit: "tok",
        });
        const { model, result } = await trainStage2FromConfig(p, dir, report.hooks);
        model.dispose();
        report.finish(result);
      },
    });
    r.generator({
      name: "digit-stage2",
      description:
        "stage-2 decoder from a DiGIT .pt or <dir>/checkpoints/last (sample() needs options.condition)",
      options: s.object({
        checkpoint: s.string({ nonEmpty: true }),
        prefix_length: s.int({ min: 1 }).describe(
          "semantic tokens per image for DiGIT checkpoints (default 256)",
        ).optional(),
        length: s.int({ min: 1 }).describe(
          "VQ tokens per image for DiGIT checkpoints (default 256)",
        ).optional(),
      }),
      create: async (o) => {
        const { model, vqgan } = await loadStage2(o.checkpoint, {
          prefixLength: o.prefix_length,
          length: o.length,
        });
        vqgan?.dispose();
        return new Stage2Generator(model);
      },
    });
  },
});
