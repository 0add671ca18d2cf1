/**
 * The DiGIT pipeline as a web page runs it: three parts built from their configs and
 * safetensors weights on one backend, then class -> stage 1 -> stage 2 -> VQGAN, with
 * progress per stage and a callback per decoded image so a page can draw each as it lands.
 *
 * Sampling settings follow the server's `DigitPreview` (plugins/preview/model.ts) so the
 * same request gives the same tokens in the page and on the server. Nothing here touches
 * Deno or the DOM: the Deno tests run this file on the CPU backend as the reference.
 */

import type { Backend } from "../core/backend.ts";
import { setDefaultBackend } from "../core/device.ts";
import type { StateDict } from "../core/io/host_tensor.ts";
import type { ImageBatch, TokenGrid } from "../core/interfaces.ts";
import { type Stage1Config, Stage1GPT } from "../plugins/stage1/model.ts";
import { sampleStage1 } from "../plugins/stage1/sampler.ts";
import { sampleStage2 } from "../plugins/stage2/generator.ts";
import { type Stage2Config, Stage2Model } from "../plugins/stage2/model.ts";
import { VQGAN, type VqganConfig } from "../plugins/vqgan/vqgan.ts";

export type PartName = "stage1" | "stage2" | "vqgan";
export const PART_NAMES: readonly PartName[] = ["stage1", "stage2", "vqgan"];

/** What GET /web/manifest.json answers: each part's config and where its weights are. */
export interface WebManifest {
  name: string;
  classes: number | null;
  parts: {
    stage1: { config: Stage1Config; url: string; bytes: number };
    stage2: { config: Stage2Config; url: string; bytes: number };
    vqgan: { config: VqganConfig; url: string; bytes: number };
  };
}

export interface WebParts {
  stage1: Stage1GPT;
  stage2: Stage2Model;
  vqgan: VQGAN;
  backend: Backend;
}

/**
 * Builds the three networks on `backend` (made the default, since modules allocate their
 * parameters there) and loads their weights strictly: a missing or misshapen key throws.
 */
export function buildParts(
  manifest: Pick<WebManifest, "parts">,
  weights: Record<PartName, StateDict>,
  backend: Backend,
): WebParts {
  setDefaultBackend(backend);
  const p = manifest.parts;
  const stage1 = new Stage1GPT(p.stage1.config);
  const stage2 = new Stage2Model(p.stage2.config);
  const vqgan = new VQGAN(p.vqgan.config);
  try {
    stage1.loadStateDict(weights.stage1, { strict: true, what: "stage-1 weights" });
    stage2.loadStateDict(weights.stage2, { strict: true, what: "stage-2 weights" });
    vqgan.loadStateDict(weights.vqgan, { strict: true, what: "VQGAN weights" });
  } catch (e) {
    stage1.dispose();
    stage2.dispose();
    vqgan.dispose();
    throw e;
  }
  stage1.eval();
  stage2.eval();
  vqgan.eval();
  return { stage1, stage2, vqgan, backend };
}

export function disposeParts(parts: WebParts): void {
  parts.stage1.dispose();
  parts.stage2.dispose();
  parts.vqgan.dispose();
}

export interface WebGenerateRequest {
  count: number;
  seed: number;
  /** Ignored by an unconditional stage 1, as on the server. */
  classId?: number;
  topK: number;
  temperature: number;
  /** MaskGIT iterations (stage 2 NAR only). */
  steps: number;
}

export interface WebGenerateHooks {
  onProgress?: (stage: string, done: number, total: number) => void;
  /** Called once per image, in order, as soon as its pixels are on the host (RGB, HWC). */
  onImage?: (index: number, rgb: Uint8Array, width: number, height: number) => void;
  signal?: AbortSignal;
}

export interface WebGenerateResult {
  semantic: TokenGrid;
  codes: TokenGrid;
  images: ImageBatch;
  /** Milliseconds per stage, for the page's timing line. */
  ms: { stage1: number; stage2: number; decode: number };
}

function stopIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) {
    throw signal.reason instanceof Error ? signal.reason : new Error("generation cancelled");
  }
}

export async function generate(
  parts: WebParts,
  request: WebGenerateRequest,
  hooks: WebGenerateHooks = {},
): Promise<WebGenerateResult> {
  const { stage1, stage2, vqgan } = parts;
  // Sampling reads the default backend for the tensors it creates.
  setDefaultBackend(parts.backend);
  const n = request.count;
  const classes = stage1.cfg.classes;
  const classId = classes > 0 ? request.classId : undefined;
  if (classId !== undefined && !(Number.isInteger(classId) && classId >= 0 && classId < classes)) {
    throw new Error(`class ${classId} is outside 0..${classes - 1}`);
  }
  const report = (stage: string) => (done: number, total: number) => {
    stopIfAborted(hooks.signal);
    hooks.onProgress?.(stage, done, total);
  };
  stopIfAborted(hooks.signal);
  const t0 = performance.now();
  const semantic = await sampleStage1(stage1, {
    count: n,
    seed: request.seed,
    topK: request.topK,
    temperature: request.temperature,
    classes: classId !== undefined ? new Int32Array(n).fill(classId) : undefined,
    onProgress: report("stage 1"),
  });
  const t1 = performance.now();
  // DigitPreview's stage-2 settings: top-p 0.8 for AR, temperature 1.
  const codes = await sampleStage2(stage2, semantic, {
    seed: request.seed,
    steps: request.steps,
    topP: stage2.cfg.variant === "ar" ? 0.8 : undefined,
    temperature: 1,
    onProgress: report(stage2.cfg.variant === "nar" ? "stage 2 (MaskGIT)" : "stage 2"),
  });
  const t2 = performance.now();

  // One image per decoder call, so each can be drawn as soon as it exists.
  const L = codes.height * codes.width;
  const decodeReport = report("decode");
  let data: Uint8Array | null = null;
  let height = 0, width = 0;
  decodeReport(0, n);
  for (let i = 0; i < n; i++) {
    const one = await vqgan.decode({
      tokens: codes.tokens.subarray(i * L, (i + 1) * L),
      count: 1,
      height: codes.height,
      width: codes.width,
    });
    ({ height, width } = one);
    data ??= new Uint8Array(n * height * width * 3);
    data.set(one.data, i * height * width * 3);
    hooks.onImage?.(i, one.data, width, height);
    decodeReport(i + 1, n);
  }
  const t3 = performance.now();
  return {
    semantic,
    codes,
    images: { data: data!, count: n, height, width },
    ms: { stage1: t1 - t0, stage2: t2 - t1, decode: t3 - t2 },
  };
}
