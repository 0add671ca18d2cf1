/**
 * The preview model: class id -> semantic tokens (stage 1) -> image tokens (stage 2) ->
 * pixels (decoder) -> PNG, with progress per stage and a way to stop between tokens.
 *
 * `PipelinePreview` drives any parts the composer built (plugins/pipeline/build.ts), a
 * plugin's included. `DigitPreview` is the same over our own three networks, which the server
 * also hands to the web page (server/web.ts) so that the browser can run them itself.
 *
 * The parts are loaded once (see load.ts) and reused for every request; the server queues
 * requests, so one generation runs at a time.
 */

import { encodePng } from "../../core/image/codec.ts";
import type { ImageBatch, TokenGrid } from "../../core/interfaces.ts";
import type {
  PreviewImage,
  PreviewModel,
  PreviewProgress,
  PreviewRequest,
} from "../../core/registry.ts";
import { type BuiltParts, checkFit, disposeParts } from "../pipeline/build.ts";
import { Stage1GptPart, Stage2ModelPart } from "../pipeline/roles.ts";
import type { Stage1GPT } from "../stage1/model.ts";
import type { Stage2Model } from "../stage2/model.ts";
import { VQGAN } from "../vqgan/vqgan.ts";

/** Our three networks. */
export interface DigitParts {
  stage1: Stage1GPT;
  stage2: Stage2Model;
  vqgan: VQGAN;
  /** Where the parts came from, for the page title and logs. */
  source?: string;
  /** Names of stage 1's class ids, as its checkpoint records them. */
  classNames?: readonly string[];
}

/** Stage-2 decoding settings the request does not carry (DiGIT's defaults when absent). */
export interface Stage2Settings {
  /** AR only: nucleus mass (DiGIT: 0.8). */
  topP?: number;
  /** Sampling temperature of stage 2 (DiGIT: 1). */
  temperature?: number;
}

/** Throws the abort reason (or a plain "cancelled") once the signal has fired. */
function stopIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw signal.reason instanceof Error ? signal.reason : new Error("generation cancelled");
  }
}

/** A preview over built parts: a trained stage 1, stage 2 and decoder. */
export class PipelinePreview implements PreviewModel {
  readonly name: string;
  readonly classes?: number;
  /** The stage-1 checkpoint's names (the server falls back to labels.tsv, then to ids). */
  readonly classNames?: readonly string[];
  readonly vocabSize: number;
  readonly usesSteps: boolean;

  /** Throws when the parts do not fit together (before anything is generated). */
  constructor(
    readonly built: BuiltParts & { stage1: NonNullable<BuiltParts["stage1"]> },
    readonly stage2Settings: Stage2Settings = {},
    source?: string,
  ) {
    const where = source ? ` (${source})` : "";
    checkFit(built, {}, `digit preview${where}`);
    this.name =
      `DiGIT (stage 2 ${built.stage2.variant.toUpperCase()}, ${built.decoder.imageSize} px)` +
      (source ? ` from ${source}` : "");
    if (built.stage1.classes > 0) this.classes = built.stage1.classes;
    if (this.classes && built.stage1.classNames) this.classNames = built.stage1.classNames;
    this.vocabSize = built.stage1.vocabSize; // top-k applies to stage 1 (stage 2 takes top-p)
    this.usesSteps = built.stage2.variant === "nar";
  }

