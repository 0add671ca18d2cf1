/**
 * SimCLR's augmentations (Chen et al., 2020), on the host, seeded: the same (images, rows,
 * generator state) always gives the same views, so a resumed training run sees exactly the
 * views the uninterrupted one saw.
 *
 *   random resized crop (bilinear, optionally rotated) -> flips -> colour jitter (p)
 *     -> random grayscale (p) -> Gaussian blur (p) -> pixel noise
 *
 * Crop and colour distortion together are what SimCLR found to matter: crops alone can be
 * matched by colour histograms, so the network must learn colour invariance to solve the
 * task, and that is exactly what we want from tokens that should cluster shapes, not colours.
 * Brightness, contrast, saturation and hue are applied in a random order, as torchvision's
 * ColorJitter does. Pixels are floats in [0, 1] while being distorted; views come out in
 * [-1, 1], NCHW, as the encoder reads them.
 */

import type { ImageBatch } from "../../core/interfaces.ts";
import type { Rng } from "../../core/random.ts";

export interface AugmentConfig {
  /** Crop area as a fraction of the image, [min, max]. */
  cropScale: [number, number];
  /** Crop aspect ratio (width / height) range, sampled log-uniformly. */
  cropRatio: [number, number];
  /**
   * Largest rotation of the crop, in degrees (uniform in [-rotation, rotation]). Shapes are
   * drawn at random angles, so the angle is a nuisance the encoder should not encode; set 0
   * for data whose classes depend on orientation.
   */
  rotation: number;
  /** Probabilities of a horizontal and of a vertical flip. */
  hflip: number;
  vflip: number;
  /** Probability that colour jitter is applied at all. */
  jitterProb: number;
  /** torchvision ColorJitter strengths: factors in [1 - s, 1 + s]; hue shift in [-hue, hue] turns. */
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
  /** Probability of converting to grayscale (after jitter). */
  grayscaleProb: number;
  /** Probability of a Gaussian blur, and its sigma range in pixels (SimCLR's ImageNet recipe). */
  blurProb: number;
  blurSigma: [number, number];
  /**
   * Largest standard deviation of added pixel noise ([0, 1] units; each view draws its own
   * in [0, noise]). Noise and blur make a dataset's per-image grain useless for telling
   * images apart, so the encoder has to use their content.
   */
  noise: number;
}

/** SimCLR's CIFAR-10 recipe with colour strength 1 (0.8, 0.8, 0.8, 0.2), crops from 20%, no rotation. */
export const SIMCLR_AUGMENT: AugmentConfig = {
  cropScale: [0.2, 1],
  cropRatio: [3 / 4, 4 / 3],
  rotation: 0,
  hflip: 0.5,
  vflip: 0.5,
  jitterProb: 0.8,
  brightness: 0.8,
  contrast: 0.8,
  saturation: 0.8,
  hue: 0.2,
  grayscaleProb: 0.2,
  blurProb: 0,
  blurSigma: [0.1, 2],
  noise: 0,
};

/** The crop window in source pixels: top-left (x0, y0) and size (w, h). */
export interface CropBox {
  x0: number;
  y0: number;
  w: number;
  h: number;
}

