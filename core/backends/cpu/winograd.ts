/**
 * Winograd convolution F(m x m, 3x3) (Lavin & Gray, 2016) for 3x3, stride-1 convolutions
 * without groups. Every m x m block of outputs ("tile") of one output channel is
 *
 *   Y = A^T [ sum_c U_c ⊙ V_c ] A,   U_c = G g_c G^T,   V_c = B^T d_c B   (α x α, α = m + 2)
 *
 * where g_c is the 3x3 filter of input channel c and d_c the α x α input patch under the
 * tile. The sum over c at each of the α² positions ξ of the transform domain is a matrix
 * product, so the convolution becomes α² GEMMs
 *
 *   M[ξ] (O, tiles) = U[ξ] (O, C) @ V[ξ] (C, tiles)
 *
 * F(2x2, 3x3) multiplies 16 times per 4 outputs (2.25x fewer than direct), F(4x4, 3x3)
 * 36 times per 16 (4x fewer). The price is rounding: F(2, 3)'s transforms only add and
 * halve, F(4, 3)'s scale by up to 8 (in A) and 5 (in B), so its float32 error grows about
 * tenfold; it is still far below what the model tests allow (see cpu_winograd_test.ts).
 *
 * Tiles are numbered row-major over (image, tile row, tile column), so one band of tile
 * rows can span images and small feature maps still give the GEMMs enough columns. The
 * band is sized so its transformed input and GEMM output stay a few MiB. The transforms
 * here are the plain TS reference, written from the matrices; winograd_wasm.ts runs
 * F(4x4, 3x3)'s in SIMD.
 */

import type { Conv2dArgs } from "../../backend.ts";
import type { SgemmFn } from "./gemm.ts";
import { outputF32 } from "./storage.ts";

/** One Winograd algorithm F(m x m, 3x3): its output tile size and its three matrices. */
export interface WinogradTransform {
  name: string;
  m: number;
  /** α = m + 2 rows each: B^T (α x α), G (α x 3); A^T is m x α. */
  BT: readonly (readonly number[])[];
  G: readonly (readonly number[])[];
  AT: readonly (readonly number[])[];
}

