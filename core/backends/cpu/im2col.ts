/**
 * im2col and its adjoint col2im for the CPU convolution (conv.ts).
 *
 * For one image and one channel group, over output rows [oh0, oh1), the column matrix has
 * Cg*kH*kW rows of (oh1-oh0)*outW values:
 *
 *   cols[(c*kH + ki)*kW + kj][(oh-oh0)*outW + ow] = x[c, oh*sH - pH + ki, ow*sW - pW + kj]
 *
 * (zero where that falls in the padding). Rows are `ldc` apart from `colOff`, so several
 * images can sit side by side in one buffer and share one GEMM.
 *
 * A stride-1 "same width" convolution (outW === inW, as for 3x3 pad 1 or 1x7 pad (0,3))
 * has a fast path: a band of output rows reads a band of input rows that is contiguous in
 * x, only shifted by kj - pW, so each column row is one block copy plus zeroing the few
 * columns that wrapped across an image edge.
 */

import type { Conv2dArgs } from "../../backend.ts";

/** First output index o whose input index o*s - pad + k is >= 0, within [lo, hi]. */
function firstInside(k: number, pad: number, s: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, Math.ceil((pad - k) / s)));
}

/** One past the last output index o whose input index o*s - pad + k is < inLen, >= lo. */
function endInside(k: number, pad: number, s: number, inLen: number, lo: number, hi: number) {
  return Math.max(lo, Math.min(hi, Math.floor((inLen - 1 + pad - k) / s) + 1));
}

function isSameWidth(a: Conv2dArgs): boolean {
  return a.strideH === 1 && a.strideW === 1 && a.outW === a.inW;
}

/** Rows shorter than this copy element by element; longer ones use TypedArray.set. */
const SET_MIN = 48;

export function im2col(
  x: Float32Array,
  xOff: number,
  Cg: number,
  a: Conv2dArgs,
  oh0: number,
  oh1: number,
  cols: Float32Array,
  colOff: number,
  ldc: number,
): void {
  const { inH, inW, kH, kW, strideH, strideW, padH, padW, outW } = a;
  const plane = inH * inW;
  const sameWidth = isSameWidth(a);
  let row = colOff;
  for (let c = 0; c < Cg; c++) {
    const xc = xOff + c * plane;
    for (let ki = 0; ki < kH; ki++) {
      // Output rows of the band whose input row is inside the image; the rest are zero.
      const ohLo = firstInside(ki, padH, strideH, oh0, oh1);
      const ohHi = endInside(ki, padH, strideH, inH, ohLo, oh1);
      for (let kj = 0; kj < kW; kj++, row += ldc) {
        const top = row + (ohLo - oh0) * outW, bottom = row + (ohHi - oh0) * outW;
        if (top > row) cols.fill(0, row, top);
        if (bottom < row + (oh1 - oh0) * outW) cols.fill(0, bottom, row + (oh1 - oh0) * outW);
        if (ohLo === ohHi) continue;
        const ih0 = ohLo * strideH - padH + ki;
        if (sameWidth) {
          const shift = kj - padW;
          const src = xc + ih0 * inW + shift, len = bottom - top;
          // Reads past the plane's ends only land in wrapped columns, zeroed below.
          const s0 = Math.max(src, xc), s1 = Math.min(src + len, xc + plane);
          cols.set(x.subarray(s0, s1), top + s0 - src);
          zeroWrapped(cols, top, ohHi - ohLo, outW, shift);
          continue;
        }
        const owLo = firstInside(kj, padW, strideW, 0, outW);
        const owHi = endInside(kj, padW, strideW, inW, owLo, outW);
        let src = xc + ih0 * inW - padW + kj;
        for (let o = top; o < bottom; o += outW, src += strideH * inW) {
          for (let j = o; j < o + owLo; j++) cols[j] = 0;
          if (strideW === 1) {
            if (owHi - owLo >= SET_MIN) cols.set(x.subarray(src + owLo, src + owHi), o + owLo);
            else for (let j = owLo; j < owHi; j++) cols[o + j] = x[src + j];
          } else {
            for (let j = owLo, s = src + owLo * strideW; j < owHi; j++, s += strideW) {
              cols[o + j] = x[s];
            }
          }
          for (let j = o + owHi; j < o + outW; j++) cols[j] = 0;
        }
      }
    }
  }
}