/** torchvision RandomResizedCrop.get_params: 10 tries at a fitting box, then the centred whole image. */
export function sampleCrop(size: number, cfg: AugmentConfig, gen: Rng): CropBox {
  const area = size * size;
  const [lo, hi] = cfg.cropScale;
  const [rlo, rhi] = [Math.log(cfg.cropRatio[0]), Math.log(cfg.cropRatio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (lo + (hi - lo) * gen.uniform());
    const ratio = Math.exp(rlo + (rhi - rlo) * gen.uniform());
    const w = Math.round(Math.sqrt(target * ratio));
    const h = Math.round(Math.sqrt(target / ratio));
    if (w > 0 && h > 0 && w <= size && h <= size) {
      return { x0: gen.int(size - w + 1), y0: gen.int(size - h + 1), w, h };
    }
  }
  return { x0: 0, y0: 0, w: size, h: size };
}

/** Where a view came from: its crop box, flips and rotation (radians). */
export interface ViewGeometry {
  box: CropBox;
  flipX: boolean;
  flipY: boolean;
  angle: number;
}

/**
 * The source-image point (unclamped, pixel-centre coordinates) that the view's output point
 * (ox, oy) samples: the mapping `cropResize` uses, for fractional output coordinates too.
 */
export function viewToSource(
  g: ViewGeometry,
  size: number,
  ox: number,
  oy: number,
): [number, number] {
  const { box } = g;
  const cx = box.x0 + box.w / 2 - 0.5, cy = box.y0 + box.h / 2 - 0.5;
  const u = ((g.flipX ? size - 1 - ox : ox) + 0.5) / size - 0.5;
  const v = ((g.flipY ? size - 1 - oy : oy) + 0.5) / size - 0.5;
  const dx = u * box.w, dy = v * box.h;
  const cos = Math.cos(g.angle), sin = Math.sin(g.angle);
  return [cx + cos * dx - sin * dy, cy + sin * dx + cos * dy];
}

/**
 * Bilinear resample of the box, rotated by `angle` radians about its centre, to size x size
 * (pixel centres aligned, as align_corners=False; samples outside the image take the
 * nearest border pixel), with optional flips, from HWC uint8 to planar [0, 1] floats.
 */
export function cropResize(
  src: Uint8Array,
  size: number,
  box: CropBox,
  flipX: boolean,
  flipY: boolean,
  out: Float32Array,
  angle = 0,
): void {
  const plane = size * size;
  const cx = box.x0 + box.w / 2 - 0.5, cy = box.y0 + box.h / 2 - 0.5;
  const cos = Math.cos(angle), sin = Math.sin(angle);
  const clampPx = (v: number) => Math.min(Math.max(v, 0), size - 1);
  for (let oy = 0; oy < size; oy++) {
    const v = ((flipY ? size - 1 - oy : oy) + 0.5) / size - 0.5;
    for (let ox = 0; ox < size; ox++) {
      const u = ((flipX ? size - 1 - ox : ox) + 0.5) / size - 0.5;
      // Offset inside the crop, rotated, then placed at the crop centre.
      const dx = u * box.w, dy = v * box.h;
      const fx = clampPx(cx + cos * dx - sin * dy), fy = clampPx(cy + sin * dx + cos * dy);
      const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, size - 1), wx = fx - x0;
      const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, size - 1), wy = fy - y0;
      const a = (y0 * size + x0) * 3,
        b = (y0 * size + x1) * 3,
        c = (y1 * size + x0) * 3,
        d = (y1 * size + x1) * 3;
      for (let ch = 0; ch < 3; ch++) {
        const top = src[a + ch] + wx * (src[b + ch] - src[a + ch]);
        const bottom = src[c + ch] + wx * (src[d + ch] - src[c + ch]);
        out[ch * plane + oy * size + ox] = (top + wy * (bottom - top)) / 255;
      }
    }
  }
}

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);
const luma = (r: number, g: number, b: number) => 0.299 * r + 0.587 * g + 0.114 * b;

/** Scale every channel by f. */
export function adjustBrightness(px: Float32Array, f: number): void {
  for (let i = 0; i < px.length; i++) px[i] = clamp01(px[i] * f);
}

/** Blend with the mean luma of the image: f = 0 gives a flat grey image. */
export function adjustContrast(px: Float32Array, f: number): void {
  const plane = px.length / 3;
  let m = 0;
  for (let i = 0; i < plane; i++) m += luma(px[i], px[plane + i], px[2 * plane + i]);
  m /= plane;
  for (let i = 0; i < px.length; i++) px[i] = clamp01(m + f * (px[i] - m));
}

/** Blend each pixel with its own luma: f = 0 gives grayscale. */
export function adjustSaturation(px: Float32Array, f: number): void {
  const plane = px.length / 3;
  for (let i = 0; i < plane; i++) {
    const y = luma(px[i], px[plane + i], px[2 * plane + i]);
    for (let c = 0; c < 3; c++) px[c * plane + i] = clamp01(y + f * (px[c * plane + i] - y));
  }
}

/** Rotate the hue of every pixel by `shift` turns (HSV, as torchvision's adjust_hue). */
export function adjustHue(px: Float32Array, shift: number): void {
  const plane = px.length / 3;
  for (let i = 0; i < plane; i++) {
    const r = px[i], g = px[plane + i], b = px[2 * plane + i];
    const max = Math.max(r, g, b), min = Math.min(r, g, b), delta = max - min;
    if (delta === 0) continue; // grey: no hue to rotate
    let h = max === r ? (g - b) / delta : max === g ? 2 + (b - r) / delta : 4 + (r - g) / delta;
    h = (((h / 6 + shift) % 1) + 1) % 1;
    // HSV -> RGB with v = max, s = delta / max.
    const h6 = h * 6, k = Math.floor(h6) % 6, f = h6 - Math.floor(h6);
    const p = min, q = max - delta * f, t = min + delta * f;
    let R: number, G: number, B: number;
    switch (k) {
      case 0:
        [R, G, B] = [max, t, p];
        break;
      case 1:
        [R, G, B] = [q, max, p];
        break;
      case 2:
        [R, G, B] = [p, max, t];
        break;
      case 3:
        [R, G, B] = [p, q, max];
        break;
      case 4:
        [R, G, B] = [t, p, max];
        break;
      default:
        [R, G, B] = [max, p, q];
    }
    px[i] = R;
    px[plane + i] = G;
    px[2 * plane + i] = B;
  }
}

export function toGrayscale(px: Float32Array): void {
  adjustSaturation(px, 0);
}