export const F2X3: WinogradTransform = {
  name: "F(2x2,3x3)",
  m: 2,
  BT: [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
  G: [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
  AT: [[1, 1, 1, 0], [0, 1, -1, -1]],
};

/** Interpolation points 0, ±1, ±2 and infinity. */
export const F4X3: WinogradTransform = {
  name: "F(4x4,3x3)",
  m: 4,
  BT: [
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
  ],
  G: [
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
  ],
  AT: [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
};

/** The shape facts every pass needs. */
export interface WinogradPlan {
  t: WinogradTransform;
  C: number;
  O: number;
  inH: number;
  inW: number;
  padH: number;
  padW: number;
  outH: number;
  outW: number;
  /** Tile rows per image and tiles per tile row. */
  tileRows: number;
  tileCols: number;
  /** Global tile rows (over the whole batch) per band. */
  bandRows: number;
}

/** Tiles per band the GEMMs aim for, and the cap on each scratch buffer (floats). */
const TARGET_TILES = 1024;
const SCRATCH_BUDGET = 1 << 22;

/** Whether `a` is a convolution this file computes (3x3, stride 1, no groups, padding <= 2). */
export function winogradApplies(a: Conv2dArgs): boolean {
  return a.kH === 3 && a.kW === 3 && a.strideH === 1 && a.strideW === 1 && a.groups === 1 &&
    a.padH <= 2 && a.padW <= 2;
}

export function winogradPlan(a: Conv2dArgs, t: WinogradTransform): WinogradPlan {
  const tileRows = Math.ceil(a.outH / t.m), tileCols = Math.ceil(a.outW / t.m);
  const alpha = t.m + 2;
  const perTile = alpha * alpha * Math.max(a.inC, a.outC);
  const bandRows = Math.max(
    1,
    Math.min(
      a.batch * tileRows,
      Math.round(TARGET_TILES / tileCols),
      Math.floor(SCRATCH_BUDGET / (perTile * tileCols)),
    ),
  );
  return {
    t,
    C: a.inC,
    O: a.outC,
    inH: a.inH,
    inW: a.inW,
    padH: a.padH,
    padW: a.padW,
    outH: a.outH,
    outW: a.outW,
    tileRows,
    tileCols,
    bandRows,
  };
}

/** out (rows x cols) = L (rows x k) @ R[rOff..] (k x cols), all row-major, in float64. */
function small(
  L: ArrayLike<number>,
  R: ArrayLike<number>,
  rOff: number,
  rows: number,
  k: number,
  cols: number,
  out: Float64Array,
) {
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += L[i * k + q] * R[rOff + q * cols + j];
      out[i * cols + j] = s;
    }
  }
}

const flat = (rows: readonly (readonly number[])[]) => Float64Array.from(rows.flat());
const transpose = (rows: readonly (readonly number[])[]) =>
  rows[0].map((_, j) => rows.map((r) => r[j]));

/** U[ξ][o][c] = (G g_oc G^T)[ξ] for weights w (O, C, 3, 3). */
export function filterTransform(
  w: Float32Array,
  O: number,
  C: number,
  t: WinogradTransform,
): Float32Array {
  const alpha = t.m + 2, plane = O * C;
  const U = new Float32Array(alpha * alpha * plane);
  const G = flat(t.G), GT = flat(transpose(t.G));
  const Gg = new Float64Array(alpha * 3), u = new Float64Array(alpha * alpha);
  for (let oc = 0; oc < plane; oc++) {
    small(G, w, 9 * oc, alpha, 3, 3, Gg);
    small(Gg, GT, 0, alpha, 3, alpha, u);
    for (let xi = 0; xi < alpha * alpha; xi++) U[xi * plane + oc] = u[xi];
  }
  return U;
}

/**
 * The filter transform is O*C*(α*3*3 + α*α*3) multiply-adds in TS: 40 ms for 512x512
 * channels, more than the whole convolution on a 32x32 map. Inference runs the same
 * weights again and again, so U is kept per weight array (weakly: it goes with the
 * weights) together with a copy of the weights it came from, and reused only while
 * every bit still matches (an exact check at about 1 ns per weight, so a weight changed
 * in place, by an optimiser step, gets a fresh U).
 */
const filterCache = new WeakMap<
  Float32Array,
  { t: WinogradTransform; bits: Int32Array; U: Float32Array }
>();

export function cachedFilterTransform(
  w: Float32Array,
  O: number,
  C: number,
  t: WinogradTransform,
): Float32Array {
  const bits = new Int32Array(w.buffer, w.byteOffset, w.length);
  const hit = filterCache.get(w);
  if (hit && hit.t === t && sameBits(hit.bits, bits)) return hit.U;
  const U = filterTransform(w, O, C, t);
  filterCache.set(w, { t, bits: bits.slice(), U });
  return U;
}

function sameBits(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * V[c][ξ][t] = (B^T d B)[ξ] for the tiles of global tile rows [g0, g1), t counted from the
 * band's first tile: channel c's α² rows of `ld` tiles sit together (so a channel's
 * transform writes one compact block), and the GEMM reads ξ's (C, tiles) matrix with row
 * stride α²*ld. Computed in float32 steps, as the SIMD version does.
 */
export function inputTransform(
  x: Float32Array,
  p: WinogradPlan,
  g0: number,
  g1: number,
  V: Float32Array,
  ld: number,
): void {
  const { t, C, inH, inW, padH, padW, tileRows, tileCols } = p;
  const m = t.m, alpha = m + 2, BT = flat(t.BT), B = flat(transpose(t.BT));
  const d = new Float32Array(alpha * alpha), btd = new Float64Array(alpha * alpha);
  const v = new Float64Array(alpha * alpha), btdF = new Float32Array(alpha * alpha);
  for (let c = 0; c < C; c++) {
    for (let g = g0; g < g1; g++) {
      const n = Math.floor(g / tileRows), iy0 = m * (g % tileRows) - padH;
      const plane = x.subarray((n * C + c) * inH * inW, (n * C + c + 1) * inH * inW);
      let out = c * alpha * alpha * ld + (g - g0) * tileCols;
      for (let tx = 0; tx < tileCols; tx++, out++) {
        const ix0 = m * tx - padW;
        for (let i = 0; i < alpha; i++) {
          for (let j = 0; j < alpha; j++) {
            const iy = iy0 + i, ix = ix0 + j;
            d[i * alpha + j] = iy >= 0 && iy < inH && ix >= 0 && ix < inW
              ? plane[iy * inW + ix]
              : 0;
          }
        }
        small(BT, d, 0, alpha, alpha, alpha, btd);
        btdF.set(btd);
        small(btdF, B, 0, alpha, alpha, alpha, v);
        for (let xi = 0; xi < alpha * alpha; xi++) V[out + xi * ld] = v[xi];
      }
    }
  }
}

/**
 * y[n, o, m*ty + i, m*tx + j] = (A^T M A)[i][j] + bias[o] for the band's tiles, M laid out
 * [o][ξ][t] like V, dropping rows and columns past the output's edge.
 */
export function outputTransform(
  M: Float32Array,
  ld: number,
  p: WinogradPlan,
  g0: number,
  g1: number,
  bias: Float32Array | null,
  y: Float32Array,
): void {
  const { t, O, outH, outW, tileRows, tileCols } = p;
  const m = t.m, alpha = m + 2, AT = flat(t.AT), A = flat(transpose(t.AT));
  const mm = new Float32Array(alpha * alpha), atm = new Float64Array(m * alpha);
  const atmF = new Float32Array(m * alpha), yy = new Float64Array(m * m);
  for (let o = 0; o < O; o++) {
    const b = bias ? bias[o] : 0;
    for (let g = g0; g < g1; g++) {
      const n = Math.floor(g / tileRows), oy0 = m * (g % tileRows);
      const plane = (n * O + o) * outH * outW;
      let src = o * alpha * alpha * ld + (g - g0) * tileCols;
      for (let tx = 0; tx < tileCols; tx++, src++) {
        for (let xi = 0; xi < alpha * alpha; xi++) mm[xi] = M[src + xi * ld];
        small(AT, mm, 0, m, alpha, alpha, atm);
        atmF.set(atm);
        small(atmF, A, 0, m, alpha, m, yy);
        for (let i = 0; i < m && oy0 + i < outH; i++) {
          for (let j = 0; j < m && m * tx + j < outW; j++) {
            y[plane + (oy0 + i) * outW + m * tx + j] = yy[i * m + j] + b;
          }
        }
      }
    }
  }
}

/**
 * The transforms a conv2d call runs and the scratch they share with the GEMMs:
 * TS_PASSES here, SIMD ones in winograd_wasm.ts (whose scratch lives in wasm memory).
 */
export interface WinogradPasses {
  transform: WinogradTransform;
  /** V (α²*C*ld floats) and M (α²*O*ld floats), valid until the next call. */
  workspace(p: WinogradPlan, ld: number): { V: Float32Array; M: Float32Array };
  input: typeof inputTransform;
  output: typeof outputTransform;
}

// Kept between calls and reused.
let vScratch = new Float32Array(0);
let mScratch = new Float32Array(0);

/** The TS reference passes for transform `t`. */
export function tsPasses(t: WinogradTransform): WinogradPasses {
  return {
    transform: t,
    workspace(p, ld) {
      const xis = (t.m + 2) ** 2;
      if (vScratch.length < xis * p.C * ld) vScratch = new Float32Array(xis * p.C * ld);
      if (mScratch.length < xis * p.O * ld) mScratch = new Float32Array(xis * p.O * ld);
      return { V: vScratch, M: mScratch };
    },
    input: inputTransform,
    output: outputTransform,
  };
}

/** conv2d for arguments where `winogradApplies`; x (N, C, H, W), w (O, C, 3, 3). */
export function conv2dWinograd(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | null,
  a: Conv2dArgs,
  gemm: SgemmFn,
  passes: WinogradPasses = tsPasses(F4X3),
): Float32Array {
  const p = winogradPlan(a, passes.transform);
  const { C, O, tileRows, tileCols, bandRows } = p;
  const xis = (p.t.m + 2) ** 2;
  const U = cachedFilterTransform(w, O, C, p.t);
  const y = outputF32(a.batch * O * a.outH * a.outW, false); // every element written below
  // SIMD passes run 4 tiles at a time and may write 3 past a band's last tile.
  const ld = bandRows * tileCols + 4;
  const { V, M } = passes.workspace(p, ld);
  const total = a.batch * tileRows;
  for (let g0 = 0; g0 < total; g0 += bandRows) {
    const g1 = Math.min(total, g0 + bandRows), tiles = (g1 - g0) * tileCols;
    passes.input(x, p, g0, g1, V, ld);
    for (let xi = 0; xi < xis; xi++) {
      gemm(
        false,
        false,
        O,
        tiles,
        C,
        1,
        U,
        xi * O * C,
        C,
        V,
        xi * ld,
        xis * ld,
        0,
        M,
        xi * ld,
        xis * ld,
      );
    }
    passes.output(M, ld, p, g0, g1, bias, y);
  }
  return y;
}