/** Zeroes, in each of `rows` rows of width w from `start`, the |shift| columns that wrapped. */
function zeroWrapped(cols: Float32Array, start: number, rows: number, w: number, shift: number) {
  if (shift === 0) return;
  // A shift as wide as the row (a 5x5 kernel on a 1-wide image) wraps all of it.
  const from = shift < 0 ? 0 : Math.max(0, w - shift), to = shift < 0 ? Math.min(w, -shift) : w;
  for (let r = 0, o = start; r < rows; r++, o += w) {
    for (let j = o + from; j < o + to; j++) cols[j] = 0;
  }
}

/**
 * Adjoint of im2col: dx[c, ih, iw] += cols[...] for output rows [oh0, oh1). The fast path
 * zeroes the wrapped columns of `cols` first (cols is scratch to the caller).
 */
export function col2im(
  cols: Float32Array,
  colOff: number,
  ldc: number,
  Cg: number,
  a: Conv2dArgs,
  oh0: number,
  oh1: number,
  dx: Float32Array,
  dxOff: number,
): void {
  const { inH, inW, kH, kW, strideH, strideW, padH, padW, outW } = a;
  const plane = inH * inW;
  const sameWidth = isSameWidth(a);
  let row = colOff;
  for (let c = 0; c < Cg; c++) {
    const dc = dxOff + c * plane;
    for (let ki = 0; ki < kH; ki++, row += kW * ldc) {
      const ohLo = firstInside(ki, padH, strideH, oh0, oh1);
      const ohHi = endInside(ki, padH, strideH, inH, ohLo, oh1);
      if (ohLo === ohHi) continue;
      const top = (ohLo - oh0) * outW, len = (ohHi - ohLo) * outW;
      const ih0 = ohLo * strideH - padH + ki;
      if (sameWidth && kW === 3) {
        addThreeTaps(cols, row + top, ldc, len, outW, dx, dc + ih0 * inW, dc, dc + plane);
        continue;
      }
      for (let kj = 0; kj < kW; kj++) {
        const r = row + kj * ldc + top;
        if (sameWidth) {
          const shift = kj - padW;
          const dst = dc + ih0 * inW + shift;
          zeroWrapped(cols, r, ohHi - ohLo, outW, shift);
          const d0 = Math.max(dst, dc), d1 = Math.min(dst + len, dc + plane);
          for (let d = d0, s = r + d0 - dst; d < d1; d++, s++) dx[d] += cols[s];
          continue;
        }
        const owLo = firstInside(kj, padW, strideW, 0, outW);
        const owHi = endInside(kj, padW, strideW, inW, owLo, outW);
        let dst = dc + ih0 * inW - padW + kj;
        for (let o = r; o < r + len; o += outW, dst += strideH * inW) {
          for (let j = owLo, d = dst + owLo * strideW; j < owHi; j++, d += strideW) {
            dx[d] += cols[o + j];
          }
        }
      }
    }
  }
}

/**
 * The three kj taps of a stride-1, pad-1, width-3 kernel in one pass over dx: block
 * element q of tap kj lands on dx[base + q + kj - 1]. Wrapped columns are zeroed first,
 * so only the block's two end elements need the per-tap bounds.
 */
function addThreeTaps(
  cols: Float32Array,
  r0: number,
  ldc: number,
  len: number,
  w: number,
  dx: Float32Array,
  base: number,
  planeLo: number,
  planeHi: number,
) {
  const r1 = r0 + ldc, r2 = r1 + ldc;
  zeroWrapped(cols, r0, len / w, w, -1);
  zeroWrapped(cols, r2, len / w, w, 1);
  // dx[base + m] gets cols0[m + 1] + cols1[m] + cols2[m - 1], each where 0 <= index < len.
  for (let m = 1; m < len - 1; m++) {
    dx[base + m] += cols[r0 + m + 1] + cols[r1 + m] + cols[r2 + m - 1];
  }
  for (const m of len > 1 ? [-1, 0, len - 1, len] : [-1, 0, 1]) {
    const d = base + m;
    if (d < planeLo || d >= planeHi) continue;
    let v = 0;
    if (m + 1 >= 0 && m + 1 < len) v += cols[r0 + m + 1];
    if (m >= 0 && m < len) v += cols[r1 + m];
    if (m - 1 >= 0 && m - 1 < len) v += cols[r2 + m - 1];
    dx[d] += v;
  }
}
