/**
 * Resizing the trained position table (CLS + G x G, G = 37) to the patch grid of the input.
 *
 * Two recipes give different features (spec §1.4), so the choice is explicit:
 *  - "digit" (default): DiGIT's vits.py, F.interpolate(bicubic, scale_factor=(g+0.1)/G,
 *    antialias=False). PyTorch maps coordinates with the *given* scale, not g/G, so the
 *    0.1 offset shifts every sample slightly; `interpolate_torch.ts` (the CPU resize
 *    kernel) reproduces that in float32 exactly as torch's CPU kernel rounds.
 *  - "hub": the official torch.hub `_reg` backbones, F.interpolate(size=(g, g),
 *    antialias=True): PyTorch's antialiased bicubic, computed here in float64.
 * When the grid already is G x G the table is used as is (both codes return early).
 * The CLS row is never resized; register tokens get no position at all.
 */

import { interpolateBicubic } from "../../core/image/interpolate_torch.ts";
import { resizeAntialiasBicubic } from "./antialias.ts";

export type PosEmbedRecipe = "digit" | "hub";
export const POS_EMBED_RECIPES: readonly PosEmbedRecipe[] = ["digit", "hub"];

/**
 * table: the (1 + G*G, D) rows of `pos_embed`; returns (1 + gh*gw, D) rows for a gh x gw
 * patch grid, row-major like the patch tokens.
 */
export function resizePosTable(
  table: Float32Array,
  dim: number,
  gridH: number,
  gridW: number,
  recipe: PosEmbedRecipe,
): Float32Array {
  const G = Math.round(Math.sqrt(table.length / dim - 1));
  if ((1 + G * G) * dim !== table.length) {
    throw new Error(`dinov2 pos_embed: ${table.length} values are not (1 + G^2) x ${dim}`);
  }
  const out = new Float32Array((1 + gridH * gridW) * dim);
  out.set(table.subarray(0, dim));
  if (gridH === G && gridW === G) {
    out.set(table.subarray(dim), dim);
    return out;
  }
  // (G*G, D) channel-last -> (D, G, G) planes.
  const planes = new Float32Array(dim * G * G);
  for (let p = 0; p < G * G; p++) {
    for (let c = 0; c < dim; c++) planes[c * G * G + p] = table[(1 + p) * dim + c];
  }
  let resized: ArrayLike<number>;
  if (recipe === "digit") {
    // DiGIT passes scale_factor=(sx, sy) with sx for H (its "w" is x.shape[2]).
    const scale: [number, number] = [(gridH + 0.1) / G, (gridW + 0.1) / G];
    const r = interpolateBicubic(planes, dim, G, G, { scaleFactor: scale });
    if (r.height !== gridH || r.width !== gridW) {
      throw new Error(
        `dinov2 pos_embed: the digit recipe gave ${r.height}x${r.width}, expected ${gridH}x${gridW}`,
      );
    }
    resized = r.data;
  } else if (recipe === "hub") {
    resized = resizeAntialiasBicubic(planes, dim, G, G, gridH, gridW);
  } else {
    throw new Error(
      `dinov2 pos_embed: unknown recipe '${recipe}' (expected ${POS_EMBED_RECIPES.join(" or ")})`,
    );
  }
  const n = gridH * gridW;
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < dim; c++) out[(1 + p) * dim + c] = resized[c * n + p];
  }
  return out;
}
