/**
 * "shapes": a procedural, class-conditional image dataset that needs no files, the
 * default data of the demo and tests. Item i has label i % numClasses and is drawn from
 * the seeded stream (seed, i) alone, so any item can be regenerated in any order.
 *
 * Ten classes of distinct silhouettes: circle, square, triangle, cross, ring, stripes,
 * star, dots, crescent, checker. Each is drawn with a random position, size, rotation
 * and colour on a two-tone gradient background with slight grain, antialiased by 4x4
 * supersampling.
 */

import { hashBits } from "../random.ts";
import { Rng } from "../random.ts";
import type { RgbImage } from "../image/rgb.ts";
import { checkIndex, type Dataset, type Sample } from "./dataset.ts";

export const SHAPE_CLASSES = [
  "circle",
  "square",
  "triangle",
  "cross",
  "ring",
  "stripes",
  "star",
  "dots",
  "crescent",
  "checker",
] as const;

type Inside = (x: number, y: number) => boolean;

function polygon(points: number[][]): Inside {
  return (x, y) => {
    let inside = false;
    for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
      const [xi, yi] = points[i];
      const [xj, yj] = points[j];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  };
}

const regular = (n: number, radius: (k: number) => number, phase = -Math.PI / 2) =>
  Array.from({ length: n }, (_, k) => {
    const a = phase + (2 * Math.PI * k) / n;
    return [radius(k) * Math.cos(a), radius(k) * Math.sin(a)];
  });

const mod2 = (v: number) => ((Math.floor(v) % 2) + 2) % 2;

/** Silhouettes in unit coordinates (the shape fits in the unit disc). */
const SILHOUETTES: Inside[] = [
  (x, y) => x * x + y * y <= 0.85, // circle
  (x, y) => Math.abs(x) <= 0.72 && Math.abs(y) <= 0.72, // square
  polygon(regular(3, () => 1)), // triangle
  (x, y) =>
    (Math.abs(x) <= 0.95 && Math.abs(y) <= 0.27) || (Math.abs(x) <= 0.27 && Math.abs(y) <= 0.95), // cross
  (x, y) => {
    const r2 = x * x + y * y;
    return r2 <= 0.9 && r2 >= 0.33; // ring
  },
  (x, y) => Math.abs(x) <= 0.85 && Math.abs(y) <= 0.85 && mod2((x + 0.85) / 0.34) === 0, // 5 stripes
  polygon(regular(10, (k) => (k % 2 === 0 ? 1 : 0.42))), // star
  (x, y) => {
    const dx = Math.abs(x) - 0.48;
    const dy = Math.abs(y) - 0.48;
    return dx * dx + dy * dy <= 0.3 * 0.3; // 2x2 dots
  },
  (x, y) => x * x + y * y <= 0.9 && (x - 0.42) * (x - 0.42) + (y + 0.12) * (y + 0.12) > 0.5, // crescent
  (x, y) =>
    Math.abs(x) <= 0.8 && Math.abs(y) <= 0.8 &&
    mod2((x + 0.8) / 0.5334) === mod2((y + 0.8) / 0.5334), // checker
];

function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const c = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][((i % 6) + 6) % 6];
  return [c[0] * 255, c[1] * 255, c[2] * 255];
}

export interface ShapeParams {
  cls: number;
  /** Centre and radius in pixels, rotation in radians. */
  cx: number;
  cy: number;
  radius: number;
  angle: number;
  fg: [number, number, number];
  bg0: [number, number, number];
  bg1: [number, number, number];
  /** Gradient direction of the background. */
  bgAngle: number;
  grain: number;
}

/**
 * How much a shape's pose varies. "full": any position that fits, radius 20-36% of the
 * side, any angle. "centred": upright, centred within +-2 pixels, radius 32-36% of the side
 * (colours, background and grain vary as in "full").
 */
export type ShapeVariation = "full" | "centred";

