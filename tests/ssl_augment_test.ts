/**
 * plugins/ssl/augment.ts: the SimCLR views are a pure function of (images, rows, seed), and
 * each transform does what it claims, against closed forms computed here.
 */

import { expect, it } from "./lib/test.ts";
import type { ImageBatch } from "../core/interfaces.ts";
import { Rng } from "../core/random.ts";
import {
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  augmentBatch,
  cropResize,
  gaussianBlur,
  sampleCrop,
  SIMCLR_AUGMENT,
  toGrayscale,
} from "../plugins/ssl/augment.ts";

const S = 8;

/** A batch of `count` S x S images with distinct, non-symmetric contents. */
function images(count: number): ImageBatch {
  const data = new Uint8Array(count * S * S * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + (i >> 5) * 11) % 256;
  return { data, count, height: S, width: S };
}

/** One pixel as planar [0, 1] floats. */
const pixel = (r: number, g: number, b: number) => Float32Array.from([r, g, b]);

it("augmentBatch: same seed, same views; another seed or another row, other views", () => {
  const batch = images(4);
  const rows = [2, 0, 3];
  const a = augmentBatch(batch, rows, SIMCLR_AUGMENT, new Rng(7));
  const b = augmentBatch(batch, rows, SIMCLR_AUGMENT, new Rng(7));
  const c = augmentBatch(batch, rows, SIMCLR_AUGMENT, new Rng(8));
  expect(a).toEqual(b);
  expect(a).not.toEqual(c);
  expect(a.length).toBe(rows.length * 3 * S * S);
  // View i depends on its own fork only: the view of row 2 is the same when drawn alone.
  const alone = augmentBatch(batch, [2], SIMCLR_AUGMENT, new Rng(7));
  expect(alone).toEqual(a.subarray(0, 3 * S * S));
  for (const v of a) expect(v >= -1 && v <= 1, `view value ${v} outside [-1, 1]`).toBeTruthy();
});

it("sampleCrop: boxes inside the image, with area and aspect ratio in range", () => {
  const gen = new Rng(3);
  const size = 32;
  for (let i = 0; i < 200; i++) {
    const box = sampleCrop(size, SIMCLR_AUGMENT, gen);
    expect(
      box.x0 >= 0 && box.y0 >= 0 && box.x0 + box.w <= size && box.y0 + box.h <= size,
      JSON.stringify(box),
    ).toBeTruthy();
    const area = (box.w * box.h) / (size * size);
    // Rounding w and h to pixels moves the area by at most (w + h + 1) / size^2.
    const slack = (box.w + box.h + 1) / (size * size);
    expect(area >= SIMCLR_AUGMENT.cropScale[0] - slack && area <= 1, `area ${area}`).toBeTruthy();
    if (box.w === size && box.h === size) continue; // the fallback (or a full-size draw)
    // Aspect ratio in range up to the rounding of w and h (half a pixel each).
    const [rlo, rhi] = SIMCLR_AUGMENT.cropRatio;
    expect(
      (box.w + 0.5) / (box.h - 0.5) >= rlo && (box.w - 0.5) / (box.h + 0.5) <= rhi,
      `ratio of ${JSON.stringify(box)}`,
    ).toBeTruthy();
  }
});

it("cropResize: the whole image unflipped is the identity; flips mirror it", () => {
  const batch = images(1);
  const whole = { x0: 0, y0: 0, w: S, h: S };
  const plain = new Float32Array(3 * S * S),
    fx = new Float32Array(3 * S * S),
    fy = new Float32Array(3 * S * S);
  cropResize(batch.data, S, whole, false, false, plain);
  cropResize(batch.data, S, whole, true, false, fx);
  cropResize(batch.data, S, whole, false, true, fy);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const src = batch.data[(y * S + x) * 3 + c] / 255;
        expect(Math.abs(plain[c * S * S + y * S + x] - src)).toBeLessThan(1e-6);
        expect(Math.abs(fx[c * S * S + y * S + (S - 1 - x)] - src)).toBeLessThan(1e-6);
        expect(Math.abs(fy[c * S * S + (S - 1 - y) * S + x] - src)).toBeLessThan(1e-6);
      }
    }
  }
  // A 2x upscale of the top-left quarter: output pixel (1, 1) samples source (0.25, 0.25),
  // bilinear between source pixels (0, 0), (0, 1), (1, 0), (1, 1) with weights 9, 3, 3, 1 (/16).
  const up = new Float32Array(3 * S * S);
  cropResize(batch.data, S, { x0: 0, y0: 0, w: S / 2, h: S / 2 }, false, false, up);
  const p = (y: number, x: number) => batch.data[(y * S + x) * 3] / 255;
  const want = (9 * p(0, 0) + 3 * p(0, 1) + 3 * p(1, 0) + p(1, 1)) / 16;
  expect(Math.abs(up[S + 1] - want), `${up[S + 1]} vs ${want}`).toBeLessThan(1e-6);
});

