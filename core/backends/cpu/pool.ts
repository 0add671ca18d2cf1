/**
 * 2-D average and max pooling over NCHW planes, and their backward.
 *
 * Window bounds follow PyTorch's CPU kernels: a window starts at o*stride - pad, is cut
 * at the padded edge (in + pad) to give the count_include_pad divisor, then clipped to
 * the image for the sum and the count_include_pad=False divisor. Max pooling treats
 * padding as -inf, propagates NaN, and records the winning index within the plane
 * (h * inW + w, first maximum in row-major order wins); an all-padding window gives -inf
 * and index -1.
 *
 * Windows are rectangles, so both pools run separably: one pass reduces each input row
 * over every output column's width window, a second reduces those row results over the
 * height windows (kH + kW steps per output instead of kH * kW). Both passes loop tap by
 * tap over contiguous runs, without branches. Sums are carried in float64 as a direct
 * loop would. Max takes the value with Math.max, then finds the first row, and in it the
 * first column, holding that value (or a NaN): the first maximum in row-major order.
 */

import type { Pool2dArgs } from "../../backend.ts";

/** Along one axis: each output's clipped window and divisor factor, each tap's outputs. */
interface Axis {
  /** Output o covers inputs [lo[o], hi[o]); size[o] is its share of the divisor. */
  lo: Int32Array;
  hi: Int32Array;
  size: Float64Array;
  /** Tap t (input o*stride - pad + t) is inside the image for o in [tapLo[t], tapHi[t]). */
  tapLo: Int32Array;
  tapHi: Int32Array;
  stride: number;
  pad: number;
}

function axis(
  out: number, inLen: number, k: number, stride: number, pad: number, includePad: boolean,
): Axis {
  const lo = new Int32Array(out), hi = new Int32Array(out), size = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    const start = o * stride - pad;
    const end = Math.min(start + k, inLen + pad);
    lo[o] = Math.max(start, 0);
    hi[o] = Math.max(lo[o], Math.min(end, inLen));
    size[o] = includePad ? end - start : hi[o] - lo[o];
  }
  const tapLo = new Int32Array(k), tapHi = new Int32Array(k);
  for (let t = 0; t < k; t++) {
    tapLo[t] = Math.min(out, Math.max(0, Math.ceil((pad - t) / stride)));
    tapHi[t] = Math.max(tapLo[t], Math.min(out, Math.floor((inLen - 1 + pad - t) / stride) + 1));
  }
  return { lo, hi, size, tapLo, tapHi, stride, pad };
}

function axes(a: Pool2dArgs) {
  return {
    rows: axis(a.outH, a.inH, a.kH, a.strideH, a.padH, a.countIncludePad),
    cols: axis(a.outW, a.inW, a.kW, a.strideW, a.padW, a.countIncludePad),
  };
}

/** out[o] = sum of x[xr + o*s - pad + t] over the taps t inside the row. */
function rowSums(x: Float32Array, xr: number, c: Axis, out: Float64Array, o0: number, n: number) {
  out.fill(0, o0, o0 + n);
  const s = c.stride;
  for (let t = 0; t < c.tapLo.length; t++) {
    for (let o = c.tapLo[t], i = xr + o * s - c.pad + t; o < c.tapHi[t]; o++, i += s) {
      out[o0 + o] += x[i];
    }
  }
}

export function avgPool2d(x: Float32Array, a: Pool2dArgs): Float32Array {
  const { inH, inW, outH, outW } = a;
  const planes = a.batch * a.channels;
  const y = new Float32Array(planes * outH * outW);
  const { rows, cols } = axes(a);
  const sums = new Float64Array(inH * outW); // sums[h*outW + ow]: row h over ow's window
  const acc = new Float64Array(outW);
  for (let p = 0; p < planes; p++) {
    const xb = p * inH * inW, yb = p * outH * outW;
    for (let h = 0; h < inH; h++) rowSums(x, xb + h * inW, cols, sums, h * outW, outW);
    for (let oh = 0; oh < outH; oh++) {
      acc.fill(0);
      for (let h = rows.lo[oh]; h < rows.hi[oh]; h++) {
        for (let ow = 0, i = h * outW; ow < outW; ow++, i++) acc[ow] += sums[i];
      }
      const rowSize = rows.size[oh], yr = yb + oh * outW;
      for (let ow = 0; ow < outW; ow++) y[yr + ow] = acc[ow] / (rowSize * cols.size[ow]);
    }
  }
  return y;
}

