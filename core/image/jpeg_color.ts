/**
 * From decoded component planes to RGB, the way libjpeg-turbo's defaults and PIL do it:
 *  - chroma upsampling with libjpeg's "fancy" triangle filters (jdsample.c: h2v1, h1v2,
 *    h2v2 with their asymmetric rounding biases; edge rows/columns replicated), plain
 *    replication for other ratios or when a plane is at most 2 samples wide;
 *  - YCbCr -> RGB with jdcolor.c's 16-bit fixed-point tables;
 *  - 4-component files: YCCK -> CMYK as libjpeg does, then PIL's view of them (it always
 *    assumes Adobe-inverted CMYK) and PIL's CMYK -> RGB: R = k - k*c/255 (rounded).
 */

export interface Plane {
  /** Samples with row stride `stride`; rows/cols beyond the downsampled size are padding. */
  data: Uint8Array;
  stride: number;
  /** Downsampled size (libjpeg's downsampled_width/height). */
  width: number;
  height: number;
  /** Upsampling ratios to full resolution (maxH/h, maxV/v). */
  hs: number;
  vs: number;
}

/** Upsample `p` to a width*height full-resolution plane. */
export function upsample(p: Plane, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const { data, stride, hs, vs } = p;
  const dw = p.width;
  const dh = p.height;
  const row = (y: number) => Math.min(Math.max(y, 0), dh - 1) * stride;

  if (hs === 1 && vs === 1) {
    for (let y = 0; y < height; y++) {
      out.set(data.subarray(y * stride, y * stride + width), y * width);
    }
  } else if (hs === 2 && vs === 1 && dw > 2) {
    const line = new Uint8Array(2 * dw);
    for (let y = 0; y < height; y++) {
      fancyH2(data, y * stride, dw, line);
      out.set(line.subarray(0, width), y * width);
    }
  } else if (hs === 1 && vs === 2) {
    for (let y = 0; y < height; y++) {
      const near = row(y >> 1);
      const far = (y & 1) === 0 ? row((y >> 1) - 1) : row((y >> 1) + 1);
      const bias = (y & 1) === 0 ? 1 : 2;
      for (let x = 0; x < width; x++) {
        out[y * width + x] = (3 * data[near + x] + data[far + x] + bias) >> 2;
      }
    }
  } else if (hs === 2 && vs === 2 && dw > 2) {
    const sums = new Int32Array(dw);
    const line = new Uint8Array(2 * dw);
    for (let y = 0; y < height; y++) {
      const near = row(y >> 1);
      const far = (y & 1) === 0 ? row((y >> 1) - 1) : row((y >> 1) + 1);
      for (let x = 0; x < dw; x++) sums[x] = 3 * data[near + x] + data[far + x];
      fancyH2V2(sums, dw, line);
      out.set(line.subarray(0, width), y * width);
    }
  } else {
    // Integer replication (libjpeg's h2v1/h2v2_upsample and int_upsample).
    for (let y = 0; y < height; y++) {
      const src = Math.floor(y / vs) * stride;
      for (let x = 0; x < width; x++) out[y * width + x] = data[src + Math.floor(x / hs)];
    }
  }
  return out;
}

/** Horizontal 2x triangle filter: 3/4 nearer + 1/4 further, biases 1 and 2 alternating. */
function fancyH2(data: Uint8Array, start: number, dw: number, out: Uint8Array): void {
  let v = data[start];
  out[0] = v;
  out[1] = (v * 3 + data[start + 1] + 2) >> 2;
  for (let x = 1; x < dw - 1; x++) {
    v = data[start + x] * 3;
    out[2 * x] = (v + data[start + x - 1] + 1) >> 2;
    out[2 * x + 1] = (v + data[start + x + 1] + 2) >> 2;
  }
  v = data[start + dw - 1];
  out[2 * dw - 2] = (v * 3 + data[start + dw - 2] + 1) >> 2;
  out[2 * dw - 1] = v;
}

/** Horizontal pass of h2v2 on vertical sums (3*near + far), biases 8 and 7. */
function fancyH2V2(sums: Int32Array, dw: number, out: Uint8Array): void {
  out[0] = (sums[0] * 4 + 8) >> 4;
  out[1] = (sums[0] * 3 + sums[1] + 7) >> 4;
  for (let x = 1; x < dw - 1; x++) {
    out[2 * x] = (sums[x] * 3 + sums[x - 1] + 8) >> 4;
    out[2 * x + 1] = (sums[x] * 3 + sums[x + 1] + 7) >> 4;
  }
  out[2 * dw - 2] = (sums[dw - 1] * 3 + sums[dw - 2] + 8) >> 4;
  out[2 * dw - 1] = (sums[dw - 1] * 4 + 7) >> 4;
}

// jdcolor.c build_ycc_rgb_table: SCALEBITS = 16, FIX(x) = round(x * 2^16).
const ONE_HALF = 1 << 15;
const CR_R = new Int32Array(256);
const CB_B = new Int32Array(256);
const CR_G = new Int32Array(256);
const CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (Math.floor(1.402 * 65536 + 0.5) * x + ONE_HALF) >> 16;
  CB_B[i] = (Math.floor(1.772 * 65536 + 0.5) * x + ONE_HALF) >> 16;
  CR_G[i] = -Math.floor(0.71414 * 65536 + 0.5) * x;
  CB_G[i] = -Math.floor(0.34414 * 65536 + 0.5) * x + ONE_HALF;
}

const clamp8 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/** YCbCr planes to interleaved RGB. */
export function yccToRgb(y: Uint8Array, cb: Uint8Array, cr: Uint8Array, out: Uint8Array): void {
  // Integer stores into a clamped view saturate to 0..255: libjpeg's range_limit, branch-free.
  const sat = new Uint8ClampedArray(out.buffer, out.byteOffset, out.length);
  for (let i = 0, o = 0; i < y.length; i++, o += 3) {
    const Y = y[i];
    const b = cb[i];
    const r = cr[i];
    sat[o] = Y + CR_R[r];
    sat[o + 1] = Y + ((CB_G[b] + CR_G[r]) >> 16);
    sat[o + 2] = Y + CB_B[b];
  }
}

/** libjpeg's YCCK -> CMYK for the first three planes, in place (K is unchanged). */
export function ycckToCmyk(y: Uint8Array, cb: Uint8Array, cr: Uint8Array): void {
  for (let i = 0; i < y.length; i++) {
    const Y = y[i];
    const b = cb[i];
    const r = cr[i];
    y[i] = clamp8(255 - (Y + CR_R[r]));
    cb[i] = clamp8(255 - (Y + ((CB_G[b] + CR_G[r]) >> 16)));
    cr[i] = clamp8(255 - (Y + CB_B[b]));
  }
}

/** PIL's (a*b)/255 with rounding: MULDIV255. */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/**
 * CMYK samples as libjpeg outputs them to RGB as PIL shows them: PIL reads every
 * 4-channel JPEG as inverted ("CMYK;I"), then R = (255-K') - (255-K')*C'/255 with
 * C' = 255 - c, K' = 255 - k.
 */
export function cmykToRgb(planes: Uint8Array[], out: Uint8Array): void {
  const [c, m, y, k] = planes;
  for (let i = 0, o = 0; i < c.length; i++, o += 3) {
    const nk = k[i];
    out[o] = clamp8(nk - mulDiv255(255 - c[i], nk));
    out[o + 1] = clamp8(nk - mulDiv255(255 - m[i], nk));
    out[o + 2] = clamp8(nk - mulDiv255(255 - y[i], nk));
  }
}
