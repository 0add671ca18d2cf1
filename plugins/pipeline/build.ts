/**
 * Building the parts that parts.ts found: each through the registry, by its checkpoint kind
 * (`registry.create("generators" | "decoders", kind, { checkpoint }, ctx)`), so a plugin that
 * registers a kind with a `slot` supplies stage 1, stage 2 or the decoder of `sample`,
 * `serve` and `DigitPipeline` without a change here. Then one check that they fit together.
 */

import type { RunContext } from "../../core/registry.ts";
import { RELEASED_KINDS } from "./builtin_parts.ts";
import { NoTrainedModelError, PART_LABELS, type PartName, type PartRef } from "./parts.ts";
import {
  checkSlot,
  codebookSize,
  type DecoderPart,
  type Stage1Part,
  type Stage2Part,
} from "./roles.ts";
import { VQGAN_KIND } from "../vqgan/load.ts";

export interface BuildPartsOptions {
  /** The registry the kinds are built from, and the device they go to. */
  ctx: RunContext;
  /** VQGAN details its weights do not show (released files: GroupNorm groups...). */
  vqganConfig?: { normGroups?: number; resolution?: number };
  /** Prefixes messages, e.g. "sample". */
  who?: string;
}

/** The parts of a pipeline; `stage1` is null when no stage-1 ref was given. */
export interface BuiltParts {
  stage1: Stage1Part | null;
  stage2: Stage2Part;
  decoder: DecoderPart;
}

/** Released MAGE weights load through the VQGAN's own decoder factory. */
const ENTRY_OF_KIND: Record<string, string> = { [RELEASED_KINDS.vqgan]: VQGAN_KIND };

const SLOT: Record<PartName, "stage1" | "stage2" | "decoder"> = {
  stage1: "stage1",
  stage2: "stage2",
  vqgan: "decoder",
};

/**
 * Builds one part through the registry and checks that the product fills its slot; `options`
 * go to the kind's factory beside `checkpoint` (e.g. `untrained_seed` for the demo's baselines).
 */
export async function buildPart(
  ref: PartRef,
  options: Record<string, unknown>,
  o: BuildPartsOptions,
): Promise<unknown> {
  const slot = SLOT[ref.part];
  const name = ENTRY_OF_KIND[ref.kind] ?? ref.kind;
  const who = `${o.who ?? "pipeline"}: ${PART_LABELS[ref.part]} ${ref.path} (kind '${ref.kind}')`;
  const product = await o.ctx.registry.create(
    slot === "decoder" ? "decoders" : "generators",
    name,
    { checkpoint: ref.path, ...options },
    o.ctx,
    who,
  );
  try {
    checkSlot(slot, product, who);
  } catch (e) {
    (product as { dispose?: () => void } | null)?.dispose?.();
    throw e;
  }
  return product;
}

/**
 * Builds the parts by their kinds: stage 1, then the decoder, then stage 2 (DiGIT's stage-2
 * .pt takes its sequence lengths from the other two, and may supply the decoder). Whatever was
 * built is freed if a later part fails.
 */
export async function buildParts(
  refs: Partial<Record<PartName, PartRef>>,
  o: BuildPartsOptions,
): Promise<BuiltParts> {
  const who = o.who ?? "pipeline";
  const vq = o.vqganConfig ?? {};
  const vqOptions = {
    ...(vq.normGroups !== undefined ? { norm_groups: vq.normGroups } : {}),
    ...(vq.resolution !== undefined ? { resolution: vq.resolution } : {}),
  };
  let stage1: Stage1Part | null = null, stage2: Stage2Part | null = null;
  let decoder: DecoderPart | null = null;
  try {
    if (refs.stage1) stage1 = await buildPart(refs.stage1, {}, o) as Stage1Part;
    if (refs.vqgan) {
      const builtin = refs.vqgan.kind === VQGAN_KIND || refs.vqgan.kind === RELEASED_KINDS.vqgan;
      decoder = await buildPart(refs.vqgan, builtin ? vqOptions : {}, o) as DecoderPart;
    }
    const s2 = refs.stage2;
    if (!s2) throw new Error(`${who}: no stage 2 given`);
    const released = s2.kind === RELEASED_KINDS.stage2;
    stage2 = await buildPart(
      s2,
      released
        ? {
          ...(stage1 ? { prefix_length: stage1.length } : {}),
          ...(decoder ? { length: decoder.gridSize * decoder.gridSize } : {}),
          ...vqOptions,
        }
        : {},
      o,
    ) as Stage2Part;
    const carried = stage2.takeDecoder?.() ?? null;
    if (decoder) carried?.dispose();
    else decoder = carried;
    if (!decoder) {
      throw new NoTrainedModelError(
        released
          ? `${who}: ${s2.path} holds no vqgan.* weights; give a VQGAN (vqgan=<VQGAN folder, checkpoint or .ckpt>)`
          : `${who}: no VQGAN given or found`,
      );
    }
    return { stage1, stage2, decoder };
  } catch (e) {
    stage1?.dispose();
    stage2?.dispose();
    decoder?.dispose();
    throw e;
  }
}

/** Frees every part. */
export function disposeParts(parts: BuiltParts): void {
  parts.stage1?.dispose();
  parts.stage2.dispose();
  parts.decoder.dispose();
}

/**
 * Throws, naming both parts, when they were not trained to fit together: stage 1's tokens must
 * be stage 2's condition, stage 2's codes the decoder's codebook and grid.
 */
export function checkFit(
  parts: BuiltParts,
  refs: Partial<Record<PartName, PartRef>>,
  who: string,
): void {
  const at = (p: PartName) => {
    const path = refs[p]?.path ??
      (p === "vqgan" && refs.stage2 ? `inside ${refs.stage2.path}` : undefined);
    return path !== undefined ? `${PART_LABELS[p]} (${path})` : PART_LABELS[p];
  };
  const { stage1: s1, stage2: s2, decoder } = parts;
  if (s1 && s1.vocabSize !== s2.conditionVocab) {
    throw new Error(
      `${who}: ${at("stage1")} has ${s1.vocabSize} semantic clusters, ${
        at("stage2")
      } expects ${s2.conditionVocab}`,
    );
  }
  if (s1 && s1.length !== s2.conditionLength) {
    throw new Error(
      `${who}: ${at("stage1")} makes ${s1.length} tokens per image, ${
        at("stage2")
      } reads a ${s2.conditionLength}-token prefix`,
    );
  }
  const codes = codebookSize(decoder);
  if (codes !== undefined && s2.vocabSize !== codes) {
    throw new Error(
      `${who}: ${at("stage2")} predicts ${s2.vocabSize} VQ codes, the ${
        at("vqgan")
      } codebook has ${codes}`,
    );
  }
  const g = decoder.gridSize;
  if (s2.length !== g * g) {
    throw new Error(
      `${who}: ${at("stage2")} makes ${s2.length} VQ tokens per image, the ${
        at("vqgan")
      } decodes a ${g}x${g} grid`,
    );
  }
}