export function avgPool2dBackward(dy: Float32Array, a: Pool2dArgs): Float32Array {
  const { inH, inW, outH, outW } = a;
  const planes = a.batch * a.channels;
  const dx = new Float32Array(planes * inH * inW);
  const { rows, cols } = axes(a);
  // grads[h*outW + ow]: what row h receives through output column ow, summed over oh.
  const grads = new Float64Array(inH * outW);
  const g = new Float64Array(outW);
  const dxRow = new Float64Array(inW);
  const s = cols.stride;
  for (let p = 0; p < planes; p++) {
    const xb = p * inH * inW, yb = p * outH * outW;
    grads.fill(0);
    for (let oh = 0; oh < outH; oh++) {
      const rowSize = rows.size[oh], yr = yb + oh * outW;
      for (let ow = 0; ow < outW; ow++) g[ow] = dy[yr + ow] / (rowSize * cols.size[ow]);
      for (let h = rows.lo[oh]; h < rows.hi[oh]; h++) {
        for (let ow = 0, i = h * outW; ow < outW; ow++, i++) grads[i] += g[ow];
      }
    }
    for (let h = 0; h < inH; h++) {
      dxRow.fill(0);
      const gr = h * outW;
      for (let t = 0; t < cols.tapLo.length; t++) {
        for (let o = cols.tapLo[t], w = o * s - cols.pad + t; o < cols.tapHi[t]; o++, w += s) {
          dxRow[w] += grads[gr + o];
        }
      }
      const xr = xb + h * inW;
      for (let w = 0; w < inW; w++) dx[xr + w] = dxRow[w];
    }
  }
  return dx;
}

/** out[o] = max of x[xr + o*s - pad + t] over the taps inside the row (NaN if any is). */
function rowMaxes(x: Float32Array, xr: number, c: Axis, out: Float32Array, o0: number, n: number) {
  out.fill(-Infinity, o0, o0 + n);
  const s = c.stride;
  for (let t = 0; t < c.tapLo.length; t++) {
    for (let o = c.tapLo[t], i = xr + o * s - c.pad + t; o < c.tapHi[t]; o++, i += s) {
      out[o0 + o] = Math.max(out[o0 + o], x[i]);
    }
  }
}

/** v is the maximum m found by Math.max (a NaN maximum matches any NaN). */
function matches(v: number, m: number): boolean {
  return v === m || (v !== v && m !== m);
}

export function maxPool2d(x: Float32Array, a: Pool2dArgs): { y: Float32Array; argmax: Int32Array } {
  const { inH, inW, outH, outW } = a;
  const planes = a.batch * a.channels;
  const y = new Float32Array(planes * outH * outW);
  const argmax = new Int32Array(planes * outH * outW);
  const { rows, cols } = axes(a);
  const maxes = new Float32Array(inH * outW); // maxes[h*outW + ow]: row h over ow's window
  const best = new Float32Array(outW);
  for (let p = 0; p < planes; p++) {
    const xb = p * inH * inW, yb = p * outH * outW;
    for (let h = 0; h < inH; h++) rowMaxes(x, xb + h * inW, cols, maxes, h * outW, outW);
    for (let oh = 0; oh < outH; oh++) {
      const h0 = rows.lo[oh], h1 = rows.hi[oh], yr = yb + oh * outW;
      best.fill(-Infinity);
      for (let h = h0; h < h1; h++) {
        for (let ow = 0, i = h * outW; ow < outW; ow++, i++) best[ow] = Math.max(best[ow], maxes[i]);
      }
      for (let ow = 0; ow < outW; ow++) {
        const w0 = cols.lo[ow], w1 = cols.hi[ow];
        if (h0 === h1 || w0 === w1) {
          y[yr + ow] = -Infinity;
          argmax[yr + ow] = -1;
          continue;
        }
        const m = best[ow];
        let h = h0;
        while (h < h1 - 1 && !matches(maxes[h * outW + ow], m)) h++;
        let w = w0;
        const xr = xb + h * inW;
        while (w < w1 - 1 && !matches(x[xr + w], m)) w++;
        y[yr + ow] = x[xr + w];
        argmax[yr + ow] = h * inW + w;
      }
    }
  }
  return { y, argmax };
}

export function maxPool2dBackward(
  dy: Float32Array,
  argmax: Int32Array,
  a: Pool2dArgs,
): Float32Array {
  const planes = a.batch * a.channels;
  const inPlane = a.inH * a.inW;
  const outPlane = a.outH * a.outW;
  const dx = new Float32Array(planes * inPlane);
  for (let p = 0; p < planes; p++) {
    for (let o = 0; o < outPlane; o++) {
      const i = argmax[p * outPlane + o];
      if (i >= 0) dx[p * inPlane + i] += dy[p * outPlane + o];
    }
  }
  return dx;
}
