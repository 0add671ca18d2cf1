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
 * Windows are rectangles, so both pools run separably: a row pass reduces each input row
 * over every output column's window, a column pass reduces those results over each output
 * row's window: kH + kW reads per output instead of kH * kW. For max, the row pass keeps
 * each row's first maximum (or first NaN) and the column pass the first row holding the
 * strict maximum, which is the first maximum in row-major order. Sums are carried in
 * float64 as the direct loops did. The average pool's backward is a gather of the same
 * shape: input i sums the (pre-divided) gradients of the outputs whose window covers it,
 * a contiguous range along each axis. Runs of three (the 3x3 pools) are unrolled, which
 * V8 runs about 2.5x faster than the general loop.
 */

import type { Pool2dArgs } from "../../backend.ts";

/** For each index o along one axis: a range [lo[o], hi[o]) of the other side's indices. */
interface Ranges {
  lo: Int32Array;
  hi: Int32Array;
}

/**
 * Output windows along one axis, clipped to the input, with each one's divisor factor;
 * outputs [full0, full1) have all k taps inside the input (the unrolled loops' range).
 */
interface Axis extends Ranges {
  size: Float64Array;
  k: number;
  stride: number;
  full0: number;
  full1: number;
}

function axis(
  out: number,
  inLen: number,
  k: number,
  stride: number,
  pad: number,
  includePad: boolean,
): Axis {
  const lo = new Int32Array(out), hi = new Int32Array(out), size = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    const start = o * stride - pad;
    const end = Math.min(start + k, inLen + pad);
    lo[o] = Math.max(start, 0);
    hi[o] = Math.max(lo[o], Math.min(end, inLen));
    size[o] = includePad ? end - start : hi[o] - lo[o];
  }
  const full0 = Math.min(out, Math.ceil(pad / stride));
  const full1 = Math.max(full0, Math.min(out, Math.floor((inLen + pad - k) / stride) + 1));
  return { lo, hi, size, k, stride, full0, full1 };
}

/** The outputs covering each input index (windows' lo and hi never decrease with o). */
function covering(win: Ranges, inLen: number): Ranges {
  const lo = new Int32Array(inLen), hi = new Int32Array(inLen);
  let first = 0, end = 0;
  for (let i = 0; i < inLen; i++) {
    while (first < win.lo.length && win.hi[first] <= i) first++;
    if (end < first) end = first;
    while (end < win.lo.length && win.lo[end] <= i) end++;
    lo[i] = first;
    hi[i] = Math.max(first, end);
  }
  return { lo, hi };
}

function axes(a: Pool2dArgs) {
  return {
    rows: axis(a.outH, a.inH, a.kH, a.strideH, a.padH, a.countIncludePad),
    cols: axis(a.outW, a.inW, a.kW, a.strideW, a.padW, a.countIncludePad),
  };
}

/** Is o one of the windows that the unrolled loops handle (3 taps; 2 too for sums)? */
function unrolled(ax: Axis, o: number, twoTaps = false): boolean {
  return (ax.k === 3 || (twoTaps && ax.k === 2)) && o >= ax.full0 && o < ax.full1;
}

// Sums of v[start + i*step], i < n. Two copies keep each one monomorphic for V8.
function sum32(v: Float32Array, start: number, step: number, n: number): number {
  let s = 0;
  for (let i = 0, j = start; i < n; i++, j += step) s += v[j];
  return s;
}

function sum64(v: Float64Array, start: number, step: number, n: number): number {
  if (n === 3) return v[start] + v[start + step] + v[start + 2 * step];
  if (n === 2) return v[start] + v[start + step];
  if (n === 1) return v[start];
  let s = 0;
  for (let i = 0, j = start; i < n; i++, j += step) s += v[j];
  return s;
}

