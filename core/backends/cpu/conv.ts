/**
 * 2-D convolution on the CPU (NCHW input, OIHW weight as PyTorch, groups, stride, zero
 * padding) lowered to GEMM:
 *
 *   forward          y_g (O/g, OH*OW)   = W_g (O/g, C/g*kh*kw) @ im2col(x_g)
 *   backward input   col2im( W_g^T @ dy_g )
 *   backward weight  dW_g += dy_g @ im2col(x_g)^T   (summed over the batch)
 *
 * Small feature maps put several images side by side in the column matrix so that one
 * GEMM covers images*OH*OW columns (a GEMM with 64 or 289 columns runs well below the
 * BLAS's speed); the output (or dy) then moves between the batched (O/g, images*OH*OW)
 * layout and NCHW, and the bias is written into the GEMM's output before it accumulates
 * (beta = 1). Where WASM SIMD is available these images are staged zero-padded in wasm
 * memory and the column matrix, the rows and the moves are built there (im2col_wasm.ts,
 * see batchBuffers); im2col.ts stays the reference. Large feature maps take one image at a
 * time, the column buffer covering a band of output rows: about 1 MiB so it is still in cache
 * when read back, and bounded memory (a 3x3 conv with 256 channels at 256x256 would need
 * 600 MB at once). A 1x1, stride-1, unpadded convolution skips im2col (x is already the
 * column matrix). A stride-1 input gradient on a large map runs as a convolution of dy
 * (see transposedArgs). Scratch buffers are kept between calls and reused: at most
 * 16 MiB each for the column matrix and the batched rows, plus one weight's size.
 *
 * 3x3 stride-1 convolutions on maps of 32x32 pixels or more take Winograd F(4x4, 3x3)
 * instead (winograd.ts, SIMD transforms in winograd_wasm.ts): 4x less GEMM work, measured
 * 1.8-2.5x faster than im2col from 32x32 maps up (128-512 channels). On 16x16 maps its
 * (O, C) x (C, tiles) GEMMs are too narrow and im2col stays ahead, as it does when there
 * are only a few input channels.
 */

import { type Conv2dArgs, ShapeError } from "../../backend.ts";
import { sgemm as defaultSgemm, type SgemmFn } from "./gemm.ts";
import { col2im, im2col } from "./im2col.ts";
import { col2imImages, gatherRows, im2colImages, scatterRows, wasmBatch } from "./im2col_wasm.ts";
import { conv2dWinograd, F4X3, tsPasses, winogradApplies } from "./winograd.ts";
import { winogradWasmPasses } from "./winograd_wasm.ts";
import { outputF32 } from "./storage.ts";

/** Budget in floats (16 MiB) for each of the two scratch buffers. */
const SCRATCH_BUDGET = 1 << 22;
/** Batch images into one GEMM until it has about this many columns. */
const TARGET_COLUMNS = 2048;
/**
 * A band of one large image aims at a column matrix of about 1 MiB, so it is still in
 * cache when the GEMM (or col2im) reads it, but at least this many columns wide.
 */
const BAND_FLOATS = 1 << 18;
const MIN_BAND_COLUMNS = 2048;

interface Plan {
  Cg: number; // input channels per group
  Og: number; // output channels per group
  K: number; // Cg * kH * kW, the GEMM depth of the forward pass
  HW: number;
  OHW: number;
  pointwise: boolean;
  /** Images per GEMM; when > 1 each band is a whole image. */
  images: number;
  rowsPerBand: number;
}