/** Draw the random parameters of one item. */
export function sampleShapeParams(
  cls: number,
  size: number,
  g: Rng,
  variation: ShapeVariation = "full",
): ShapeParams {
  const full = variation === "full";
  const radius = size * (full ? 0.2 + 0.16 * g.uniform() : 0.32 + 0.04 * g.uniform());
  const margin = radius + 1;
  const cx = full ? margin + (size - 2 * margin) * g.uniform() : size / 2 + 4 * g.uniform() - 2;
  const cy = full ? margin + (size - 2 * margin) * g.uniform() : size / 2 + 4 * g.uniform() - 2;
  const angle = full ? 2 * Math.PI * g.uniform() : 0;
  // Dark or light background; the shape takes a saturated colour that contrasts with it.
  const dark = g.uniform() < 0.5;
  const bgHue = g.uniform();
  const bgVal = dark ? 0.12 + 0.2 * g.uniform() : 0.78 + 0.17 * g.uniform();
  const bgSat = 0.1 + 0.3 * g.uniform();
  const bg0 = hsvToRgb(bgHue, bgSat, bgVal);
  const bg1 = hsvToRgb(
    (bgHue + 0.08 * (g.uniform() - 0.5) + 1) % 1,
    bgSat,
    Math.min(1, Math.max(0, bgVal + (dark ? 0.12 : -0.12))),
  );
  const fgHue = (bgHue + 0.25 + 0.5 * g.uniform()) % 1; // away from the background hue
  const fgVal = dark ? 0.8 + 0.2 * g.uniform() : 0.35 + 0.3 * g.uniform();
  const fg = hsvToRgb(fgHue, 0.55 + 0.45 * g.uniform(), fgVal);
  return {
    cls,
    cx,
    cy,
    radius,
    angle,
    fg,
    bg0,
    bg1,
    bgAngle: 2 * Math.PI * g.uniform(),
    grain: 3 + 4 * g.uniform(),
  };
}

const SUB = 4; // supersampling per axis

/** Render one item; also returns the shape's coverage in [0, 1] per pixel. */
export function renderShape(
  p: ShapeParams,
  size: number,
  grainSeed: number,
): { image: RgbImage; coverage: Float32Array } {
  const inside = SILHOUETTES[p.cls];
  const cos = Math.cos(-p.angle);
  const sin = Math.sin(-p.angle);
  const data = new Uint8Array(size * size * 3);
  const coverage = new Float32Array(size * size);
  const gx = Math.cos(p.bgAngle);
  const gy = Math.sin(p.bgAngle);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let hits = 0;
      for (let sy = 0; sy < SUB; sy++) {
        for (let sx = 0; sx < SUB; sx++) {
          const dx = (x + (sx + 0.5) / SUB - p.cx) / p.radius;
          const dy = (y + (sy + 0.5) / SUB - p.cy) / p.radius;
          if (inside(dx * cos - dy * sin, dx * sin + dy * cos)) hits++;
        }
      }
      const a = hits / (SUB * SUB);
      const i = y * size + x;
      coverage[i] = a;
      // Background: linear blend along the gradient direction, plus grain.
      const t = Math.min(1, Math.max(0, 0.5 + ((x / size - 0.5) * gx + (y / size - 0.5) * gy)));
      const noise = ((hashBits(grainSeed, i) >>> 8) / 16777216 - 0.5) * 2 * p.grain;
      for (let c = 0; c < 3; c++) {
        const bg = p.bg0[c] * (1 - t) + p.bg1[c] * t + noise;
        data[3 * i + c] = Math.round(
          Math.min(255, Math.max(0, bg * (1 - a) + (p.fg[c] + noise * 0.5) * a)),
        );
      }
    }
  }
  return { image: { width: size, height: size, data }, coverage };
}

export interface ShapesOptions {
  /** Side in pixels (e.g. 32 or 64). */
  size?: number;
  length?: number;
  seed?: number;
  /** Use the first k classes (1..10). */
  numClasses?: number;
  /** Pose variation (default "full"). */
  variation?: ShapeVariation;
}

export class ShapesDataset implements Dataset {
  readonly name: string;
  readonly size: number;
  readonly length: number;
  readonly seed: number;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly variation: ShapeVariation;

  constructor(opts: ShapesOptions = {}) {
    this.size = opts.size ?? 32;
    this.length = opts.length ?? 10000;
    this.seed = (opts.seed ?? 0) >>> 0;
    this.numClasses = opts.numClasses ?? SHAPE_CLASSES.length;
    this.variation = opts.variation ?? "full";
    if (this.variation !== "full" && this.variation !== "centred") {
      throw new Error(`shapes: variation '${this.variation}' must be 'full' or 'centred'`);
    }
    if (!Number.isInteger(this.size) || this.size < 8) {
      throw new Error(`shapes: size ${this.size} must be an integer >= 8`);
    }
    if (this.numClasses < 1 || this.numClasses > SHAPE_CLASSES.length) {
      throw new Error(
        `shapes: numClasses ${this.numClasses} must be in 1..${SHAPE_CLASSES.length}`,
      );
    }
    this.classNames = SHAPE_CLASSES.slice(0, this.numClasses);
    this.name = `shapes:${this.size}px:seed${this.seed}${
      this.variation === "full" ? "" : `:${this.variation}`
    }`;
  }

  getSync(index: number): Sample {
    checkIndex(this, index);
    const label = index % this.numClasses;
    const itemSeed = hashBits(this.seed, index);
    const params = sampleShapeParams(label, this.size, new Rng(itemSeed), this.variation);
    return { image: renderShape(params, this.size, itemSeed ^ 0x9e3779b9).image, label };
  }

  // deno-lint-ignore require-await
  async get(index: number): Promise<Sample> {
    return this.getSync(index);
  }
}