/** Index i < n (n >= 1) of the first maximum of v[start + i*step], or of its first NaN. */
function firstMax(v: Float32Array, start: number, step: number, n: number): number {
  let m = v[start], k = 0;
  for (let i = 1, j = start + step; i < n; i++, j += step) {
    const u = v[j];
    if (u > m || (u !== u && m === m)) {
      m = u;
      k = i;
    }
  }
  return k;
}

/** firstMax for n = 3. */
function firstMax3(v: Float32Array, start: number, step: number): number {
  const a = v[start], b = v[start + step], c = v[start + 2 * step];
  let m = a, k = 0;
  if (b > m || (b !== b && m === m)) {
    m = b;
    k = 1;
  }
  if (c > m || (c !== c && m === m)) k = 2;
  return k;
}

export function avgPool2d(x: Float32Array, a: Pool2dArgs): Float32Array {
  const { inH, inW, outH, outW } = a;
  const planes = a.batch * a.channels;
  const y = new Float32Array(planes * outH * outW);
  const { rows, cols } = axes(a);
  const rowSums = new Float64Array(inH * outW); // [h*outW + ow]: row h over ow's window
  const sW = cols.stride;
  for (let p = 0; p < planes; p++) {
    const xb = p * inH * inW, yb = p * outH * outW;
    for (let h = 0; h < inH; h++) {
      const xr = xb + h * inW, r = h * outW;
      for (let ow = 0; ow < outW; ow++) {
        if (unrolled(cols, ow, true)) {
          // The whole run of full windows, then carry on after it.
          let i = xr + cols.lo[ow];
          if (cols.k === 3) {
            for (; ow < cols.full1; ow++, i += sW) rowSums[r + ow] = x[i] + x[i + 1] + x[i + 2];
          } else {
            for (; ow < cols.full1; ow++, i += sW) rowSums[r + ow] = x[i] + x[i + 1];
          }
          if (ow === outW) break;
        }
        rowSums[r + ow] = sum32(x, xr + cols.lo[ow], 1, cols.hi[ow] - cols.lo[ow]);
      }
    }
    for (let oh = 0, o = yb; oh < outH; oh++, o += outW) {
      const h0 = rows.lo[oh], n = rows.hi[oh] - h0, size = rows.size[oh];
      if (unrolled(rows, oh, true)) {
        for (let ow = 0, i = h0 * outW; ow < outW && n === 2; ow++, i++) {
          y[o + ow] = (rowSums[i] + rowSums[i + outW]) / (size * cols.size[ow]);
        }
        for (let ow = 0, i = h0 * outW; ow < outW && n === 3; ow++, i++) {
          y[o + ow] = (rowSums[i] + rowSums[i + outW] + rowSums[i + 2 * outW]) /
            (size * cols.size[ow]);
        }
        continue;
      }
      for (let ow = 0; ow < outW; ow++) {
        y[o + ow] = sum64(rowSums, h0 * outW + ow, outW, n) / (size * cols.size[ow]);
      }
    }
  }
  return y;
}

export function avgPool2dBackward(dy: Float32Array, a: Pool2dArgs): Float32Array {
  const { inH, inW, outH, outW } = a;
  const planes = a.batch * a.channels;
  const dx = new Float32Array(planes * inH * inW);
  const { rows, cols } = axes(a);
  if (a.kH <= a.strideH && a.kW <= a.strideW) {
    disjointAvgBackward(dy, a, rows, cols, dx);
    return dx;
  }
  const rowsIn = covering(rows, inH), colsIn = covering(cols, inW);
  const g = new Float64Array(outH * outW); // dy over its divisor
  const rowSums = new Float64Array(outH * inW); // [oh*inW + w]: g row oh over w's coverers
  for (let p = 0; p < planes; p++) {
    const xb = p * inH * inW, yb = p * outH * outW;
    for (let oh = 0, o = 0; oh < outH; oh++) {
      for (let ow = 0; ow < outW; ow++, o++) {
        g[o] = dy[yb + o] / (rows.size[oh] * cols.size[ow]);
      }
    }
    for (let oh = 0, r = 0; oh < outH; oh++) {
      for (let w = 0; w < inW; w++, r++) {
        rowSums[r] = sum64(g, oh * outW + colsIn.lo[w], 1, colsIn.hi[w] - colsIn.lo[w]);
      }
    }
    for (let h = 0, i = xb; h < inH; h++) {
      const oh0 = rowsIn.lo[h], n = rowsIn.hi[h] - oh0;
      for (let w = 0; w < inW; w++, i++) dx[i] = sum64(rowSums, oh0 * inW + w, inW, n);
    }
  }
  return dx;
}