function plan(args: Conv2dArgs, op: string): Plan {
  const { batch, inC, outC, groups, kH, kW, inH, inW, outH, outW, strideH, strideW, padH, padW } =
    args;
  const describe = `args=${JSON.stringify(args)}`;
  if (groups < 1 || inC % groups !== 0 || outC % groups !== 0) {
    throw new ShapeError(op, `channels must divide by groups: ${describe}`);
  }
  const expectH = Math.floor((inH + 2 * padH - kH) / strideH) + 1;
  const expectW = Math.floor((inW + 2 * padW - kW) / strideW) + 1;
  if (outH !== expectH || outW !== expectW || outH < 1 || outW < 1) {
    throw new ShapeError(op, `output ${outH}x${outW}, expected ${expectH}x${expectW}: ${describe}`);
  }
  const Cg = inC / groups, Og = outC / groups, K = Cg * kH * kW, OHW = outH * outW;
  const pointwise = kH === 1 && kW === 1 && strideH === 1 && strideW === 1 && padH === 0 &&
    padW === 0;
  // Pointwise convs read x in place one image at a time: gathering images costs more
  // than the bigger GEMM gains.
  const perImage = Math.max(K, Og) * OHW; // the larger of the two scratch buffers
  const images = pointwise ? 1 : Math.max(
    1,
    Math.min(
      batch,
      Math.ceil(TARGET_COLUMNS / OHW),
      Math.floor(SCRATCH_BUDGET / perImage),
    ),
  );
  const bandColumns = Math.max(BAND_FLOATS / K, MIN_BAND_COLUMNS);
  return {
    Cg,
    Og,
    K,
    HW: inH * inW,
    OHW,
    pointwise,
    images,
    rowsPerBand: images > 1 ? outH : Math.max(
      1,
      Math.min(
        outH,
        Math.floor(bandColumns / outW),
        Math.floor(SCRATCH_BUDGET / (K * outW)),
      ),
    ),
  };
}

function expectLength(op: string, name: string, arr: Float32Array, n: number, args: Conv2dArgs) {
  if (arr.length !== n) {
    throw new ShapeError(
      op,
      `${name} has ${arr.length} elements, expected ${n}: ` +
        `args=${JSON.stringify(args)}`,
    );
  }
}

// Reusable scratch: the column matrix, and a batched (O/g, images*OH*OW) output or dy.
let colsScratch = new Float32Array(0);
let rowsScratch = new Float32Array(0);

function colsBuffer(n: number): Float32Array {
  if (colsScratch.length < n) colsScratch = new Float32Array(n);
  return colsScratch;
}

function rowsBuffer(n: number): Float32Array {
  if (rowsScratch.length < n) rowsScratch = new Float32Array(n);
  return rowsScratch;
}

/**
 * Copies `rows` rows of `len` values of images n0..n0+nb-1 from NCHW-like `src`
 * (row r of image i at srcOff(i) + r*len) into `dst` side by side (row r at r*ld + i*len).
 */
function gatherImages(
  src: Float32Array,
  srcOff: (i: number) => number,
  nb: number,
  rows: number,
  len: number,
  dst: Float32Array,
  ld: number,
) {
  for (let i = 0; i < nb; i++) {
    const s = srcOff(i);
    for (let r = 0; r < rows; r++) {
      dst.set(src.subarray(s + r * len, s + (r + 1) * len), r * ld + i * len);
    }
  }
}

/**
 * The batched path's buffers and moves, for nb whole images side by side (ld = nb*OH*OW):
 * the column matrix (Cg*kH*kW, ld), the rows (Og, ld) of the GEMM's output or of dy, and
 * the moves between them and NCHW. The SIMD kernels of im2col_wasm.ts do this in wasm
 * memory where they apply (the GEMM reads and writes there); measured on 8x8 maps, 64
 * channels, batch 32: im2col 1.3 -> 0.3 ms, col2im 1.5 -> 0.3 ms, while the row moves
 * were only 0.1 ms (2048 block copies of 64 floats) and take about half that in wasm.
 * Elsewhere the TS reference runs: im2col.ts image by image, a block copy per row.
 */
interface Batch {
  cols: Float32Array;
  rows: Float32Array;
  im2col(x: Float32Array, xOff: (i: number) => number): void;
  /** Writes image i's gradient at dxOff(i) (TS adds it: dx starts zeroed). */
  col2im(dx: Float32Array, dxOff: (i: number) => number): void;
  gather(dy: Float32Array, dyOff: (i: number) => number): void;
  scatter(y: Float32Array, yOff: (i: number) => number): void;
}

