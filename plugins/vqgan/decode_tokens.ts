/**
 * The `decode-vqgan` step: VQ code grids (a token file, e.g. stage-1 samples of a GPT trained
 * directly on VQGAN codes, the paper's VQGAN-AR baseline) decoded to PNGs, with labels.tsv
 * from the file's labels and a contact sheet, laid out as `generate-images` lays out its
 * results so that `eval` scores both the same way.
 */

import { s } from "../../core/config.ts";
import { labelRows, writeLabels } from "../../core/data/labels.ts";
import { type DatasetSpec, openDataset } from "../../core/data/mod.ts";
import { writePng } from "../../core/image/codec.ts";
import { readTokenFile } from "../../core/io/tokens.ts";
import type { StepContext } from "../../core/registry.ts";
import { ContactSheet, imageAt } from "./images.ts";
import type { VQGAN } from "./vqgan.ts";

export const decodeParams = s.object({
  vqgan: s.object({ checkpoint: s.string({ nonEmpty: true }) }),
  tokens: s.string({ nonEmpty: true, description: "token file of VQ code grids" }),
  dataset: s.any().describe("dataset spec whose class names go into labels.tsv").optional(),
  batch_size: s.int({ min: 1 }).default(50),
  sheet_count: s.int({ min: 0 }).default(64),
});

export const decodeOutputs = () => ({ results: "results", sheet: "contact_sheet.png" });

export async function decodeTokenFile(
  vqgan: VQGAN,
  p: { tokens: string; dataset?: unknown; batch_size: number; sheet_count: number },
  ctx: StepContext,
): Promise<number> {
  const file = await readTokenFile(p.tokens);
  if (file.height !== vqgan.gridSize || file.width !== vqgan.gridSize) {
    throw new Error(
      `decode-vqgan: ${p.tokens} holds ${file.height}x${file.width} grids, the VQGAN decodes ${vqgan.gridSize}x${vqgan.gridSize}`,
    );
  }
  if (file.vocab > vqgan.cfg.nEmbed) {
    throw new Error(
      `decode-vqgan: ${p.tokens} has a vocabulary of ${file.vocab}, the codebook ${vqgan.cfg.nEmbed}`,
    );
  }
  const dir = ctx.outputs.results, L = file.height * file.width;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const names = Array.from({ length: file.count }, (_, i) => `${i}.png`);
  const slots = Math.min(p.sheet_count, file.count);
  let sheet: ContactSheet | null = null;
  for (let i = 0; i < file.count; i += p.batch_size) {
    ctx.signal.throwIfAborted();
    const n = Math.min(p.batch_size, file.count - i);
    const tokens = file.tokens.subarray(i * L, (i + n) * L);
    const images = await vqgan.decode({ tokens, count: n, height: file.height, width: file.width });
    if (slots > 0) {
      sheet ??= new ContactSheet(slots, Math.min(8, slots), images.height, images.width);
    }
    for (let k = 0; k < n; k++) {
      const img = imageAt(images, k);
      await writePng(`${dir}/${names[i + k]}`, img);
      sheet?.add(img);
    }
    ctx.log.progress("decode", i + n, file.count);
  }
  if (file.labels) {
    const classNames = p.dataset
      ? (await openDataset(p.dataset as DatasetSpec)).classNames
      : undefined;
    await writeLabels(dir, labelRows(names, file.labels, classNames));
  }
  if (sheet) await writePng(ctx.outputs.sheet, sheet.image);
  return file.count;
}
