/**
 * Winograd F(2x2, 3x3) convolution (Lavin & Gray, 2016) for 3x3, stride-1 convolutions
 * without groups: every 2x2 block of outputs ("tile") of one output channel is
 *
 *   Y = A^T [ sum_c U_c ⊙ V_c ] A,   U_c = G g_c G^T (4x4),   V_c = B^T d_c B (4x4)
 *
 * where g_c is the 3x3 filter of input channel c and d_c the 4x4 input patch under the
 * tile. Summing over c at each of the 16 positions ξ of the 4x4 transform domain is a
 * matrix product, so the convolution becomes 16 GEMMs
 *
 *   M[ξ] (O, tiles) = U[ξ] (O, C) @ V[ξ] (C, tiles)
 *
 * with 16 multiplies per tile and channel pair instead of im2col's 36: 2.25x less GEMM
 * work. The transforms only add and halve (entries 0, ±1, ±1/2), so the result stays
 * within a few float32 ulps of the direct sum.
 *
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 *
 * Tiles are numbered row-major over (image, tile row, tile column), so one band of tile
 * rows can span images and small feature maps still give the GEMMs enough columns. The
 * band is sized so its transformed input and GEMM output stay a few MiB. The transforms
 * here are the plain TS reference; winograd_wasm.ts runs the same passes in SIMD.
 */

import type { Conv2dArgs } from "../../backend.ts";
import type { SgemmFn } from "./gemm.ts";

