/**
 * Stage 2 behind the core `Generator` interface: semantic token grids in (as
 * `SampleOptions.condition`), VQ token grids out, by AR sampling (top-p 0.8) or MaskGIT
 * decoding (8 steps) depending on the model's variant.
 */

import type { Generator, SampleOptions, TokenGrid } from "../../core/interfaces.ts";
import { sampleNAR } from "./maskgit.ts";
import type { Stage2Model } from "./model.ts";
import { sampleAR, type Stage2SampleOptions } from "./sample_ar.ts";

/** Sample VQ tokens for semantic grids with the variant's default decoding. */
export function sampleStage2(
  model: Stage2Model,
  semantic: TokenGrid,
  opts: Stage2SampleOptions,
): Promise<TokenGrid> {
  return model.cfg.variant === "ar"
    ? sampleAR(model, semantic, opts)
    : sampleNAR(model, semantic, opts);
}

export class Stage2Generator implements Generator {
  readonly name: string;
  constructor(readonly model: Stage2Model) {
    this.name = `digit-stage2-${model.cfg.variant}`;
  }

  sample(o: SampleOptions): Promise<TokenGrid> {
    if (!o.condition) {
      throw new Error(`${this.name}: sample() needs the semantic tokens as options.condition`);
    }
    if (o.condition.count !== o.count) {
      throw new Error(
        `${this.name}: count ${o.count} does not match ${o.condition.count} conditioning grids`,
      );
    }
    return sampleStage2(this.model, o.condition, {
      seed: o.seed,
      temperature: o.temperature,
      topK: o.topK,
      topP: o.topP,
      steps: o.steps,
      onProgress: o.onProgress,
    });
  }
}
