/**
 * Nearest, bilinear and bicubic resizing of (planes, H, W), as torch.nn.functional.interpolate
 * computes it on the CPU (no antialias), and the backward (the adjoint: the same taps, scattered).
 *
 * Each axis becomes a table of taps (source index, weight) per output position; the 2-D
 * result is sum_i wy_i * sum_j wx_j * x[iy_i, ix_j]. Coordinate maths mirrors PyTorch
 * for float32 tensors, rounding to float32 at the same steps (`fround`):
 *   scale = alignCorners ? (in-1)/(out-1) : the given scale (in/out, or 1/scale_factor)
 *   src   = alignCorners ? scale*dst : scale*(dst+0.5) - 0.5
 * Linear clamps src at 0 and uses taps floor(src), floor(src)+1 (the second clamped to the
 * edge); an axis whose size does not change is copied, as PyTorch does. Cubic keeps a
 * negative src and takes the 4 taps floor(src)-1 .. floor(src)+2 clamped to the border,
 * with Keys' kernel of coefficient A. Nearest (legacy "nearest") takes
 * min(floor(dst*scale), in-1), with PyTorch's shortcuts for equal and doubled sizes.
 */

import { type ResizeArgs, ShapeError } from "../../backend.ts";

const f = Math.fround;

interface AxisTaps {
  taps: number;
  /** index[o*taps + k] and weight[o*taps + k]: tap k of output position o. */
  index: Int32Array;
  weight: Float64Array;
}

function linearScale(inSize: number, outSize: number, alignCorners: boolean, scale: number) {
  if (alignCorners) return outSize > 1 ? f((inSize - 1) / (outSize - 1)) : 0;
  return f(scale);
}

function sourceCoordinate(scale: number, dst: number, alignCorners: boolean): number {
  return alignCorners ? f(scale * dst) : f(f(scale * f(dst + 0.5)) - 0.5);
}

function nearestTaps(inSize: number, outSize: number, scale: number): AxisTaps {
  const index = new Int32Array(outSize);
  const s = f(scale);
  for (let o = 0; o < outSize; o++) {
    if (outSize === inSize) index[o] = o;
    else if (outSize === 2 * inSize) index[o] = o >> 1;
    else index[o] = Math.min(Math.floor(f(o * s)), inSize - 1);
  }
  return { taps: 1, index, weight: new Float64Array(outSize).fill(1) };
}

function linearTaps(
  inSize: number,
  outSize: number,
  alignCorners: boolean,
  scale: number,
): AxisTaps {
  const index = new Int32Array(outSize * 2);
  const weight = new Float64Array(outSize * 2);
  const ratio = linearScale(inSize, outSize, alignCorners, scale);
  for (let o = 0; o < outSize; o++) {
    if (outSize === inSize) {
      index[2 * o] = index[2 * o + 1] = o;
      weight[2 * o] = 1;
      continue;
    }
    const src = Math.max(sourceCoordinate(ratio, o, alignCorners), 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const lambda1 = f(Math.min(Math.max(f(src - i0), 0), 1));
    index[2 * o] = i0;
    index[2 * o + 1] = i0 < inSize - 1 ? i0 + 1 : i0;
    weight[2 * o] = f(1 - lambda1);
    weight[2 * o + 1] = lambda1;
  }
  return { taps: 2, index, weight };
}

/** Keys' cubic convolution kernel for |x| <= 1 and 1 < |x| < 2. */
function cubicNear(x: number, A: number): number {
  return ((A + 2) * x - (A + 3)) * x * x + 1;
}
function cubicFar(x: number, A: number): number {
  return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
}

function cubicTaps(
  inSize: number,
  outSize: number,
  alignCorners: boolean,
  scale: number,
  A: number,
): AxisTaps {
  const index = new Int32Array(outSize * 4);
  const weight = new Float64Array(outSize * 4);
  const ratio = linearScale(inSize, outSize, alignCorners, scale);
  for (let o = 0; o < outSize; o++) {
    const src = sourceCoordinate(ratio, o, alignCorners);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const t = Math.min(Math.max(f(src - i0), 0), 1);
    const w = [cubicFar(t + 1, A), cubicNear(t, A), cubicNear(1 - t, A), cubicFar(2 - t, A)];
    for (let k = 0; k < 4; k++) {
      index[4 * o + k] = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
      weight[4 * o + k] = f(w[k]);
    }
  }
  return { taps: 4, index, weight };
}

function axisTaps(a: ResizeArgs, inSize: number, outSize: number, scale: number): AxisTaps {
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

export function resize(x: Float32Array, a: ResizeArgs): Float32Array {
  const [th, tw] = tapsOf(a);
  const inPlane = a.inH * a.inW;
  const outPlane = a.outH * a.outW;
  const y = new Float32Array(a.planes * outPlane);
  const TH = th.taps;
  const TW = tw.taps;
  for (let p = 0; p < a.planes; p++) {
    const xb = p * inPlane;
    for (let oh = 0; oh < a.outH; oh++) {
      for (let ow = 0; ow < a.outW; ow++) {
        let acc = 0;
        for (let i = 0; i < TH; i++) {
          const row = xb + th.index[oh * TH + i] * a.inW;
          let inner = 0;
          for (let j = 0; j < TW; j++) {
            inner += tw.weight[ow * TW + j] * x[row + tw.index[ow * TW + j]];
          }
          acc += th.weight[oh * TH + i] * inner;
        }
        y[p * outPlane + oh * a.outW + ow] = acc;
      }
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
