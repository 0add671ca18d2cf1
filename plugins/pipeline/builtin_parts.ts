/**
 * The built-in checkpoint kinds of stage 1 and stage 2 as registry generators with a `slot`,
 * so the composer (build.ts) builds them the way it builds a third-party plugin's parts:
 * `registry.create("generators", kind, { checkpoint }, ctx)`. The VQGAN's kind, `vqgan`, is
 * the vqgan plugin's decoder.
 *
 *   stage1-gpt       our stage-1 checkpoints          stage1-fairseq   DiGIT's stage-1 .pt
 *   stage2-ar        our AR stage-2 checkpoints       stage2-maskgit   our MaskGIT ones
 *   stage2-digit     DiGIT's stage-2 .pt (it also holds its VQGAN: `takeDecoder()`)
 */

import { s } from "../../core/config.ts";
import { definePlugin, type Plugin, type Registry } from "../../core/registry.ts";
import { loadDigitStage1 } from "../stage1/digit_checkpoint.ts";
import {
  loadStage1Checkpoint,
  readStage1ClassNames,
  STAGE1_KIND,
  untrainedStage1,
} from "../stage1/load.ts";
import {
  loadDigitStage2,
  loadStage2Checkpoint,
  STAGE2_KINDS,
  untrainedStage2,
} from "../stage2/load.ts";
import { Stage1GptPart, Stage2ModelPart } from "./roles.ts";

const checkpoint = s.string({ nonEmpty: true, description: "checkpoint path or released file" });
/** The demo's baselines: built like the trained part, but from the seed instead of its weights. */
const untrained_seed = s.int().describe(
  "never-trained: the architecture the checkpoint records, weights drawn from this seed",
).optional();

/** Kinds of released files, named by the slot they are given for. */
export const RELEASED_KINDS = {
  stage1: "stage1-fairseq",
  stage2: "stage2-digit",
  vqgan: "vqgan-weights",
} as const;

/** VQGAN details given as options, leaving out those not given (undefined would override). */
export function vqganDetails(o: { norm_groups?: number; resolution?: number }): {
  normGroups?: number;
  resolution?: number;
} {
  return {
    ...(o.norm_groups !== undefined ? { normGroups: o.norm_groups } : {}),
    ...(o.resolution !== undefined ? { resolution: o.resolution } : {}),
  };
}

/**
 * The built-in stage-1 and stage-2 kinds, as a plugin of their own: the pipeline and preview
 * plugins both build parts, so both `use` it when they register (a plugin reached twice is
 * registered once).
 */
export const builtinParts: Plugin = definePlugin({
  name: "digit-parts",
  version: "0.1.0",
  description: "the built-in checkpoint kinds of stage 1 and stage 2, for the pipeline composer",
  register: registerBuiltinParts,
});

function registerBuiltinParts(r: Registry): void {
  r.generator({
    name: STAGE1_KIND,
    slot: "stage1",
    description: "stage 1 from one of our checkpoints (<dir>/checkpoints/last)",
    options: s.object({ checkpoint, untrained_seed }),
    create: async (o) => {
      if (o.untrained_seed !== undefined) {
        return new Stage1GptPart(await untrainedStage1(o.checkpoint, o.untrained_seed));
      }
      const classNames = await readStage1ClassNames(o.checkpoint);
      return new Stage1GptPart(await loadStage1Checkpoint(o.checkpoint), classNames);
    },
  });
  r.generator({
    name: RELEASED_KINDS.stage1,
    slot: "stage1",
    description: "stage 1 from DiGIT's released fairseq .pt",
    options: s.object({ checkpoint }),
    create: async (o) => {
      const loaded = await loadDigitStage1(o.checkpoint);
      return new Stage1GptPart(loaded.model);
    },
  });
  for (const kind of [STAGE2_KINDS.ar, STAGE2_KINDS.nar]) {
    r.generator({
      name: kind,
      slot: "stage2",
      description: `stage 2 (${kind === STAGE2_KINDS.ar ? "AR" : "MaskGIT"}) from our checkpoints`,
      options: s.object({ checkpoint, untrained_seed }),
      create: async (o) => {
        return new Stage2ModelPart(
          o.untrained_seed !== undefined
            ? await untrainedStage2(o.checkpoint, o.untrained_seed)
            : await loadStage2Checkpoint(o.checkpoint),
        );
      },
    });
  }
  r.generator({
    name: RELEASED_KINDS.stage2,
    slot: "stage2",
    description: "stage 2 (and its VQGAN) from DiGIT's released stage-2 .pt",
    options: s.object({
      checkpoint,
      prefix_length: s.int({ min: 1 }).describe("semantic tokens per image (default 256)")
        .optional(),
      length: s.int({ min: 1 }).describe("VQ tokens per image (default 256)").optional(),
      norm_groups: s.int({ min: 1 }).describe("VQGAN GroupNorm groups").optional(),
      resolution: s.int({ min: 1 }).describe("VQGAN image side").optional(),
    }),
    create: async (o) => {
      const loaded = await loadDigitStage2(o.checkpoint, {
        prefixLength: o.prefix_length,
        length: o.length,
        vqgan: vqganDetails(o),
      });
      return new Stage2ModelPart(loaded.model, loaded.vqgan);
    },
  });
}
