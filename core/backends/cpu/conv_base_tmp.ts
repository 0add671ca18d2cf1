/**
 * 2-D convolution on the CPU (NCHW input, OIHW weight as PyTorch, groups, stride, zero
 * padding) lowered to GEMM:
 *
 *   forward          y_g (O/g, OH*OW)   = W_g (O/g, C/g*kh*kw) @ im2col(x_g)
 *   backward input   col2im( W_g^T @ dy_g )
 *   backward weight  dW_g += dy_g @ im2col(x_g)^T   (summed over the batch)
 *
 * A 1x1, stride-1, unpadded convolution skips im2col (x is already the column matrix).
 * The column buffer covers a band of output rows at a time so memory stays bounded at
 * large resolutions (a 3x3 conv with 256 channels at 256x256 would need 600 MB at once).
 */

import { type Conv2dArgs, ShapeError } from "../../backend.ts";
import { sgemm as defaultSgemm, type SgemmFn } from "./gemm.ts";

/** Column-buffer budget in floats (16 MiB). */
const COLS_BUDGET = 1 << 22;

interface Geometry {
  Cg: number; // input channels per group
  Og: number; // output channels per group
  kk: number; // kH * kW
  HW: number;
  OHW: number;
  pointwise: boolean;
  rowsPerBand: number;
}

function geometry(args: Conv2dArgs, op: string): Geometry {
  const { inC, outC, groups, kH, kW, inH, inW, outH, outW, strideH, strideW, padH, padW } = args;
  const describe = `args=${JSON.stringify(args)}`;
  if (groups < 1 || inC % groups !== 0 || outC % groups !== 0) {
    throw new ShapeError(op, `channels must divide by groups: ${describe}`);
  }
  const expectH = Math.floor((inH + 2 * padH - kH) / strideH) + 1;
  const expectW = Math.floor((inW + 2 * padW - kW) / strideW) + 1;
  if (outH !== expectH || outW !== expectW || outH < 1 || outW < 1) {
    throw new ShapeError(op, `output ${outH}x${outW}, expected ${expectH}x${expectW}: ${describe}`);
  }
  const Cg = inC / groups;
  const kk = kH * kW;
  return {
    Cg,
    Og: outC / groups,
    kk,
    HW: inH * inW,
    OHW: outH * outW,
    pointwise: kk === 1 && strideH === 1 && strideW === 1 && padH === 0 && padW === 0,
    rowsPerBand: Math.max(1, Math.min(outH, Math.floor(COLS_BUDGET / (Cg * kk * outW)))),
  };
}

function expectLength(op: string, name: string, arr: Float32Array, n: number, args: Conv2dArgs) {
  if (arr.length !== n) {
    throw new ShapeError(op, `${name} has ${arr.length} elements, expected ${n}: ` +
      `args=${JSON.stringify(args)}`);
  }
}

/**
 * Column matrix of one image and one channel group, for output rows [oh0, oh1):
 * cols[(c*kH + ki)*kW + kj][(oh-oh0)*outW + ow] = x[c, oh*sH - pH + ki, ow*sW - pW + kj].
 */
export function im2col(
  x: Float32Array, xOff: number, Cg: number, a: Conv2dArgs, oh0: number, oh1: number,
  cols: Float32Array,
) {
  const { inH, inW, kH, kW, strideH, strideW, padH, padW, outW } = a;
  const width = (oh1 - oh0) * outW;
  let row = 0;
  for (let c = 0; c < Cg; c++) {
    const plane = xOff + c * inH * inW;
    for (let ki = 0; ki < kH; ki++) {
      for (let kj = 0; kj < kW; kj++, row++) {
        const [owLo, owHi] = validRange(kj, padW, strideW, inW, outW);
        let o = row * width;
        for (let oh = oh0; oh < oh1; oh++, o += outW) {
          const ih = oh * strideH - padH + ki;
          if (ih < 0 || ih >= inH) {
            cols.fill(0, o, o + outW);
            continue;
          }
          cols.fill(0, o, o + owLo);
          const src = plane + ih * inW - padW + kj;
          for (let ow = owLo; ow < owHi; ow++) cols[o + ow] = x[src + ow * strideW];
          cols.fill(0, o + owHi, o + outW);
        }
      }
    }
  }
}

/** Adjoint of im2col: dx[c, ih, iw] += cols[...] for output rows [oh0, oh1). */
function col2im(
  cols: Float32Array, Cg: number, a: Conv2dArgs, oh0: number, oh1: number, dx: Float32Array,
  dxOff: number,
) {
  const { inH, inW, kH, kW, strideH, strideW, padH, padW, outW } = a;
  const width = (oh1 - oh0) * outW;
  let row = 0;
  for (let c = 0; c < Cg; c++) {
    const plane = dxOff + c * inH * inW;
    for (let ki = 0; ki < kH; ki++) {
      for (let kj = 0; kj < kW; kj++, row++) {
        const [owLo, owHi] = validRange(kj, padW, strideW, inW, outW);
        let o = row * width;
        for (let oh = oh0; oh < oh1; oh++, o += outW) {
          const ih = oh * strideH - padH + ki;
          if (ih < 0 || ih >= inH) continue;
          const dst = plane + ih * inW - padW + kj;
          for (let ow = owLo; ow < owHi; ow++) dx[dst + ow * strideW] += cols[o + ow];
        }
      }
    }
  }
}

/** Output columns ow whose input column ow*s - pad + kj lies in [0, inW). */
function validRange(kj: number, pad: number, s: number, inW: number, outW: number) {
  const lo = Math.min(outW, Math.max(0, Math.ceil((pad - kj) / s)));
  const hi = Math.max(lo, Math.min(outW, Math.floor((inW - 1 + pad - kj) / s) + 1));
  return [lo, hi];
}

