/**
 * 2-D average and max pooling over NCHW planes, and their backward.
 *
 * Window bounds follow PyTorch's CPU kernels: a window starts at o*stride - pad, is cut
 * at the padded edge (in + pad) to give the count_include_pad divisor, then clipped to
 * the image for the sum and the count_include_pad=False divisor. Max pooling treats
 * padding as -inf, propagates NaN, and records the winning index within the plane
 * (h * inW + w, first maximum wins); an all-padding window gives -inf and index -1.
 */

import type { Pool2dArgs } from "../../backend.ts";

interface Window {
  h0: number;
  h1: number;
  w0: number;
  w1: number;
  divisor: number;
}

function windowAt(a: Pool2dArgs, oh: number, ow: number): Window {
  let h0 = oh * a.strideH - a.padH;
  let w0 = ow * a.strideW - a.padW;
  let h1 = Math.min(h0 + a.kH, a.inH + a.padH);
  let w1 = Math.min(w0 + a.kW, a.inW + a.padW);
  const padded = (h1 - h0) * (w1 - w0);
  h0 = Math.max(h0, 0);
  w0 = Math.max(w0, 0);
  h1 = Math.min(h1, a.inH);
  w1 = Math.min(w1, a.inW);
  return { h0, h1, w0, w1, divisor: a.countIncludePad ? padded : (h1 - h0) * (w1 - w0) };
}

/** The windows of one plane, computed once and reused for every plane. */
function windows(a: Pool2dArgs): Window[] {
  const out: Window[] = [];
  for (let oh = 0; oh < a.outH; oh++) {
    for (let ow = 0; ow < a.outW; ow++) out.push(windowAt(a, oh, ow));
  }
  return out;
}

export function avgPool2d(x: Float32Array, a: Pool2dArgs): Float32Array {
  const planes = a.batch * a.channels;
  const inPlane = a.inH * a.inW;
  const outPlane = a.outH * a.outW;
  const y = new Float32Array(planes * outPlane);
  const wins = windows(a);
  for (let p = 0; p < planes; p++) {
    const xb = p * inPlane;
    for (let o = 0; o < outPlane; o++) {
      const { h0, h1, w0, w1, divisor } = wins[o];
      let s = 0;
      for (let h = h0; h < h1; h++) {
        const row = xb + h * a.inW;
        for (let w = w0; w < w1; w++) s += x[row + w];
      }
      y[p * outPlane + o] = s / divisor;
    }
  }
  return y;
}

export function avgPool2dBackward(dy: Float32Array, a: Pool2dArgs): Float32Array {
  const planes = a.batch * a.channels;
  const inPlane = a.inH * a.inW;
  const outPlane = a.outH * a.outW;
  const dx = new Float32Array(planes * inPlane);
  const wins = windows(a);
  for (let p = 0; p < planes; p++) {
    const xb = p * inPlane;
    for (let o = 0; o < outPlane; o++) {
      const { h0, h1, w0, w1, divisor } = wins[o];
      const g = dy[p * outPlane + o] / divisor;
      for (let h = h0; h < h1; h++) {
        const row = xb + h * a.inW;
        for (let w = w0; w < w1; w++) dx[row + w] += g;
      }
    }
  }
  return dx;
}

export function maxPool2d(x: Float32Array, a: Pool2dArgs): { y: Float32Array; argmax: Int32Array } {
  const planes = a.batch * a.channels;
  const inPlane = a.inH * a.inW;
  const outPlane = a.outH * a.outW;
  const y = new Float32Array(planes * outPlane);
  const argmax = new Int32Array(planes * outPlane);
  const wins = windows(a);
  for (let p = 0; p < planes; p++) {
    const xb = p * inPlane;
    for (let o = 0; o < outPlane; o++) {
      const { h0, h1, w0, w1 } = wins[o];
      let best = -Infinity;
      let index = -1;
      for (let h = h0; h < h1; h++) {
        for (let w = w0; w < w1; w++) {
          const v = x[xb + h * a.inW + w];
          if (index < 0 || v > best || (v !== v && best === best)) {
            best = v;
            index = h * a.inW + w;
          }
        }
      }
      y[p * outPlane + o] = best;
      argmax[p * outPlane + o] = index;
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
