/**
 * Resizing and tensor transforms against PIL / torchvision / torch, references from
 * tests/fixtures/make_image_fixtures.py. Tolerances:
 *  - PIL uint8 resizes, torchvision crops: exact;
 *  - ToTensor + Normalize: exact (float32);
 *  - F.interpolate bicubic: bit-exact (the CPU backend's resize kernel, which the host
 *    helper calls, follows torch 1.13's float32 arithmetic step by step);
 *  - TF1 bilinear: exact (float32 op for op).
 */

import { expect, it } from "./lib/test.ts";
import { readImage } from "../core/image/codec.ts";
import { interpolateBicubic } from "../core/image/interpolate_torch.ts";
import { resizeBilinearTf1, resizeBilinearTf1Planes } from "../core/image/resize_tf1.ts";
import {
  centerCrop,
  horizontalFlip,
  normalize,
  randomCrop,
  randomHorizontalFlip,
  resizePil,
  resizeShortSide,
  shortSideSize,
  toTensor,
} from "../core/image/transforms.ts";
import type { PilFilter } from "../core/image/resample_pil.ts";
import { resamplePil } from "../core/image/resample_pil.ts";
import { resampleWasmAvailable } from "../core/image/resample_wasm.ts";
import { Rng } from "../core/random.ts";
import {
  digitEncoderInput,
  digitTrainTransform,
  fidReferenceTransform,
  normalizeBatch,
} from "../core/image/pipelines.ts";
import { stackImages } from "../core/data/loader.ts";

const FIX = new URL("./fixtures/image/", import.meta.url).pathname;
const PHOTOS = new URL("../../shared/data/imagenet-sample/", import.meta.url).pathname;
const havePhotos = (() => {
  try {
    return Deno.statSync(PHOTOS).isDirectory;
  } catch {
    return false;
  }
})();

const bytes = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const floats = (s: string) => new Float32Array(bytes(s).buffer);
const ints = (s: string) => new Int32Array(bytes(s).buffer);
const INTERP_TOL = 0; // bit-exact, see the header

