/**
 * The DiGIT preview model: class id -> semantic tokens (stage 1) -> VQ tokens (stage 2) ->
 * pixels (VQGAN decoder) -> PNG, with progress per stage and a way to stop between tokens.
 *
 * The three networks are loaded once (see load.ts) and reused for every request; the
 * server queues requests, so one generation runs at a time.
 */

import { encodePng } from "../../core/image/codec.ts";
import type { ImageBatch, TokenGrid } from "../../core/interfaces.ts";
import type {
  PreviewImage,
  PreviewModel,
  PreviewProgress,
  PreviewRequest,
} from "../../core/registry.ts";
import { sampleStage1 } from "../stage1/sampler.ts";
import type { Stage1GPT } from "../stage1/model.ts";
import { sampleStage2 } from "../stage2/generator.ts";
import type { Stage2Model } from "../stage2/model.ts";
import type { VQGAN } from "../vqgan/vqgan.ts";

export interface DigitParts {
  stage1: Stage1GPT;
  stage2: Stage2Model;
  vqgan: VQGAN;
  /** Where the parts came from, for the page title and logs. */
  source?: string;
}

/** Stage-2 decoding settings the request does not carry (DiGIT's defaults when absent). */
export interface Stage2Settings {
  /** AR only: nucleus mass (DiGIT: 0.8). */
  topP?: number;
  /** Sampling temperature of stage 2 (DiGIT: 1). */
  temperature?: number;
}

/** Checks that the three parts fit together; throws naming the mismatched sizes. */
export function checkParts(p: DigitParts): void {
  const where = p.source ? ` (${p.source})` : "";
  const s1 = p.stage1.cfg, s2 = p.stage2.cfg, vq = p.vqgan.cfg;
  if (s1.clusters !== s2.clusters) {
    throw new Error(
      `digit preview${where}: stage 1 has ${s1.clusters} semantic clusters, stage 2 expects ${s2.clusters}`,
    );
  }
  if (s1.length !== s2.prefixLength) {
    throw new Error(
      `digit preview${where}: stage 1 makes ${s1.length} tokens per image, stage 2 reads a ${s2.prefixLength}-token prefix`,
    );
  }
  if (s2.codebookSize !== vq.nEmbed) {
    throw new Error(
      `digit preview${where}: stage 2 predicts ${s2.codebookSize} VQ codes, the VQGAN codebook has ${vq.nEmbed}`,
    );
  }
  const grid = p.vqgan.gridSize;
  if (s2.length !== grid * grid) {
    throw new Error(
      `digit preview${where}: stage 2 makes ${s2.length} VQ tokens per image, the VQGAN decodes a ${grid}x${grid} grid`,
    );
  }
}

/** Throws the abort reason (or a plain "cancelled") once the signal has fired. */
function stopIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw signal.reason instanceof Error ? signal.reason : new Error("generation cancelled");
  }
}

export class DigitPreview implements PreviewModel {
  readonly name: string;
  readonly classes?: number;

  constructor(readonly parts: DigitParts, readonly stage2Settings: Stage2Settings = {}) {
    checkParts(parts);
    const s2 = parts.stage2.cfg;
    this.name = `DiGIT (stage 2 ${s2.variant.toUpperCase()}, ${parts.vqgan.imageSize} px)` +
      (parts.source ? ` from ${parts.source}` : "");
    if (parts.stage1.cfg.classes > 0) this.classes = parts.stage1.cfg.classes;
  }

  async generate(
    request: PreviewRequest,
    onProgress: (progress: PreviewProgress) => void,
    signal?: AbortSignal,
  ): Promise<PreviewImage[]> {
    const { stage1, stage2 } = this.parts;
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

    const semantic: TokenGrid = await sampleStage1(stage1, {
      count: n,
      seed: request.seed,
      topK: request.topK,
      temperature: request.temperature,
      classes: classId !== undefined ? new Int32Array(n).fill(classId) : undefined,
      onProgress: report("stage 1"),
    });

    const codes: TokenGrid = await sampleStage2(stage2, semantic, {
      seed: request.seed,
      steps: request.steps,
      topP: stage2.cfg.variant === "ar" ? (this.stage2Settings.topP ?? 0.8) : undefined,
      temperature: this.stage2Settings.temperature ?? 1,
      onProgress: report(stage2.cfg.variant === "nar" ? "stage 2 (MaskGIT)" : "stage 2"),
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

  /** VQGAN decode a few images at a time, so progress moves and an abort is heard. */
  async #decode(
    codes: TokenGrid,
    report: (done: number, total: number) => void,
  ): Promise<ImageBatch> {
    const { vqgan } = this.parts;
    const L = codes.height * codes.width;
    const chunk = Math.max(1, vqgan.batchSize);
    let out: Uint8Array | null = null;
    let height = 0, width = 0;
    report(0, codes.count);
    for (let i = 0; i < codes.count; i += chunk) {
      const m = Math.min(chunk, codes.count - i);
      const part = await vqgan.decode({
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
    this.parts.stage1.dispose();
    this.parts.stage2.dispose();
    this.parts.vqgan.dispose();
  }
}
