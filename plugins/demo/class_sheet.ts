/**
 * Contact sheets with one row per class, the class name at the left of each row: what a
 * user looks at to judge class-conditional samples ("is every image of row 'star' a
 * star?"). Images are enlarged with nearest neighbour, so the model's pixels stay visible.
 */

import { drawText, GLYPH_HEIGHT, textWidth } from "../../core/image/text.ts";
import type { RgbImage } from "../../core/image/rgb.ts";

export interface SheetRow {
  label: string;
  images: readonly RgbImage[];
}

/** Copy `img` enlarged `scale` times into `dst` at (x0, y0). */
export function blit(dst: RgbImage, img: RgbImage, x0: number, y0: number, scale: number): void {
  const cw = img.width * scale, ch = img.height * scale;
  for (let y = 0; y < ch; y++) {
    const src = Math.floor(y / scale) * img.width;
    for (let x = 0; x < cw; x++) {
      const s = (src + Math.floor(x / scale)) * 3, d = ((y0 + y) * dst.width + x0 + x) * 3;
      dst.data[d] = img.data[s];
      dst.data[d + 1] = img.data[s + 1];
      dst.data[d + 2] = img.data[s + 2];
    }
  }
}

/** Rows of images, each headed by its label; rows may differ in length (short rows stay white). */
export function classSheet(
  rows: readonly SheetRow[],
  columns: number,
  scale = 2,
  gap = 2,
): RgbImage {
  const first = rows.find((r) => r.images.length > 0)?.images[0];
  if (!first) throw new Error("classSheet: no images");
  const { width: w, height: h } = first;
  const cw = w * scale, ch = h * scale;
  const textScale = ch >= 4 * GLYPH_HEIGHT ? 2 : 1;
  const labelWidth = Math.max(...rows.map((r) => textWidth(r.label, textScale))) + 3 * gap;
  const width = labelWidth + columns * (cw + gap) + gap;
  const height = rows.length * (ch + gap) + gap;
  const sheet: RgbImage = { width, height, data: new Uint8Array(width * height * 3).fill(255) };
  rows.forEach((row, r) => {
    const y0 = gap + r * (ch + gap);
    drawText(
      sheet,
      row.label,
      gap,
      y0 + Math.floor((ch - GLYPH_HEIGHT * textScale) / 2),
      [0, 0, 0],
      textScale,
    );
    row.images.slice(0, columns).forEach((img, c) => {
      if (img.width !== w || img.height !== h) {
        throw new Error(
          `classSheet: an image of row '${row.label}' is ${img.width}x${img.height}, the first is ${w}x${h}`,
        );
      }
      blit(sheet, img, labelWidth + c * (cw + gap), y0, scale);
    });
  });
  return sheet;
}
