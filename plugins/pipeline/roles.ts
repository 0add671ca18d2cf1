/**
 * The three slots of a generation pipeline as the composer (parts.ts) hands them out: the core
 * roles (`Generator`, `Decoder`) plus what the pipeline must know to check that parts fit
 * together. A plugin's checkpoint-loading generator or decoder (registered with `slot:`)
 * returns one of these; the built-in networks are wrapped here.
 */

import type { Decoder, Generator, SampleOptions, TokenGrid } from "../../core/interfaces.ts";
import { sampleStage1 } from "../stage1/sampler.ts";
import type { Stage1GPT } from "../stage1/model.ts";
import { sampleStage2 } from "../stage2/generator.ts";
import type { Stage2Model } from "../stage2/model.ts";
import type { VQGAN } from "../vqgan/vqgan.ts";

/** Stage 1: (class ids) -> semantic token grids. */
export interface Stage1Part extends Generator {
  /** Classes of a class-conditional model; 0 when unconditional. */
  readonly classes: number;
  /** Names of the class ids, when the checkpoint records them (the preview page lists them). */
  readonly classNames?: readonly string[];
  /** Distinct semantic tokens it samples. */
  readonly vocabSize: number;
  /** Semantic tokens per image. */
  readonly length: number;
  /** Frees the model's weights. */
  dispose(): void;
}

/** Sampling options of stage 2: the semantic grids come as `condition`. */
export interface Stage2SampleOptions extends SampleOptions {
  /**
   * Index of the first image in the whole run: image k of this call is image firstIndex + k,
   * so a model with a random stream per image gives the same image whatever the batching.
   */
  firstIndex?: number;
}

/** Stage 2: semantic token grids (`condition`) -> image token grids. */
export interface Stage2Part extends Generator {
  /** `nar` when it decodes in `steps` iterations (MaskGIT); `ar` otherwise. */
  readonly variant: "ar" | "nar";
  /** Distinct semantic tokens it reads. */
  readonly conditionVocab: number;
  /** Semantic tokens per image it reads. */
  readonly conditionLength: number;
  /** Distinct image tokens (decoder codes) it samples. */
  readonly vocabSize: number;
  /** Image tokens per image. */
  readonly length: number;
  /** Sample one image-token grid per grid of `options.condition`. */
  sample(options: Stage2SampleOptions): Promise<TokenGrid>;
  /** A decoder the checkpoint carried (DiGIT's stage-2 .pt holds its VQGAN); the caller owns it. */
  takeDecoder?(): DecoderPart | null;
  /** Frees the model's weights. */
  dispose(): void;
}

/** The decoder: image token grids -> pixels. */
export interface DecoderPart extends Decoder {
  /** Distinct codes it decodes (the VQGAN's codebook size); absent for the VQGAN (its cfg says). */
  readonly codebookSize?: number;
  /** Images per decode call that keep memory bounded (default: all at once). */
  readonly batchSize?: number;
  /** Frees the model's weights. */
  dispose(): void;
}

/** The codebook size of a decoder: its own `codebookSize`, or a VQGAN's `cfg.nEmbed`. */
export function codebookSize(d: DecoderPart): number | undefined {
  return d.codebookSize ?? (d as Partial<VQGAN>).cfg?.nEmbed;
}

/** Our stage-1 GPT in the stage-1 slot. */
export class Stage1GptPart implements Stage1Part {
  readonly name = "stage1-gpt";
  constructor(readonly model: Stage1GPT, readonly classNames?: readonly string[]) {}
  get classes(): number {
    return this.model.cfg.classes;
  }
  get vocabSize(): number {
    return this.model.cfg.clusters;
  }
  get length(): number {
    return this.model.cfg.length;
  }
  sample(o: SampleOptions): Promise<TokenGrid> {
    return sampleStage1(this.model, o);
  }
  dispose(): void {
    this.model.dispose();
  }
}

/** Our stage-2 model (AR or MaskGIT) in the stage-2 slot. */
export class Stage2ModelPart implements Stage2Part {
  readonly name: string;
  #decoder: DecoderPart | null;
  constructor(readonly model: Stage2Model, decoder: VQGAN | null = null) {
    this.name = `stage2-${model.cfg.variant}`;
    this.#decoder = decoder;
  }
  get variant(): "ar" | "nar" {
    return this.model.cfg.variant;
  }
  get conditionVocab(): number {
    return this.model.cfg.clusters;
  }
  get conditionLength(): number {
    return this.model.cfg.prefixLength;
  }
  get vocabSize(): number {
    return this.model.cfg.codebookSize;
  }
  get length(): number {
    return this.model.cfg.length;
  }
  sample(o: Stage2SampleOptions): Promise<TokenGrid> {
    if (!o.condition) throw new Error(`${this.name}: sample() needs options.condition`);
    return sampleStage2(this.model, o.condition, {
      seed: o.seed,
      firstIndex: o.firstIndex,
      temperature: o.temperature,
      topK: o.topK,
      topP: o.topP,
      steps: o.steps,
      onProgress: o.onProgress,
    });
  }
  takeDecoder(): DecoderPart | null {
    const d = this.#decoder;
    this.#decoder = null;
    return d;
  }
  dispose(): void {
    this.model.dispose();
    this.#decoder?.dispose();
    this.#decoder = null;
  }
}

const MEMBERS: Record<"stage1" | "stage2" | "decoder", string[]> = {
  stage1: ["sample", "dispose", "classes", "vocabSize", "length"],
  stage2: [
    "sample",
    "dispose",
    "variant",
    "conditionVocab",
    "conditionLength",
    "vocabSize",
    "length",
  ],
  decoder: ["decode", "dispose", "gridSize", "imageSize"],
};

/** Throws, naming what is missing, when a plugin's product does not fill its slot. */
export function checkSlot(
  slot: "stage1" | "stage2" | "decoder",
  product: unknown,
  who: string,
): void {
  const p = product as Record<string, unknown> | null;
  const missing = MEMBERS[slot].filter((m) => p === null || typeof p !== "object" || !(m in p));
  if (missing.length > 0) {
    throw new Error(`${who} does not fill the ${slot} slot: it lacks ${missing.join(", ")}`);
  }
}