it("colour transforms: brightness, contrast, saturation, hue and grayscale by their definitions", () => {
  const b = pixel(0.2, 0.4, 0.6);
  adjustBrightness(b, 1.5);
  expect(Array.from(b).map((v) => +v.toFixed(6))).toEqual([0.3, 0.6, 0.9]);
  adjustBrightness(b, 2); // clipped to 1
  expect(Math.abs(b[2] - 1)).toBeLessThan(1e-7);

  // Contrast 0: every pixel becomes the mean luma of the image.
  const two = Float32Array.from([1, 0, 0, 1, 0, 0]); // two pixels: red and green (planar)
  adjustContrast(two, 0);
  const meanLuma = (0.299 + 0.587) / 2;
  for (const v of two) expect(Math.abs(v - meanLuma)).toBeLessThan(1e-6);

  // Saturation 0 and grayscale: all channels equal the pixel's luma.
  const g = pixel(0.9, 0.1, 0.3);
  toGrayscale(g);
  const luma = 0.299 * 0.9 + 0.587 * 0.1 + 0.114 * 0.3;
  for (const v of g) expect(Math.abs(v - luma)).toBeLessThan(1e-6);
  const s = pixel(0.9, 0.1, 0.3);
  adjustSaturation(s, 1);
  expect(Array.from(s)).toEqual(Array.from(pixel(0.9, 0.1, 0.3)));

  // Hue: a third of a turn maps red -> green -> blue; a full turn (or 0) changes nothing;
  // grey has no hue.
  const red = pixel(1, 0, 0);
  adjustHue(red, 1 / 3);
  expect(Array.from(red).map((v) => +v.toFixed(6))).toEqual([0, 1, 0]);
  adjustHue(red, 1 / 3);
  expect(Array.from(red).map((v) => +v.toFixed(6))).toEqual([0, 0, 1]);
  const any = pixel(0.7, 0.25, 0.4);
  adjustHue(any, 0);
  for (const [i, v] of [0.7, 0.25, 0.4].entries()) expect(Math.abs(any[i] - v)).toBeLessThan(1e-6);
  const grey = pixel(0.5, 0.5, 0.5);
  adjustHue(grey, 0.3);
  expect(Array.from(grey)).toEqual([0.5, 0.5, 0.5]);
  // Hue rotation keeps HSV value (max) and the max - min spread.
  const q = pixel(0.8, 0.3, 0.5);
  adjustHue(q, 0.17);
  expect(
    Math.abs(Math.max(...q) - 0.8) < 1e-6 && Math.abs(Math.max(...q) - Math.min(...q) - 0.5) < 1e-6,
  ).toBeTruthy();
});

it("augmentBatch: grayscale always on gives equal channels; colour off and whole crops give the image back", () => {
  const batch = images(2);
  const gray = augmentBatch(
    batch,
    [0, 1],
    { ...SIMCLR_AUGMENT, grayscaleProb: 1 },
    new Rng(1),
  );
  const plane = S * S;
  for (let n = 0; n < 2; n++) {
    for (let i = 0; i < plane; i++) {
      const o = n * 3 * plane + i;
      expect(
        Math.abs(gray[o] - gray[o + plane]) < 1e-6 &&
          Math.abs(gray[o] - gray[o + 2 * plane]) < 1e-6,
      ).toBeTruthy();
    }
  }
  const none = {
    ...SIMCLR_AUGMENT,
    cropScale: [1, 1] as [number, number],
    cropRatio: [1, 1] as [number, number],
    hflip: 0,
    vflip: 0,
    jitterProb: 0,
    grayscaleProb: 0,
  };
  const id = augmentBatch(batch, [1], none, new Rng(1));
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) {
      const want = batch.data[(plane + i) * 3 + c] / 127.5 - 1;
      expect(Math.abs(id[c * plane + i] - want)).toBeLessThan(1e-5);
    }
  }
});

it("gaussianBlur: constants stay, an interior impulse keeps its mass and spreads as a Gaussian", () => {
  const n = 16, plane = n * n;
  const flat = new Float32Array(3 * plane).fill(0.25);
  gaussianBlur(flat, n, 1.3);
  for (const v of flat) expect(Math.abs(v - 0.25)).toBeLessThan(1e-6);
  const imp = new Float32Array(3 * plane);
  imp[plane + 8 * n + 8] = 1; // green channel, pixel (8, 8)
  const sigma = 1;
  gaussianBlur(imp, n, sigma);
  const green = imp.subarray(plane, 2 * plane);
  expect(Math.abs(green.reduce((a, b) => a + b, 0) - 1), "mass kept").toBeLessThan(1e-5);
  // Separable: the ratio of neighbours is the 1-D kernel's, exp(-1 / (2 sigma^2)) per step.
  const ratio = green[8 * n + 9] / green[8 * n + 8];
  expect(Math.abs(ratio - Math.exp(-1 / (2 * sigma * sigma))), `ratio ${ratio}`).toBeLessThan(1e-5);
  expect(imp.subarray(0, plane).reduce((a, b) => a + b, 0), "other channels untouched").toBe(0);
});