export function conv2d(
  x: Float32Array, w: Float32Array, bias: Float32Array | null, args: Conv2dArgs,
  gemm: SgemmFn = defaultSgemm,
): Float32Array {
  const g = geometry(args, "conv2d");
  const { batch, inC, outC, groups, outH, outW } = args;
  const { Cg, Og, kk, HW, OHW } = g;
  expectLength("conv2d", "x", x, batch * inC * HW, args);
  expectLength("conv2d", "w", w, outC * Cg * kk, args);
  if (bias) expectLength("conv2d", "bias", bias, outC, args);

  const y = new Float32Array(batch * outC * OHW);
  if (bias) {
    for (let n = 0; n < batch; n++) {
      for (let o = 0; o < outC; o++) {
        const start = (n * outC + o) * OHW;
        y.fill(bias[o], start, start + OHW);
      }
    }
  }
  const beta = bias ? 1 : 0;
  const cols = g.pointwise ? null : new Float32Array(Cg * kk * g.rowsPerBand * outW);
  for (let n = 0; n < batch; n++) {
    for (let gi = 0; gi < groups; gi++) {
      const xOff = (n * inC + gi * Cg) * HW;
      const yOff = (n * outC + gi * Og) * OHW;
      const wOff = gi * Og * Cg * kk;
      if (!cols) {
        gemm(false, false, Og, OHW, Cg, 1, w, wOff, Cg, x, xOff, HW, beta, y, yOff, OHW);
        continue;
      }
      for (let oh0 = 0; oh0 < outH; oh0 += g.rowsPerBand) {
        const oh1 = Math.min(outH, oh0 + g.rowsPerBand);
        const width = (oh1 - oh0) * outW;
        im2col(x, xOff, Cg, args, oh0, oh1, cols);
        gemm(
          false, false, Og, width, Cg * kk, 1, w, wOff, Cg * kk, cols, 0, width, beta, y,
          yOff + oh0 * outW, OHW,
        );
      }
    }
  }
  return y;
}

export function conv2dBackwardInput(
  dy: Float32Array, w: Float32Array, args: Conv2dArgs, gemm: SgemmFn = defaultSgemm,
): Float32Array {
  const g = geometry(args, "conv2dBackwardInput");
  const { batch, inC, outC, groups, outH, outW } = args;
  const { Cg, Og, kk, HW, OHW } = g;
  expectLength("conv2dBackwardInput", "dy", dy, batch * outC * OHW, args);
  expectLength("conv2dBackwardInput", "w", w, outC * Cg * kk, args);

  const dx = new Float32Array(batch * inC * HW);
  const cols = g.pointwise ? null : new Float32Array(Cg * kk * g.rowsPerBand * outW);
  for (let n = 0; n < batch; n++) {
    for (let gi = 0; gi < groups; gi++) {
      const dxOff = (n * inC + gi * Cg) * HW;
      const dyOff = (n * outC + gi * Og) * OHW;
      const wOff = gi * Og * Cg * kk;
      if (!cols) {
        gemm(true, false, Cg, HW, Og, 1, w, wOff, Cg, dy, dyOff, OHW, 0, dx, dxOff, HW);
        continue;
      }
      for (let oh0 = 0; oh0 < outH; oh0 += g.rowsPerBand) {
        const oh1 = Math.min(outH, oh0 + g.rowsPerBand);
        const width = (oh1 - oh0) * outW;
        gemm(
          true, false, Cg * kk, width, Og, 1, w, wOff, Cg * kk, dy, dyOff + oh0 * outW, OHW, 0,
          cols, 0, width,
        );
        col2im(cols, Cg, args, oh0, oh1, dx, dxOff);
      }
    }
  }
  return dx;
}

export function conv2dBackwardWeight(
  dy: Float32Array, x: Float32Array, args: Conv2dArgs, gemm: SgemmFn = defaultSgemm,
): Float32Array {
  const g = geometry(args, "conv2dBackwardWeight");
  const { batch, inC, outC, groups, outH, outW } = args;
  const { Cg, Og, kk, HW, OHW } = g;
  expectLength("conv2dBackwardWeight", "dy", dy, batch * outC * OHW, args);
  expectLength("conv2dBackwardWeight", "x", x, batch * inC * HW, args);

  const dw = new Float32Array(outC * Cg * kk);
  const cols = g.pointwise ? null : new Float32Array(Cg * kk * g.rowsPerBand * outW);
  for (let n = 0; n < batch; n++) {
    for (let gi = 0; gi < groups; gi++) {
      const xOff = (n * inC + gi * Cg) * HW;
      const dyOff = (n * outC + gi * Og) * OHW;
      const wOff = gi * Og * Cg * kk;
      if (!cols) {
        gemm(false, true, Og, Cg, HW, 1, dy, dyOff, OHW, x, xOff, HW, 1, dw, wOff, Cg);
        continue;
      }
      for (let oh0 = 0; oh0 < outH; oh0 += g.rowsPerBand) {
        const oh1 = Math.min(outH, oh0 + g.rowsPerBand);
        const width = (oh1 - oh0) * outW;
        im2col(x, xOff, Cg, args, oh0, oh1, cols);
        gemm(
          false, true, Og, Cg * kk, width, 1, dy, dyOff + oh0 * outW, OHW, cols, 0, width, 1, dw,
          wOff, Cg * kk,
        );
      }
    }
  }
  return dw;
}