function batchBuffers(nb: number, Cg: number, Og: number, args: Conv2dArgs, ld: number): Batch {
  const wasm = wasmBatch(nb, Cg, Og, args, ld);
  if (wasm) {
    return {
      ...wasm,
      im2col: im2colImages,
      col2im: col2imImages,
      gather: gatherRows,
      scatter: scatterRows,
    };
  }
  const OHW = args.outH * args.outW;
  const cols = colsBuffer(Cg * args.kH * args.kW * ld), rows = rowsBuffer(Og * ld);
  return {
    cols,
    rows,
    im2col(x, xOff) {
      for (let i = 0; i < nb; i++) im2col(x, xOff(i), Cg, args, 0, args.outH, cols, i * OHW, ld);
    },
    col2im(dx, dxOff) {
      for (let i = 0; i < nb; i++) {
        col2im(cols, i * OHW, ld, Cg, args, 0, args.outH, dx, dxOff(i));
      }
    },
    gather: (dy, dyOff) => gatherImages(dy, dyOff, nb, Og, OHW, rows, ld),
    scatter(y, yOff) {
      for (let i = 0; i < nb; i++) {
        for (let o = 0; o < Og; o++) {
          y.set(rows.subarray(o * ld + i * OHW, o * ld + (i + 1) * OHW), yOff(i) + o * OHW);
        }
      }
    },
  };
}

let winograd: "wasm" | "ts" | "off" = "wasm";

/**
 * Picks the Winograd path: "wasm" (SIMD transforms where available, the default), "ts"
 * (the reference transforms), or "off" (always im2col). For tests and benchmarks.
 */
export function useWinograd(mode: "wasm" | "ts" | "off"): void {
  winograd = mode;
}

const TS_WINOGRAD = tsPasses(F4X3);

/** Output pixels per image and input channels from which Winograd beats im2col, measured. */
const WINOGRAD_MIN_PIXELS = 1024;
const WINOGRAD_MIN_CHANNELS = 16;

function takesWinograd(a: Conv2dArgs): boolean {
  return winograd !== "off" && winogradApplies(a) && a.inC >= WINOGRAD_MIN_CHANNELS &&
    a.outH * a.outW >= WINOGRAD_MIN_PIXELS;
}

export function conv2d(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | null,
  args: Conv2dArgs,
  gemm: SgemmFn = defaultSgemm,
): Float32Array {
  const p = plan(args, "conv2d");
  const { batch, inC, outC, groups, outH, outW } = args;
  const { Cg, Og, K, HW, OHW } = p;
  expectLength("conv2d", "x", x, batch * inC * HW, args);
  expectLength("conv2d", "w", w, outC * K, args);
  if (bias) expectLength("conv2d", "bias", bias, outC, args);
  if (takesWinograd(args)) {
    const passes = (winograd === "wasm" && winogradWasmPasses()) || TS_WINOGRAD;
    return conv2dWinograd(x, w, bias, args, gemm, passes);
  }

  // Every element is written below (bias fill, or a beta-0 GEMM), so no zeroing.
  const y = outputF32(batch * outC * OHW, false);
  // GEMMs accumulate onto the bias already in place (beta 1), else overwrite (beta 0).
  const beta = bias ? 1 : 0;
  for (let n0 = 0; n0 < batch; n0 += p.images) {
    const nb = Math.min(p.images, batch - n0);
    for (let gi = 0; gi < groups; gi++) {
      const xOff = (i: number) => ((n0 + i) * inC + gi * Cg) * HW;
      const yOff = (i: number) => ((n0 + i) * outC + gi * Og) * OHW;
      const wOff = gi * Og * K;
      if (nb > 1) {
        // Whole images side by side; the bias goes in before the GEMM, NCHW order after.
        const ld = nb * OHW, b = batchBuffers(nb, Cg, Og, args, ld), out = b.rows;
        b.im2col(x, xOff);
        if (bias) {
          for (let o = 0; o < Og; o++) out.fill(bias[gi * Og + o], o * ld, (o + 1) * ld);
        }
        gemm(false, false, Og, ld, K, 1, w, wOff, K, b.cols, 0, ld, beta, out, 0, ld);
        b.scatter(y, yOff);
        continue;
      }
      if (bias) {
        for (let o = 0, row = yOff(0); o < Og; o++, row += OHW) {
          y.fill(bias[gi * Og + o], row, row + OHW);
        }
      }
      if (p.pointwise) {
        gemm(false, false, Og, OHW, Cg, 1, w, wOff, Cg, x, xOff(0), HW, beta, y, yOff(0), OHW);
        continue;
      }
      for (let oh0 = 0; oh0 < outH; oh0 += p.rowsPerBand) {
        const oh1 = Math.min(outH, oh0 + p.rowsPerBand);
        const width = (oh1 - oh0) * outW;
        const cols = colsBuffer(K * width);
        im2col(x, xOff(0), Cg, args, oh0, oh1, cols, 0, width);
        gemm(
          false,
          false,
          Og,
          width,
          K,
          1,
          w,
          wOff,
          K,
          cols,
          0,
          width,
          beta,
          y,
          yOff(0) + oh0 * outW,
          OHW,
        );
      }
    }
  }
  return y;
}

