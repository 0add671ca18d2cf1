/**
 * generate-images as a sharded step (DiGIT samples its 50,000 FID images with 8
 * fairseq-generate shards). A shard decodes a contiguous, batch-aligned slice of the token
 * grids into its own folder; every image keeps its global index, so its seed, file name and
 * label are the ones a single run gives it. The merge puts the shards' PNGs side by side,
 * concatenates `vq_tokens.codecs` and `labels.tsv`, and draws the contact sheet from the
 * first PNGs: byte for byte what one process writes.
 */

import { linkOrCopy, readSlice, sliceFiles } from "../../core/shard.ts";
import { joinPath } from "../../core/tasks.ts";
import { readImage, writePng } from "../../core/image/codec.ts";
import { LABELS_FILE, readLabelRows, writeLabels } from "../../core/data/labels.ts";
import type { StepContext, StepShard } from "../../core/registry.ts";
import { ContactSheet } from "../vqgan/images.ts";
import { readTokenGrids } from "./tokens.ts";

/** Combines finished shards into the step's outputs (results/, vq_tokens.codecs, the sheet). */
export async function mergeGenerated(
  p: { tokens: string; sheet_count: number },
  ctx: StepContext,
  shards: readonly StepShard[],
): Promise<void> {
  const { ids } = await readTokenGrids(p.tokens);
  // Checks that the slices tile the grids with no gap or overlap before anything is written.
  const codecs = await sliceFiles(shards, "vq_tokens.codecs");
  const results = ctx.outputs.results;
  await Deno.remove(results, { recursive: true }).catch(() => {});
  await Deno.mkdir(results, { recursive: true });
  const labels = [];
  let labelled = 0, nonEmpty = 0;
  for (const shard of shards) {
    const { start, end } = await readSlice(shard.dir);
    if (end === start) continue;
    nonEmpty++;
    for (let i = start; i < end; i++) {
      const name = `${ids[i]}.png`;
      await linkOrCopy(joinPath(shard.dir, `results/${name}`), joinPath(results, name));
    }
    const rows = await readLabelRows(joinPath(shard.dir, "results"));
    if (rows) {
      labels.push(...rows);
      labelled++;
    }
    ctx.log.progress("merge", end, ids.length);
  }
  if (labelled !== 0 && labelled !== nonEmpty) {
    throw new Error(
      `generate-images merge: ${labelled} of ${nonEmpty} shards wrote ${LABELS_FILE}; re-run the others`,
    );
  }
  if (labelled > 0) await writeLabels(results, labels);
  const text = await Promise.all(codecs.map((f) => Deno.readTextFile(f)));
  await Deno.writeTextFile(ctx.outputs.vq_tokens, text.join(""));
  await drawSheet(results, ids.slice(0, Math.min(p.sheet_count, ids.length)), ctx.outputs.sheet);
}

/** The contact sheet a single run draws, from the PNGs it wrote (PNG is lossless). */
async function drawSheet(results: string, ids: string[], out: string): Promise<void> {
  if (ids.length === 0) return;
  let sheet: ContactSheet | null = null;
  for (const id of ids) {
    const img = await readImage(joinPath(results, `${id}.png`));
    sheet ??= new ContactSheet(ids.length, Math.min(8, ids.length), img.height, img.width, 128);
    sheet.add(img);
  }
  await writePng(out, sheet!.image);
}