/** Windows that do not overlap (e.g. 2x2 stride 2): each input gets one share at most. */
function disjointAvgBackward(
  dy: Float32Array,
  a: Pool2dArgs,
  rows: Axis,
  cols: Axis,
  dx: Float32Array,
) {
  const { inH, inW, outH, outW } = a;
  const wLo = cols.lo, wHi = cols.hi, wSize = cols.size;
  for (let p = 0, o = 0; p < a.batch * a.channels; p++) {
    const xb = p * inH * inW;
    for (let oh = 0; oh < outH; oh++) {
      const h0 = rows.lo[oh], h1 = rows.hi[oh], size = rows.size[oh];
      for (let ow = 0; ow < outW; ow++, o++) {
        const g = dy[o] / (size * wSize[ow]);
        for (let r = xb + h0 * inW; r < xb + h1 * inW; r += inW) {
          for (let i = r + wLo[ow]; i < r + wHi[ow]; i++) dx[i] = g;
        }
      }
    }
  }
}

export function maxPool2d(x: Float32Array, a: Pool2dArgs): { y: Float32Array; argmax: Int32Array } {
  const { inH, inW, outH, outW } = a;
  const planes = a.batch * a.channels;
  const y = new Float32Array(planes * outH * outW);
  const argmax = new Int32Array(planes * outH * outW);
  const { rows, cols } = axes(a);
  // [h*outW + ow]: row h's winner over ow's window, and its plane index (-1: empty window).
  const rowBest = new Float32Array(inH * outW);
  const rowIndex = new Int32Array(inH * outW);
  const sW = cols.stride;
  for (let p = 0; p < planes; p++) {
    const xb = p * inH * inW, yb = p * outH * outW;
    for (let h = 0; h < inH; h++) {
      const xr = xb + h * inW, r = h * outW;
      for (let ow = 0; ow < outW; ow++) {
        if (unrolled(cols, ow)) {
          for (let w0 = cols.lo[ow]; ow < cols.full1; ow++, w0 += sW) {
            const w = w0 + firstMax3(x, xr + w0, 1);
            rowBest[r + ow] = x[xr + w];
            rowIndex[r + ow] = h * inW + w;
          }
          if (ow === outW) break;
        }
        const w0 = cols.lo[ow], n = cols.hi[ow] - w0;
        const w = n === 0 ? -1 : w0 + firstMax(x, xr + w0, 1, n);
        rowBest[r + ow] = n === 0 ? -Infinity : x[xr + w];
        rowIndex[r + ow] = n === 0 ? -1 : h * inW + w;
      }
    }
    for (let oh = 0, o = yb; oh < outH; oh++, o += outW) {
      const h0 = rows.lo[oh], n = rows.hi[oh] - h0;
      if (n === 0) {
        y.fill(-Infinity, o, o + outW);
        argmax.fill(-1, o, o + outW);
        continue;
      }
      const three = unrolled(rows, oh);
      for (let ow = 0, i = h0 * outW; ow < outW; ow++, i++) {
        const r = i + outW * (three ? firstMax3(rowBest, i, outW) : firstMax(rowBest, i, outW, n));
        y[o + ow] = rowBest[r];
        argmax[o + ow] = rowIndex[r];
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