/** The shape facts every pass needs. */
export interface WinogradPlan {
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

export function winogradPlan(a: Conv2dArgs): WinogradPlan {
  const tileRows = Math.ceil(a.outH / 2), tileCols = Math.ceil(a.outW / 2);
  const perTile = 16 * Math.max(a.inC, a.outC);
  const bandRows = Math.max(1, Math.min(
    a.batch * tileRows,
    Math.round(TARGET_TILES / tileCols),
    Math.floor(SCRATCH_BUDGET / (perTile * tileCols)),
  ));
  return {
    C: a.inC, O: a.outC, inH: a.inH, inW: a.inW, padH: a.padH, padW: a.padW,
    outH: a.outH, outW: a.outW, tileRows, tileCols, bandRows,
  };
}

/** U[ξ][o][c] = (G g_oc G^T)[ξ] for weights w (O, C, 3, 3). */
export function filterTransform(w: Float32Array, O: number, C: number): Float32Array {
  const U = new Float32Array(16 * O * C);
  const plane = O * C;
  const t = new Float64Array(12); // G g: 4 rows x 3 columns
  for (let oc = 0; oc < plane; oc++) {
    const g = oc * 9;
    for (let j = 0; j < 3; j++) {
      const g0 = w[g + j], g1 = w[g + 3 + j], g2 = w[g + 6 + j];
      t[j] = g0;
      t[3 + j] = 0.5 * (g0 + g1 + g2);
      t[6 + j] = 0.5 * (g0 - g1 + g2);
      t[9 + j] = g2;
    }
    for (let i = 0; i < 4; i++) {
      const r0 = t[3 * i], r1 = t[3 * i + 1], r2 = t[3 * i + 2];
      U[(4 * i) * plane + oc] = r0;
      U[(4 * i + 1) * plane + oc] = 0.5 * (r0 + r1 + r2);
      U[(4 * i + 2) * plane + oc] = 0.5 * (r0 - r1 + r2);
      U[(4 * i + 3) * plane + oc] = r2;
    }
  }
  return U;
}

/**
 * V[c][ξ][t] = (B^T d B)[ξ] for the tiles of global tile rows [g0, g1), t counted from the
 * band's first tile: channel c's 16 rows of `ld` tiles sit together (so a channel's
 * transform writes one compact block), and the GEMM reads ξ's (C, tiles) matrix with row
 * stride 16*ld.
 */
export function inputTransform(
  x: Float32Array, p: WinogradPlan, g0: number, g1: number, V: Float32Array, ld: number,
): void {
  const { C, inH, inW, padH, padW, tileRows, tileCols } = p;
  const width = 2 * tileCols + 2; // padded input columns under one tile row
  const rows = new Float32Array(4 * width); // zero outside the image, left and right
  const bt = new Float32Array(16);
  for (let c = 0; c < C; c++) {
    for (let g = g0; g < g1; g++) {
      const n = Math.floor(g / tileRows), iy0 = 2 * (g % tileRows) - padH;
      const src = (n * C + c) * inH * inW;
      for (let k = 0; k < 4; k++) {
        const iy = iy0 + k, dst = k * width + padW;
        if (iy >= 0 && iy < inH) rows.set(x.subarray(src + iy * inW, src + (iy + 1) * inW), dst);
        else rows.fill(0, dst, dst + inW);
      }
      let out = c * 16 * ld + (g - g0) * tileCols;
      for (let tx = 0, a = 0; tx < tileCols; tx++, a += 2, out++) {
        for (let j = 0; j < 4; j++) {
          // Rows first: B^T d, column a + j of the patch.
          const r0 = rows[a + j], r1 = rows[width + a + j];
          const r2 = rows[2 * width + a + j], r3 = rows[3 * width + a + j];
          bt[j] = r0 - r2, bt[4 + j] = r1 + r2, bt[8 + j] = r2 - r1, bt[12 + j] = r1 - r3;
        }
        for (let i = 0; i < 4; i++) {
          // Then columns: (B^T d) B.
          const d0 = bt[4 * i], d1 = bt[4 * i + 1], d2 = bt[4 * i + 2], d3 = bt[4 * i + 3];
          const o = out + 4 * i * ld;
          V[o] = d0 - d2;
          V[o + ld] = d1 + d2;
          V[o + 2 * ld] = d2 - d1;
          V[o + 3 * ld] = d1 - d3;
        }
      }
    }
  }
}

/**
 * y[n, o, 2ty + i, 2tx + j] = (A^T M A)[i][j] + bias[o] for the band's tiles, M laid out
 * [o][ξ][t] like V, dropping the row and column past an odd output size.
 */
export function outputTransform(
  M: Float32Array, ld: number, p: WinogradPlan, g0: number, g1: number,
  bias: Float32Array | null, y: Float32Array,
): void {
  const { O, outH, outW, tileRows, tileCols } = p;
  const s = new Float32Array(4), d = new Float32Array(4);
  for (let o = 0; o < O; o++) {
    const b = bias ? bias[o] : 0;
    for (let g = g0; g < g1; g++) {
      const n = Math.floor(g / tileRows), oy = 2 * (g % tileRows);
      const row0 = ((n * O + o) * outH + oy) * outW, hasRow1 = oy + 1 < outH;
      let m = o * 16 * ld + (g - g0) * tileCols;
      for (let tx = 0; tx < tileCols; tx++, m++) {
        for (let j = 0; j < 4; j++) {
          // Rows first: A^T M, column j.
          const m0 = M[m + j * ld], m1 = M[m + (4 + j) * ld];
          const m2 = M[m + (8 + j) * ld], m3 = M[m + (12 + j) * ld];
          s[j] = m0 + m1 + m2, d[j] = m1 - m2 - m3;
        }
        const ox = 2 * tx, hasCol1 = ox + 1 < outW;
        y[row0 + ox] = s[0] + s[1] + s[2] + b;
        if (hasCol1) y[row0 + ox + 1] = s[1] - s[2] - s[3] + b;
        if (hasRow1) {
          y[row0 + outW + ox] = d[0] + d[1] + d[2] + b;
          if (hasCol1) y[row0 + outW + ox + 1] = d[1] - d[2] - d[3] + b;
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
  /** V (16*C*ld floats) and M (16*O*ld floats), valid until the next call. */
  workspace(p: WinogradPlan, ld: number): { V: Float32Array; M: Float32Array };
  input: typeof inputTransform;
  output: typeof outputTransform;
}

// Kept between calls and reused.
let vScratch = new Float32Array(0);
let mScratch = new Float32Array(0);

export const TS_PASSES: WinogradPasses = {
  workspace(p, ld) {
    if (vScratch.length < 16 * p.C * ld) vScratch = new Float32Array(16 * p.C * ld);
    if (mScratch.length < 16 * p.O * ld) mScratch = new Float32Array(16 * p.O * ld);
    return { V: vScratch, M: mScratch };
  },
  input: inputTransform,
  output: outputTransform,
};

/** conv2d for arguments where `winogradApplies`; x (N, C, H, W), w (O, C, 3, 3). */
export function conv2dWinograd(
  x: Float32Array, w: Float32Array, bias: Float32Array | null, a: Conv2dArgs, gemm: SgemmFn,
  passes: WinogradPasses = TS_PASSES,
): Float32Array {
  const p = winogradPlan(a);
  const { C, O, tileRows, tileCols, bandRows } = p;
  const U = filterTransform(w, O, C);
  const y = new Float32Array(a.batch * O * a.outH * a.outW);
  // SIMD passes run 4 tiles at a time and may write 3 past a band's last tile.
  const ld = bandRows * tileCols + 4;
  const { V, M } = passes.workspace(p, ld);
  const total = a.batch * tileRows;
  for (let g0 = 0; g0 < total; g0 += bandRows) {
    const g1 = Math.min(total, g0 + bandRows), tiles = (g1 - g0) * tileCols;
    passes.input(x, p, g0, g1, V, ld);
    for (let xi = 0; xi < 16; xi++) {
      gemm(false, false, O, tiles, C, 1, U, xi * O * C, C, V, xi * ld, 16 * ld, 0, M, xi * ld, 16 * ld);
    }
    passes.output(M, ld, p, g0, g1, bias, y);
  }
  return y;
}
