/**
 * Semantic tokens -> stage 2 -> VQGAN -> PNG files, as DiGIT's second sampling pass does:
 * `<outDir>/results/<id>.png` per image, `<outDir>/vq_tokens.codecs` (the sampled VQ codes,
 * one image per line) and `<outDir>/contact_sheet.png` (the first `sheet.count` images).
 * When the classes asked for are known (given, or recorded in the token file), also
 * `<outDir>/results/labels.tsv` (file, class id, class name) for the domain metric.
 *
 * Images are decoded batch by batch and written at once, so memory does not grow with
 * the number of images. Each image draws from its own random stream (seed, image index),
 * so the output for a seed does not depend on the batch size.
 */

import { writePng } from "../../core/image/codec.ts";
import type { Decoder, TokenGrid } from "../../core/interfaces.ts";
import { Stage2Model } from "../stage2/model.ts";
import { ContactSheet, imageAt } from "../vqgan/images.ts";
import { labelRows, writeLabels } from "../../core/data/labels.ts";
import { Stage2ModelPart, type Stage2Part, type Stage2SampleOptions } from "./roles.ts";
import { formatCodecs, readTokenGrids } from "./tokens.ts";

export interface PipelineOptions {
  /** Semantic -> VQ tokens: a stage-2 part (built.ts), or our network as it is. */
  stage2: Stage2Part | Stage2Model;
  /** Token grids to images: the VQGAN. */
  decoder: Decoder;
  /** Semantic token grids (stage-1 samples) or a file of them (token file, .codecs, .npy, .npz). */
  semantic: TokenGrid | string;
  /** Names of the images (default: the file's ids, or 0..N-1). */
  ids?: string[];
  /** Requested class of each image (default: the token file's labels, if any). */
  labels?: Int32Array;
  /** Class names for labels.tsv (default: the class ids). */
  classNames?: readonly string[];
  /** Experiment folder, e.g. outputs/EXP. */
  outDir: string;
  seed: number;
  /** Images per stage-2 + decode batch (default 8). */
  batchSize?: number;
  /** Decoding settings: AR top-p (0.8) / temperature (1); NAR steps (8). */
  sampling?: Pick<Stage2SampleOptions, "steps" | "topK" | "topP" | "temperature">;
  sheet?: { count?: number; columns?: number; cell?: number };
  /**
   * Only images [start, end) of the token grids (a shard of generate-images): each keeps its
   * global index, so its seed, file name and label are the ones a whole run gives it.
   */
  range?: { start: number; end: number };
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface PipelineResult {
  count: number;
  resultsDir: string;
  /** null when `sheet.count` is 0. */
  contactSheet: string | null;
  vqTokens: string;
}

export async function runPipeline(o: PipelineOptions): Promise<PipelineResult> {
  const file = typeof o.semantic === "string" ? await readTokenGrids(o.semantic) : null;
  const semantic = file ? file.grid : o.semantic as TokenGrid;
  const ids = o.ids ?? file?.ids ?? Array.from({ length: semantic.count }, (_, i) => String(i));
  if (ids.length !== semantic.count) {
    throw new Error(`pipeline: ${ids.length} ids for ${semantic.count} images`);
  }
  for (const id of ids) {
    if (!/^[\w.-]+$/.test(id)) {
      throw new Error(`pipeline: image id '${id}' is not a safe file name`);
    }
  }
  const P = semantic.height * semantic.width;
  const resultsDir = `${o.outDir}/results`;
  await Deno.mkdir(resultsDir, { recursive: true });
  const vqTokens = `${o.outDir}/vq_tokens.codecs`;
  await Deno.writeTextFile(vqTokens, "");
  const batch = o.batchSize ?? 8;
  const start = o.range?.start ?? 0, end = o.range?.end ?? semantic.count;
  if (!(0 <= start && start <= end && end <= semantic.count)) {
    throw new Error(`pipeline: range [${start}, ${end}) is outside the ${semantic.count} grids`);
  }
  const stage2 = o.stage2 instanceof Stage2Model ? new Stage2ModelPart(o.stage2) : o.stage2;
  let sheet: ContactSheet | null = null;
  const sheetCount = Math.min(o.sheet?.count ?? 64, end - start);
  for (let i = start; i < end; i += batch) {
    o.signal?.throwIfAborted();
    const n = Math.min(batch, end - i);
    const part: TokenGrid = {
      ...semantic,
      count: n,
      tokens: semantic.tokens.subarray(i * P, (i + n) * P),
    };
    const vq = await stage2.sample({
      ...o.sampling,
      count: n,
      condition: part,
      seed: o.seed,
      firstIndex: i,
    });
    await Deno.writeTextFile(vqTokens, formatCodecs(vq, ids.slice(i, i + n)), { append: true });
    const images = await o.decoder.decode(vq);
    if (sheetCount > 0) {
      sheet ??= new ContactSheet(
        sheetCount,
        Math.min(o.sheet?.columns ?? 8, sheetCount),
        images.height,
        images.width,
        o.sheet?.cell ?? 128,
      );
    }
    for (let k = 0; k < n; k++) {
      const img = imageAt(images, k);
      await writePng(`${resultsDir}/${ids[i + k]}.png`, img);
      sheet?.add(img);
    }
    o.onProgress?.(i + n - start, end - start);
  }
  const labels = o.labels ?? file?.labels;
  if (labels) {
    if (labels.length !== semantic.count) {
      throw new Error(`pipeline: ${labels.length} class labels for ${semantic.count} images`);
    }
    const files = ids.slice(start, end).map((id) => `${id}.png`);
    await writeLabels(resultsDir, labelRows(files, labels.subarray(start, end), o.classNames));
  }
  const contactSheet = sheet ? `${o.outDir}/contact_sheet.png` : null;
  if (sheet) await writePng(contactSheet!, sheet.image);
  return { count: end - start, resultsDir, contactSheet, vqTokens };
}