export function conv2dBackwardInput(
  dy: Float32Array,
  w: Float32Array,
  args: Conv2dArgs,
  gemm: SgemmFn = defaultSgemm,
): Float32Array {
  const p = plan(args, "conv2dBackwardInput");
  const { batch, inC, outC, groups, outH, outW } = args;
  const { Cg, Og, K, HW, OHW } = p;
  expectLength("conv2dBackwardInput", "dy", dy, batch * outC * OHW, args);
  expectLength("conv2dBackwardInput", "w", w, outC * K, args);
  const transposed = transposedArgs(args, p);
  if (transposed) return conv2d(dy, flippedWeight(w, args, p), null, transposed, gemm);

  const dx = new Float32Array(batch * inC * HW);
  for (let n0 = 0; n0 < batch; n0 += p.images) {
    const nb = Math.min(p.images, batch - n0);
    for (let gi = 0; gi < groups; gi++) {
      const dxOff = (i: number) => ((n0 + i) * inC + gi * Cg) * HW;
      const dyOff = (i: number) => ((n0 + i) * outC + gi * Og) * OHW;
      const wOff = gi * Og * K;
      if (nb > 1) {
        const ld = nb * OHW, b = batchBuffers(nb, Cg, Og, args, ld);
        b.gather(dy, dyOff);
        gemm(true, false, K, ld, Og, 1, w, wOff, K, b.rows, 0, ld, 0, b.cols, 0, ld);
        b.col2im(dx, dxOff);
        continue;
      }
      if (p.pointwise) {
        gemm(true, false, Cg, HW, Og, 1, w, wOff, Cg, dy, dyOff(0), OHW, 0, dx, dxOff(0), HW);
        continue;
      }
      for (let oh0 = 0; oh0 < outH; oh0 += p.rowsPerBand) {
        const oh1 = Math.min(outH, oh0 + p.rowsPerBand);
        const width = (oh1 - oh0) * outW;
        const cols = colsBuffer(K * width);
        gemm(
          true,
          false,
          K,
          width,
          Og,
          1,
          w,
          wOff,
          K,
          dy,
          dyOff(0) + oh0 * outW,
          OHW,
          0,
          cols,
          0,
          width,
        );
        col2im(cols, 0, width, Cg, args, oh0, oh1, dx, dxOff(0));
      }
    }
  }
  return dx;
}

/**
 * A stride-1 convolution's input gradient is itself a stride-1 convolution of dy, with
 * the weight's in/out channels swapped and its taps flipped, and padding k-1-p:
 *   dx[c, ih, iw] = sum_{o,ki,kj} w[o, c, ki, kj] dy[o, ih + p - ki, iw + p - kj].
 * That path needs no col2im (a scatter-add, about 1 ns per element here, against block
 * copies for im2col) but rearranges the weight on every call and builds a column matrix
 * over dy's channels. Measured, it wins on large feature maps whose output channels do
 * not outnumber the input channels much (32->64 at 147x147: 1.5x); on 8x8 and 17x17 maps
 * or 80->192 it loses by up to 25%, so those keep col2im.
 */