/** Separable Gaussian blur of each plane (radius ceil(3 sigma), borders replicated). */
export function gaussianBlur(px: Float32Array, size: number, sigma: number): void {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = Array.from(
    { length: 2 * r + 1 },
    (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)),
  );
  const total = k.reduce((a, b) => a + b, 0);
  const w = k.map((v) => v / total);
  const tmp = new Float32Array(size * size);
  const at = (v: number) => (v < 0 ? 0 : v >= size ? size - 1 : v);
  for (let c = 0; c < 3; c++) {
    const p = px.subarray(c * size * size, (c + 1) * size * size);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        let s = 0;
        for (let i = -r; i <= r; i++) s += w[i + r] * p[y * size + at(x + i)];
        tmp[y * size + x] = s;
      }
    }
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        let s = 0;
        for (let i = -r; i <= r; i++) s += w[i + r] * tmp[at(y + i) * size + x];
        p[y * size + x] = s;
      }
    }
  }
}

/** One view of one image (HWC uint8) into `out` (planar, [-1, 1]); returns its geometry. */
export function augmentOne(
  src: Uint8Array,
  size: number,
  cfg: AugmentConfig,
  gen: Rng,
  out: Float32Array,
): ViewGeometry {
  const box = sampleCrop(size, cfg, gen);
  const flipX = gen.uniform() < cfg.hflip, flipY = gen.uniform() < cfg.vflip;
  const angle = (cfg.rotation * Math.PI / 180) * (2 * gen.uniform() - 1);
  cropResize(src, size, box, flipX, flipY, out, angle);
  if (gen.uniform() < cfg.jitterProb) {
    // Draw all four factors, then apply them in a random order.
    const factor = (s: number) => 1 - s + 2 * s * gen.uniform();
    const ops: (() => void)[] = [
      ((f) => () => adjustBrightness(out, f))(factor(cfg.brightness)),
      ((f) => () => adjustContrast(out, f))(factor(cfg.contrast)),
      ((f) => () => adjustSaturation(out, f))(factor(cfg.saturation)),
      ((f) => () => adjustHue(out, f))(cfg.hue * (2 * gen.uniform() - 1)),
    ];
    for (const k of gen.permutation(4)) ops[k]();
  }
  if (gen.uniform() < cfg.grayscaleProb) toGrayscale(out);
  if (gen.uniform() < cfg.blurProb) {
    gaussianBlur(
      out,
      size,
      cfg.blurSigma[0] + (cfg.blurSigma[1] - cfg.blurSigma[0]) * gen.uniform(),
    );
  }
  if (cfg.noise > 0) {
    const std = cfg.noise * gen.uniform();
    const n = new Float32Array(out.length);
    gen.fillNormal(n, 0, std);
    for (let i = 0; i < out.length; i++) out[i] = clamp01(out[i] + n[i]);
  }
  for (let i = 0; i < out.length; i++) out[i] = out[i] * 2 - 1;
  return { box, flipX, flipY, angle };
}

/**
 * Views of the chosen images: (rows.length, 3, S, S) floats, image i's view drawn from
 * `gen.fork(i)` so that views do not depend on how many draws earlier images took. Each
 * view's geometry is pushed onto `geometries` when given.
 */
export function augmentBatch(
  images: ImageBatch,
  rows: ArrayLike<number>,
  cfg: AugmentConfig,
  gen: Rng,
  geometries?: ViewGeometry[],
): Float32Array {
  const { height: S, width } = images;
  if (S !== width) throw new Error(`ssl augment: images must be square, got ${S}x${width}`);
  const per = S * S * 3;
  const out = new Float32Array(rows.length * per);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    const geometry = augmentOne(
      images.data.subarray(r * per, (r + 1) * per),
      S,
      cfg,
      gen.fork(i),
      out.subarray(i * per, (i + 1) * per),
    );
    geometries?.push(geometry);
  }
  return out;
}

/**
 * Cells of a G x G grid over two views of the same images that show the same spot: for
 * each cell of view 1, the view-2 cell whose centre lands nearest in the source image,
 * kept when the two centres are within half a cell (in source pixels). Returns global
 * row indices (image * G^2 + cell) into each view's patch set.
 */
export function correspondingCells(
  views1: readonly ViewGeometry[],
  views2: readonly ViewGeometry[],
  size: number,
  grid: number,
): { first: Int32Array; second: Int32Array } {
  const cell = size / grid, L = grid * grid, near = (cell / 2) ** 2;
  const centres = (g: ViewGeometry) =>
    Array.from(
      { length: L },
      (_, c) =>
        viewToSource(
          g,
          size,
          (c % grid) * cell + cell / 2 - 0.5,
          Math.floor(c / grid) * cell + cell / 2 - 0.5,
        ),
    );
  const first: number[] = [], second: number[] = [];
  views1.forEach((g1, b) => {
    const a = centres(g1), z = centres(views2[b]);
    for (let i = 0; i < L; i++) {
      let best = -1, bestD = Infinity;
      for (let j = 0; j < L; j++) {
        const d = (a[i][0] - z[j][0]) ** 2 + (a[i][1] - z[j][1]) ** 2;
        if (d < bestD) [best, bestD] = [j, d];
      }
      if (bestD <= near) {
        first.push(b * L + i);
        second.push(b * L + best);
      }
    }
  });
  return { first: Int32Array.from(first), second: Int32Array.from(second) };
}
