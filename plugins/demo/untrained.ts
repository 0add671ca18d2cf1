/**
 * The demo's baselines: the same stage-1, stage-2 and VQGAN models as the trained ones,
 * freshly initialised and never trained, saved as the loaders read them
 * (`<dir>/checkpoints/last`, whose meta records `{ kind, config, untrained: true }`).
 * Sampling them shows what training buys: all three untrained is the "untrained pipeline";
 * untrained generators through the trained VQGAN show what stage 1 and stage 2 learned on
 * top of the VQGAN. The part search (plugins/pipeline/parts.ts) passes over checkpoints
 * marked `untrained`, so `deno task serve` keeps serving the trained models.
 *
 * Each baseline is built the way the composer builds a trained part: the trained checkpoint's
 * kind names the registry entry, which gets `untrained_seed` and returns a fresh model of the
 * architecture the checkpoint records. So a plugin's kind gets baselines too, and no model
 * class is constructed here.
 */

import { saveCheckpoint } from "../../core/io/checkpoint.ts";
import { hostStateDict, Module } from "../../core/nn/module.ts";
import type { RunContext } from "../../core/registry.ts";
import { buildPart } from "../pipeline/build.ts";
import { PART_LABELS, partAt, type PartName } from "../pipeline/parts.ts";

/** The module whose weights a built part holds: the part's `model`, or the part itself. */
function moduleOf(product: unknown, who: string): Module & { cfg: unknown } {
  const m = (product as { model?: unknown }).model ?? product;
  if (!(m instanceof Module) || !("cfg" in m)) {
    throw new Error(`${who}: the part built holds no module with a config to save`);
  }
  return m as Module & { cfg: unknown };
}

/**
 * Writes `<outDir>/checkpoints/last`: a fresh `part` shaped like the one trained in
 * `trainedDir`, its weights drawn from `seed`, its meta the trained one's kind and config.
 */
export async function writeUntrained(
  part: PartName,
  trainedDir: string,
  outDir: string,
  seed: number,
  ctx: RunContext,
): Promise<void> {
  const who = `untrained-models: ${PART_LABELS[part]} of ${trainedDir}`;
  const ref = await partAt(part, trainedDir, "last", ctx.registry);
  const product = await buildPart(ref, { untrained_seed: seed }, { ctx, who });
  try {
    const model = moduleOf(product, who);
    await Deno.mkdir(`${outDir}/checkpoints`, { recursive: true });
    await saveCheckpoint(`${outDir}/checkpoints/last`, await hostStateDict(model), {
      kind: ref.kind,
      config: model.cfg,
      untrained: true,
    });
  } finally {
    (product as { dispose(): void }).dispose();
  }
}
