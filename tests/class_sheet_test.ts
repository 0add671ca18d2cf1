/** The bitmap font and the per-class contact sheet of the demo. */

import { expect, it } from "./lib/test.ts";
import type { RgbImage } from "../core/image/rgb.ts";
import { drawText, GLYPH_ADVANCE, GLYPH_HEIGHT, textWidth } from "../core/image/text.ts";
import { classSheet } from "../plugins/demo/class_sheet.ts";

const blank = (width: number, height: number, v = 255): RgbImage => ({
  width,
  height,
  data: new Uint8Array(width * height * 3).fill(v),
});
const dark = (img: RgbImage, x: number, y: number) => img.data[(y * img.width + x) * 3] === 0;

it("drawText sets exactly the glyph's pixels: 'T' is a bar over a stem, lower case draws upper case", () => {
  for (const text of ["T", "t"]) {
    const img = blank(8, 9);
    drawText(img, text, 1, 1);
    for (let y = 0; y < 9; y++) {
      for (let x = 0; x < 8; x++) {
        const gx = x - 1, gy = y - 1;
        const want = (gy === 0 && gx >= 0 && gx < 5) || (gx === 2 && gy >= 0 && gy < GLYPH_HEIGHT);
        expect(dark(img, x, y), `${text} pixel (${x}, ${y})`).toBe(want);
      }
    }
  }
  expect(textWidth("ab", 2)).toBe((2 * GLYPH_ADVANCE - 1) * 2);
  // Clipped at the border rather than wrapping into the next row.
  const img = blank(4, 4);
  drawText(img, "W", 2, 2);
  expect(!dark(img, 0, 3) && dark(img, 2, 2)).toBeTruthy();
});

it("classSheet: one row per class, images enlarged in place, the label left of its row", () => {
  const red: RgbImage = {
    width: 2,
    height: 2,
    data: new Uint8Array(12).map((_, i) => (i % 3 === 0 ? 255 : 0)),
  };
  const sheet = classSheet(
    [{ label: "A", images: [red, red] }, { label: "BB", images: [red] }],
    3,
    10,
    2,
  );
  const labelWidth = textWidth("BB", 1) + 6;
  expect(sheet.width).toBe(labelWidth + 3 * 22 + 2);
  expect(sheet.height).toBe(2 * 22 + 2);
  const px = (x: number, y: number) =>
    Array.from(sheet.data.subarray((y * sheet.width + x) * 3, (y * sheet.width + x) * 3 + 3));
  expect(px(labelWidth + 22 + 5, 2 + 5)).toEqual([255, 0, 0]); // row 0, column 1
  expect(px(labelWidth + 22 + 5, 24 + 5)).toEqual([255, 255, 255]); // row 1 has one image
  let ink = 0;
  for (let y = 0; y < 22; y++) for (let x = 0; x < labelWidth; x++) if (px(x, y)[0] === 0) ink++;
  expect(ink, "the label is drawn").toBeGreaterThan(5);
  expect(() => classSheet([{ label: "x", images: [] }], 2)).toThrow(/no images/);
});
