/**
 * Nearest, bilinear and bicubic resizing of (planes, H, W), as torch.nn.functional.interpolate
 * computes it on the CPU (no antialias), and the backward (the adjoint: the same taps, scattered).
 * This is the one implementation of torch's resize arithmetic in the tree: the host helper
 * core/image/interpolate_torch.ts calls `resize` directly.
 *
 * Each axis becomes a table of taps (source index, float32 weight) per output position; the
 * 2-D result is sum_i wy_i * (sum_j wx_j * x[iy_i, ix_j]). The arithmetic follows torch
 * 1.13's float32 CPU kernel step by step and reproduced its outputs bit for bit in all 40
 * bilinear and bicubic cases we measured (sizes 5..520, up and down, scale factors, both
 * align_corners), except one-channel bilinear inputs, which torch sends through its
 * channels-last kernel (another summation order, 1 ulp apart):
 *   scale = float32(alignCorners ? (in-1)/(out-1) : the given scale (in/out, or 1/scale_factor))
 *   src   = alignCorners ? scale*dst : scale*(dst+0.5) - 0.5, in double (ATen's 0.5 is a double)
 * Linear clamps src at 0, takes taps floor(src) and floor(src)+1 (the second clamped to the
 * edge) with lambda = float32(src - floor(src)) clamped to [0, 1]; an axis whose size does
 * not change is copied. Cubic takes i0 = floor(float32(src)) (ATen's floorf), keeps a
 * negative src and an unclamped t = float32(src - i0), and the 4 taps i0-1 .. i0+2 clamped
 * to the border, with Keys' kernel of coefficient A evaluated in float32 with the fused
 * multiply-adds of torch's compiled kernel. Nearest (legacy "nearest") takes
 * min(floor(dst*scale), in-1), with PyTorch's shortcuts for equal and doubled sizes.
 */

import { type ResizeArgs, ShapeError } from "../../backend.ts";
import { outputF32 } from "./storage.ts";

const f = Math.fround;

/**
 * A float32 fused multiply-add: a*b of two floats is exact in a double, so only the sum
 * rounds (to double, then to float32: the same as once, barring an exact tie).
 */
const fma = (a: number, b: number, c: number) => f(a * b + c);

export interface AxisTaps {
  taps: number;
  /** index[o*taps + k] and weight[o*taps + k]: tap k of output position o. */
  index: Int32Array;
  weight: Float32Array;
}

function coordinateScale(inSize: number, outSize: number, alignCorners: boolean, scale: number) {
  if (alignCorners) return outSize > 1 ? f((inSize - 1) / (outSize - 1)) : 0;
  return f(scale);
}

/** The (unrounded) source position of output index dst. */
function sourceCoordinate(scale: number, dst: number, alignCorners: boolean): number {
  return alignCorners ? scale * dst : scale * (dst + 0.5) - 0.5;
}

function nearestTaps(inSize: number, outSize: number, scale: number): AxisTaps {
  const index = new Int32Array(outSize);
  const s = f(scale);
  for (let o = 0; o < outSize; o++) {
    if (outSize === inSize) index[o] = o;
    else if (outSize === 2 * inSize) index[o] = o >> 1;
    else index[o] = Math.min(Math.floor(f(o * s)), inSize - 1);
  }
  return { taps: 1, index, weight: new Float32Array(outSize).fill(1) };
}