  async generate(
    request: PreviewRequest,
    onProgress: (progress: PreviewProgress) => void,
    signal?: AbortSignal,
  ): Promise<PreviewImage[]> {
    const { stage1, stage2 } = this.built;
    const n = request.count;
    // An unconditional stage 1 has no class tokens: the class id is ignored there.
    const classId = this.classes !== undefined ? request.classId : undefined;
    if (classId !== undefined && (classId < 0 || classId >= this.classes!)) {
      throw new Error(`digit preview: class ${classId} is outside 0..${this.classes! - 1}`);
    }
    const report = (stage: string) => (done: number, total: number) => {
      stopIfAborted(signal); // throwing here unwinds the sampler, which frees its caches
      onProgress({ stage, done, total });
    };
    stopIfAborted(signal);

    const semantic: TokenGrid = await stage1.sample({
      count: n,
      seed: request.seed,
      topK: request.topK,
      temperature: request.temperature,
      classes: classId !== undefined ? new Int32Array(n).fill(classId) : undefined,
      onProgress: report("stage 1"),
    });

    const codes: TokenGrid = await stage2.sample({
      count: n,
      condition: semantic,
      seed: request.seed,
      steps: request.steps,
      topP: stage2.variant === "ar" ? (this.stage2Settings.topP ?? 0.8) : undefined,
      temperature: this.stage2Settings.temperature ?? 1,
      onProgress: report(stage2.variant === "nar" ? "stage 2 (MaskGIT)" : "stage 2"),
    });

    const images = await this.#decode(codes, report("decode"));
    const pngs: PreviewImage[] = [];
    const stem = `digit${classId !== undefined ? `-c${classId}` : ""}-s${request.seed}`;
    for (let i = 0; i < n; i++) {
      stopIfAborted(signal);
      const size = images.height * images.width * 3;
      const png = encodePng({
        width: images.width,
        height: images.height,
        data: images.data.subarray(i * size, (i + 1) * size),
      });
      pngs.push({ name: `${stem}-${i}`, png });
    }
    return pngs;
  }

  /** Decode a few images at a time, so progress moves and an abort is heard. */
  async #decode(
    codes: TokenGrid,
    report: (done: number, total: number) => void,
  ): Promise<ImageBatch> {
    const { decoder } = this.built;
    const L = codes.height * codes.width;
    const chunk = Math.max(1, decoder.batchSize ?? codes.count);
    let out: Uint8Array | null = null;
    let height = 0, width = 0;
    report(0, codes.count);
    for (let i = 0; i < codes.count; i += chunk) {
      const m = Math.min(chunk, codes.count - i);
      const part = await decoder.decode({
        tokens: codes.tokens.subarray(i * L, (i + m) * L),
        count: m,
        height: codes.height,
        width: codes.width,
      });
      ({ height, width } = part);
      out ??= new Uint8Array(codes.count * height * width * 3);
      out.set(part.data, i * height * width * 3);
      report(i + m, codes.count);
    }
    return { data: out!, count: codes.count, height, width };
  }

  /** Frees the weights (the server keeps the model for its whole life; tests call this). */
  dispose(): void {
    disposeParts(this.built);
  }
}

/** The preview over our own three networks, which the web page can also run. */
export class DigitPreview extends PipelinePreview {
  constructor(readonly parts: DigitParts, stage2Settings: Stage2Settings = {}) {
    super(
      {
        stage1: new Stage1GptPart(parts.stage1, parts.classNames),
        stage2: new Stage2ModelPart(parts.stage2),
        decoder: parts.vqgan,
      },
      stage2Settings,
      parts.source,
    );
  }
}

/**
 * The preview for built parts: a DigitPreview when they are our networks (so the web page
 * gets their weights), else a PipelinePreview.
 */
export function previewOf(
  built: BuiltParts & { stage1: NonNullable<BuiltParts["stage1"]> },
  settings: Stage2Settings,
  source?: string,
): PipelinePreview {
  const { stage1, stage2, decoder } = built;
  if (
    stage1 instanceof Stage1GptPart && stage2 instanceof Stage2ModelPart &&
    decoder instanceof VQGAN
  ) {
    return new DigitPreview(
      {
        stage1: stage1.model,
        stage2: stage2.model,
        vqgan: decoder,
        source,
        ...(stage1.classNames ? { classNames: stage1.classNames } : {}),
      },
      settings,
    );
  }
  return new PipelinePreview(built, settings, source);
}