async function sha256(data: Uint8Array | Float32Array): Promise<string> {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", view));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length, "length").toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const synth = JSON.parse(Deno.readTextFileSync(FIX + "synth.json"));
const src = await readImage(FIX + "synth.png");

it("resizePil: every PIL filter, up and down, matches PIL exactly", () => {
  for (
    const r of synth.resize as { filter: PilFilter; width: number; height: number; data: string }[]
  ) {
    const out = resizePil(src, r.width, r.height, r.filter);
    expect(maxAbsDiff(out.data, bytes(r.data)), `${r.filter} 61x45 -> ${r.width}x${r.height}`).toBe(
      0,
    );
  }
});

it("torchvision Resize(short side) + CenterCrop match exactly, including crops larger than the image", () => {
  for (
    const t of synth.torchvision as {
      resize: number;
      crop: number;
      width: number;
      height: number;
      data: string;
    }[]
  ) {
    const out = centerCrop(resizeShortSide(src, t.resize, "bicubic"), t.crop);
    expect(`${out.width}x${out.height}`).toBe(`${t.width}x${t.height}`);
    expect(maxAbsDiff(out.data, bytes(t.data)), `Resize(${t.resize}) CenterCrop(${t.crop})`).toBe(
      0,
    );
  }
  // int(size * long / short) truncation and orientation.
  expect(shortSideSize(500, 375, 256)).toEqual([341, 256]);
  expect(shortSideSize(333, 500, 224)).toEqual([224, 336]);
  expect(shortSideSize(106, 150, 256)).toEqual([256, 362]);
});

it("toTensor + normalize equal torchvision's float32 values exactly", () => {
  const x = normalize(toTensor(src));
  expect(maxAbsDiff(x.data, floats(synth.to_tensor_normalized))).toBe(0);
});

it("interpolateBicubic matches F.interpolate(bicubic, align_corners=False) bit for bit", () => {
  const x = normalize(toTensor(src));
  for (
    const c of synth.interpolate as {
      scale?: number | number[];
      size?: [number, number];
      height: number;
      width: number;
      data: string;
    }[]
  ) {
    const opts = c.size ? { size: c.size } : { scaleFactor: c.scale as number | [number, number] };
    const y = interpolateBicubic(x.data, 3, x.height, x.width, opts);
    expect(`${y.height}x${y.width}`, JSON.stringify(opts)).toBe(`${c.height}x${c.width}`);
    const d = maxAbsDiff(y.data, floats(c.data));
    expect(d, `${JSON.stringify(opts)}: max diff ${d}`).toBeLessThanOrEqual(INTERP_TOL);
  }
  // The coordinate scale comes from the scale factor, not in/out: 37 * (16.1/37) -> 16
  // outputs, but sampled at 37/16.1 spacing, which differs from size=(16,16).
  const grid = new Float32Array(37 * 37).map((_, i) => Math.sin(i * 0.37));
  const bySf = interpolateBicubic(grid, 1, 37, 37, { scaleFactor: 16.1 / 37 });
  const bySize = interpolateBicubic(grid, 1, 37, 37, { size: [16, 16] });
  expect(bySf.width).toBe(16);
  expect(maxAbsDiff(bySf.data, bySize.data)).toBeGreaterThan(1e-3);
});

it("pipelines: batch normalisation and DiGIT encoder input agree with the single-image path", () => {
  const x = normalize(toTensor(src));
  const batch = stackImages([src, horizontalFlip(src)]);
  const nb = normalizeBatch(batch);
  expect(maxAbsDiff(nb.subarray(0, x.data.length), x.data)).toBe(0);
  expect(maxAbsDiff(nb.subarray(x.data.length), normalize(toTensor(horizontalFlip(src))).data))
    .toBe(0);
  const big = resizePil(src, 256, 256, "bicubic");
  const enc = digitEncoderInput(stackImages([big]));
  expect(enc.shape).toEqual([1, 3, 224, 224]);
  const ref = interpolateBicubic(normalize(toTensor(big)).data, 3, 256, 256, {
    scaleFactor: 224 / 256,
  });
  expect(maxAbsDiff(enc.data, ref.data)).toBe(0);
  const small = digitEncoderInput(batch);
  expect(small.shape).toEqual([2, 3, 45, 61]); // not 256 wide: no resize
  const t = digitTrainTransform(32)(src, new Rng(1));
  expect(`${t.width}x${t.height}`).toBe("32x32");
  expect(fidReferenceTransform(src, new Rng(0)).width).toBe(256);
});

it("resizeBilinearTf1 matches torch-fidelity's TF1 bilinear exactly", () => {
  for (const c of synth.tf1 as { height: number; width: number; data: string }[]) {
    const y = resizeBilinearTf1(src, c.height, c.width);
    expect(maxAbsDiff(y.data, floats(c.data)), `${c.height}x${c.width}`).toBe(0);
  }
  // Closed form: 2x1 -> 4x1 samples at x = 0, 0.5, 1, 1.5 with the upper neighbour clamped.
  const y = resizeBilinearTf1Planes(new Float32Array([10, 20]), 1, 1, 2, 1, 4);
  expect(Array.from(y)).toEqual([10, 15, 20, 20]);
});

it("crops and flips: geometry and seeded randomness", () => {
  const img = { width: 3, height: 2, data: Uint8Array.from({ length: 18 }, (_, i) => i) };
  expect(Array.from(horizontalFlip(img).data.subarray(0, 9))).toEqual([
    6,
    7,
    8,
    3,
    4,
    5,
    0,
    1,
    2,
  ]);
  // torchvision rounds (3-2)/2 = 0.5 half-to-even -> 0; (5-2)/2 = 1.5 -> 2.
  expect(Array.from(centerCrop(img, [2, 2]).data.subarray(0, 3))).toEqual([0, 1, 2]);
  const wide = { width: 5, height: 1, data: Uint8Array.from({ length: 15 }, (_, i) => i) };
  expect(Array.from(centerCrop(wide, [1, 2]).data)).toEqual([6, 7, 8, 9, 10, 11]);
  const g1 = new Rng(5);
  const g2 = new Rng(5);
  const a = randomCrop(src, 16, g1);
  const b = randomCrop(src, 16, g2);
  expect(a.data).toEqual(b.data);
  expect(g1.offset).toBe(2);
  expect(() => randomCrop(src, 100, g1)).toThrow(/larger than image/);
  // Flip decisions follow uniform() < 0.5 and roughly half flip.
  const g = new Rng(11);
  let flips = 0;
  for (let i = 0; i < 400; i++) if (randomHorizontalFlip(img, g) !== img) flips++;
  expect(flips > 150 && flips < 250, `flips ${flips}`).toBeTruthy();
});

interface PhotoRef {
  resize256_bicubic: { size: number[]; sha256: string };
  center256: { sha256: string };
  resize224_center224: { sha256: string };
  fid_ref_bilinear256: { sha256: string };
  resize32_bicubic: string;
  resize32_bilinear: string;
  digit224: { shape: number[]; positions: string; values: string; channel_sums: number[] };
  tf1_299: { positions: string; values: string; sha256: string };
}

it.skipIf(!havePhotos)(
  "real photos: DiGIT and FID preprocessing chains match PIL/torch",
  async () => {
    const chosen = JSON.parse(Deno.readTextFileSync(FIX + "photos.json")).chosen as Record<
      string,
      PhotoRef
    >;
    expect(Object.keys(chosen).length).toBe(6);
    for (const [name, e] of Object.entries(chosen)) {
      const im = await readImage(PHOTOS + name);
      const r256 = resizeShortSide(im, 256, "bicubic");
      expect([r256.width, r256.height], name).toEqual(e.resize256_bicubic.size);
      expect(await sha256(r256.data), `${name} Resize(256, bicubic)`).toBe(
        e.resize256_bicubic.sha256,
      );
      const c256 = centerCrop(r256, 256);
      expect(await sha256(c256.data), `${name} CenterCrop(256)`).toBe(e.center256.sha256);
      const r224 = centerCrop(resizeShortSide(im, 224, "bicubic"), 224);
      expect(await sha256(r224.data), `${name} Resize(224)+CenterCrop`).toBe(
        e.resize224_center224.sha256,
      );
      const fid = centerCrop(resizeShortSide(im, 256, "bilinear"), 256);
      expect(await sha256(fid.data), `${name} FID reference prep`).toBe(
        e.fid_ref_bilinear256.sha256,
      );
      expect(maxAbsDiff(resizePil(im, 32, 32, "bicubic").data, bytes(e.resize32_bicubic)), name)
        .toBe(0);
      expect(maxAbsDiff(resizePil(im, 32, 32, "bilinear").data, bytes(e.resize32_bilinear)), name)
        .toBe(0);

      const x = normalize(toTensor(c256));
      const y = interpolateBicubic(x.data, 3, 256, 256, { scaleFactor: 224 / 256 });
      expect([3, y.height, y.width]).toEqual(e.digit224.shape);
      const pos = ints(e.digit224.positions);
      const want = floats(e.digit224.values);
      const got = Array.from(pos, (p) => y.data[p]);
      const d = maxAbsDiff(got, want);
      expect(d, `${name} interpolate 256->224: max diff ${d}`).toBeLessThanOrEqual(INTERP_TOL);
      const sums = [0, 1, 2].map((c) =>
        y.data.subarray(c * 224 * 224, (c + 1) * 224 * 224).reduce((s, v) => s + v, 0)
      );
      for (let c = 0; c < 3; c++) {
        expect(Math.abs(sums[c] - e.digit224.channel_sums[c]), `${name} sum ${c}`).toBeLessThan(
          0.05,
        );
      }

      const z = resizeBilinearTf1(c256, 299, 299);
      const zp = ints(e.tf1_299.positions);
      expect(maxAbsDiff(Array.from(zp, (p) => z.data[p]), floats(e.tf1_299.values)), name).toBe(0);
      expect(await sha256(z.data), `${name} TF1 299 digest`).toBe(e.tf1_299.sha256);
    }
  },
);
if (!havePhotos) {
  console.log("image_transforms_test: ../shared/data/imagenet-sample absent, photo test skipped");
}

it("resizePil: the WASM SIMD path runs here, and it and the TS passes both match PIL", () => {
  // Without this the fixture tests above could pass on the TS fallback alone.
  expect(resampleWasmAvailable(), "WASM SIMD resampling unavailable").toBeTruthy();
  for (
    const r of synth.resize as { filter: PilFilter; width: number; height: number; data: string }[]
  ) {
    const args = [src.data, src.width, src.height, 3, r.width, r.height, r.filter] as const;
    const want = bytes(r.data);
    const name = `${r.filter} ${r.width}x${r.height}`;
    expect(maxAbsDiff(resamplePil(...args), want), `wasm ${name}`).toBe(0);
    expect(maxAbsDiff(resamplePil(...args, false), want), `TS ${name}`).toBe(0);
  }
});

it("resamplePil: the WASM passes equal the TS reference byte for byte on awkward sizes", () => {
  const filters: PilFilter[] = ["box", "bilinear", "hamming", "bicubic", "lanczos"];
  const g = new Rng(7);
  const check = (w: number, h: number, ch: number, ow: number, oh: number, f: PilFilter) => {
    const data = new Uint8Array(w * h * ch);
    // Noise, and saturated 0/255 noise whose overshoot exercises the clamp at both ends.
    const saturated = g.uniform() < 0.5;
    for (let i = 0; i < data.length; i++) {
      data[i] = saturated ? (g.uniform() < 0.5 ? 0 : 255) : g.int(256);
    }
    const want = resamplePil(data, w, h, ch, ow, oh, f, false);
    const got = resamplePil(data, w, h, ch, ow, oh, f);
    expect(got.length).toBe(want.length);
    const at = got.findIndex((v, i) => v !== want[i]);
    expect(at, `${f} ${w}x${h}x${ch} -> ${ow}x${oh}: first difference at byte ${at}`).toBe(-1);
  };
  // For every filter and 1 to 4 channels, every width and every height 1..40 (rows shorter
  // and longer than 16 bytes), to random sizes up and down, or unchanged on one axis (where
  // only the other pass runs).
  for (const f of filters) {
    for (let ch = 1; ch <= 4; ch++) {
      for (let w = 1; w <= 40; w++) {
        const h = 1 + ((7 * w + 13 * ch) % 40);
        const ow = g.uniform() < 0.15 ? w : 1 + g.int(60);
        const oh = g.uniform() < 0.15 ? h : 1 + g.int(60);
        check(w, h, ch, ow, oh, f);
      }
    }
  }
  for (const f of filters) {
    check(1, 1, 3, 40, 40, f); // a single pixel blown up
    check(40, 40, 3, 1, 1, f); // and everything averaged into one
    check(333, 250, 3, 256, 192, f);
    check(97, 61, 5, 50, 70, f); // 5 channels: the TS fallback on both sides
  }
  // A large upscale: the wasm memory grows past what it keeps (64 MiB), and is let go after.
  check(2000, 2000, 3, 4096, 3000, "bilinear");
  check(61, 45, 3, 100, 80, "bicubic");
});