function linearTaps(
  inSize: number,
  outSize: number,
  alignCorners: boolean,
  scale: number,
): AxisTaps {
  const index = new Int32Array(outSize * 2);
  const weight = new Float32Array(outSize * 2);
  const ratio = coordinateScale(inSize, outSize, alignCorners, scale);
  for (let o = 0; o < outSize; o++) {
    if (outSize === inSize) {
      index[2 * o] = index[2 * o + 1] = o;
      weight[2 * o] = 1;
      continue;
    }
    const src = Math.max(sourceCoordinate(ratio, o, alignCorners), 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const lambda1 = f(Math.min(Math.max(src - i0, 0), 1));
    index[2 * o] = i0;
    index[2 * o + 1] = i0 < inSize - 1 ? i0 + 1 : i0;
    weight[2 * o] = f(1 - lambda1);
    weight[2 * o + 1] = lambda1;
  }
  return { taps: 2, index, weight };
}

/**
 * The 4 Keys weights for offset t (ATen's get_cubic_upsample_coefficients) in float32, with
 * the multiply-adds fused where torch's compiled kernel fuses them (found by matching its
 * weights bit for bit): near(x) = ((A+2)x - (A+3)) x x + 1 for |x| <= 1, far(x) =
 * ((Ax - 5A) x + 8A) x - 4A for 1 < |x| < 2.
 */
function cubicWeights(t: number, a: number, out: Float32Array, o: number): void {
  const A = f(a);
  const [a2, a3, a5, a8, a4] = [f(A + 2), f(A + 3), f(5 * A), f(8 * A), f(4 * A)];
  const near = (x: number) => f(f(f(fma(a2, x, -a3) * x) * x) + 1);
  const far = (x: number) => f(f(fma(fma(A, x, -a5), x, a8) * x) - a4);
  const t2 = f(1 - t);
  out[o] = far(f(t + 1));
  out[o + 1] = near(t);
  out[o + 2] = near(t2);
  out[o + 3] = far(f(t2 + 1));
}

function cubicTaps(
  inSize: number,
  outSize: number,
  alignCorners: boolean,
  scale: number,
  A: number,
): AxisTaps {
  const index = new Int32Array(outSize * 4);
  const weight = new Float32Array(outSize * 4);
  const ratio = coordinateScale(inSize, outSize, alignCorners, scale);
  for (let o = 0; o < outSize; o++) {
    const src = sourceCoordinate(ratio, o, alignCorners);
    const i0 = Math.min(Math.floor(f(src)), inSize - 1);
    cubicWeights(f(src - i0), A, weight, 4 * o);
    for (let k = 0; k < 4; k++) {
      index[4 * o + k] = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
    }
  }
  return { taps: 4, index, weight };
}

/** The taps of one axis (also what the WebGPU backend should upload, so both agree). */
export function axisTaps(a: ResizeArgs, inSize: number, outSize: number, scale: number): AxisTaps {
  switch (a.mode) {
    case "nearest":
      return nearestTaps(inSize, outSize, scale);
    case "bilinear":
      return linearTaps(inSize, outSize, a.alignCorners, scale);
    case "bicubic":
      return cubicTaps(inSize, outSize, a.alignCorners, scale, a.cubicA);
    default:
      throw new ShapeError("resize", `unknown mode "${a.mode}"`);
  }
}

function tapsOf(a: ResizeArgs): [AxisTaps, AxisTaps] {
  for (const [k, v] of Object.entries({ inH: a.inH, inW: a.inW, outH: a.outH, outW: a.outW })) {
    if (!Number.isInteger(v) || v < 1) {
      throw new ShapeError("resize", `${k} must be a positive integer, got ${v}`);
    }
  }
  return [axisTaps(a, a.inH, a.outH, a.scaleH), axisTaps(a, a.inW, a.outW, a.scaleW)];
}

/**
 * sum_k values[k] * weight[w + k] in float32, rounded as torch's compiled kernel rounds it:
 * v0*w0 + v1*w1 becomes fma(v0, w0, round(v1*w1)), and each further term fma(v_k, w_k, sum).
 */
function weightedSum(values: Float64Array, weight: Float32Array, w: number, n: number): number {
  if (n === 1) return f(values[0] * weight[w]);
  let sum = fma(values[0], weight[w], f(values[1] * weight[w + 1]));
  for (let k = 2; k < n; k++) sum = fma(values[k], weight[w + k], sum);
  return sum;
}

export function resize(x: Float32Array, a: ResizeArgs): Float32Array {
  const [th, tw] = tapsOf(a);
  const inPlane = a.inH * a.inW;
  const outPlane = a.outH * a.outW;
  const y = outputF32(a.planes * outPlane);
  const TH = th.taps;
  const TW = tw.taps;
  if (TH === 1 && TW === 1 && a.mode === "nearest") {
    return gatherNearest(x, y, a, th.index, tw.index);
  }
  const taps = new Float64Array(TW);
  const rows = new Float64Array(TH);
  for (let p = 0; p < a.planes; p++) {
    const xb = p * inPlane;
    for (let oh = 0; oh < a.outH; oh++) {
      for (let ow = 0; ow < a.outW; ow++) {
        // Along W on each of the TH source rows, then along H (ATen's loop nest).
        for (let i = 0; i < TH; i++) {
          const row = xb + th.index[oh * TH + i] * a.inW;
          for (let j = 0; j < TW; j++) taps[j] = x[row + tw.index[ow * TW + j]];
          rows[i] = weightedSum(taps, tw.weight, ow * TW, TW);
        }
        y[p * outPlane + oh * a.outW + ow] = weightedSum(rows, th.weight, oh * TH, TH);
      }
    }
  }
  return y;
}

/** Nearest: one tap of weight 1 per axis, so the result is a plain gather (a VQGAN's upsampling). */
function gatherNearest(
  x: Float32Array,
  y: Float32Array,
  a: ResizeArgs,
  rows: Int32Array,
  cols: Int32Array,
): Float32Array {
  const inPlane = a.inH * a.inW, outPlane = a.outH * a.outW;
  for (let p = 0; p < a.planes; p++) {
    for (let oh = 0; oh < a.outH; oh++) {
      const src = p * inPlane + rows[oh] * a.inW;
      const dst = p * outPlane + oh * a.outW;
      for (let ow = 0; ow < a.outW; ow++) y[dst + ow] = x[src + cols[ow]];
    }
  }
  return y;
}

export function resizeBackward(dy: Float32Array, a: ResizeArgs): Float32Array {
  const [th, tw] = tapsOf(a);
  const inPlane = a.inH * a.inW;
  const outPlane = a.outH * a.outW;
  // Scatter into float64 planes so the many overlapping taps do not round at each add.
  const acc = new Float64Array(inPlane);
  const dx = new Float32Array(a.planes * inPlane);
  const TH = th.taps;
  const TW = tw.taps;
  for (let p = 0; p < a.planes; p++) {
    acc.fill(0);
    for (let oh = 0; oh < a.outH; oh++) {
      for (let ow = 0; ow < a.outW; ow++) {
        const g = dy[p * outPlane + oh * a.outW + ow];
        if (g === 0) continue;
        for (let i = 0; i < TH; i++) {
          const gi = g * th.weight[oh * TH + i];
          const row = th.index[oh * TH + i] * a.inW;
          for (let j = 0; j < TW; j++) {
            acc[row + tw.index[ow * TW + j]] += gi * tw.weight[ow * TW + j];
          }
        }
      }
    }
    dx.set(acc, p * inPlane);
  }
  return dx;
}