function transposedArgs(a: Conv2dArgs, p: Plan): Conv2dArgs | null {
  if (p.pointwise || a.strideH !== 1 || a.strideW !== 1) return null;
  if (a.padH > a.kH - 1 || a.padW > a.kW - 1) return null;
  if (p.OHW < 1024 || p.Og > 2 * p.Cg || a.batch * p.OHW <= p.Og) return null;
  return {
    batch: a.batch,
    inC: a.outC,
    inH: a.outH,
    inW: a.outW,
    outC: a.inC,
    kH: a.kH,
    kW: a.kW,
    strideH: 1,
    strideW: 1,
    padH: a.kH - 1 - a.padH,
    padW: a.kW - 1 - a.padW,
    groups: a.groups,
    outH: a.inH,
    outW: a.inW,
  };
}

let weightScratch = new Float32Array(0);

/** wT[g*Cg + c][o][kk-1-t] = w[g*Og + o][c][t], into reused scratch. */
function flippedWeight(w: Float32Array, a: Conv2dArgs, p: Plan): Float32Array {
  const { Cg, Og } = p;
  const kk = a.kH * a.kW;
  if (weightScratch.length < w.length) weightScratch = new Float32Array(w.length);
  // conv2d checks the weight's exact length, so hand it a view of exactly that size.
  const wT = weightScratch.subarray(0, w.length);
  for (let g = 0; g < a.groups; g++) {
    for (let o = 0; o < Og; o++) {
      for (let c = 0; c < Cg; c++) {
        const src = ((g * Og + o) * Cg + c) * kk;
        const dst = ((g * Cg + c) * Og + o) * kk + kk - 1;
        for (let t = 0; t < kk; t++) wT[dst - t] = w[src + t];
      }
    }
  }
  return wT;
}

export function conv2dBackwardWeight(
  dy: Float32Array,
  x: Float32Array,
  args: Conv2dArgs,
  gemm: SgemmFn = defaultSgemm,
): Float32Array {
  const p = plan(args, "conv2dBackwardWeight");
  const { batch, inC, outC, groups, outH, outW } = args;
  const { Cg, Og, K, HW, OHW } = p;
  expectLength("conv2dBackwardWeight", "dy", dy, batch * outC * OHW, args);
  expectLength("conv2dBackwardWeight", "x", x, batch * inC * HW, args);

  const dw = new Float32Array(outC * K);
  for (let n0 = 0; n0 < batch; n0 += p.images) {
    const nb = Math.min(p.images, batch - n0);
    for (let gi = 0; gi < groups; gi++) {
      const xOff = (i: number) => ((n0 + i) * inC + gi * Cg) * HW;
      const dyOff = (i: number) => ((n0 + i) * outC + gi * Og) * OHW;
      const wOff = gi * Og * K;
      if (nb > 1) {
        const ld = nb * OHW, b = batchBuffers(nb, Cg, Og, args, ld);
        b.gather(dy, dyOff);
        b.im2col(x, xOff);
        gemm(false, true, Og, K, ld, 1, b.rows, 0, ld, b.cols, 0, ld, 1, dw, wOff, K);
        continue;
      }
      if (p.pointwise) {
        gemm(false, true, Og, Cg, HW, 1, dy, dyOff(0), OHW, x, xOff(0), HW, 1, dw, wOff, Cg);
        continue;
      }
      for (let oh0 = 0; oh0 < outH; oh0 += p.rowsPerBand) {
        const oh1 = Math.min(outH, oh0 + p.rowsPerBand);
        const width = (oh1 - oh0) * outW;
        const cols = colsBuffer(K * width);
        im2col(x, xOff(0), Cg, args, oh0, oh1, cols, 0, width);
        gemm(
          false,
          true,
          Og,
          K,
          width,
          1,
          dy,
          dyOff(0) + oh0 * outW,
          OHW,
          cols,
          0,
          width,
          1,
          dw,
          wOff,
          K,
        );
      }
    }
  }
  return dw;
}
