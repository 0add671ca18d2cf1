/**
 * torch.nn.functional.interpolate(mode="bicubic", align_corners=False, antialias=False)
 * on float32 planes, as torch 1.13's CPU kernel computes it:
 *  - output size floor(in * scale_factor) when a scale factor is given;
 *  - the coordinate scale is float32(1 / scale_factor) when a scale factor is given
 *    (not in/out!), else float32(in) / out;
 *  - src = scale * (dst + 0.5) - 0.5, no clamping of negative positions;
 *  - Keys cubic with A = -0.75 on t = src - floor(src), taps clamped to the border.
 * Weights and indices follow ATen's float arithmetic (see taps()); the accumulation is in
 * double here, so results agree with torch to ~1e-6 rather than bit for bit.
 *
 * DiGIT uses it for 256 -> 224 (scale 224/256) before DINOv2, and with scale 16.1/37 for
 * the position-embedding grid.
 */

const f32 = Math.fround;
const A = -0.75;

/** Fused multiply-add rounded once to float32 (exact: a*b of two floats fits a double). */
const fma = (a: number, b: number, c: number) => f32(a * b + c);

/**
 * The 4 cubic weights for fractional offset t (get_cubic_upsample_coefficients), in float32
 * with the fused multiply-adds torch's AVX2 build uses; measured against torch 1.13 this
 * keeps weights within ~1e-7 (plain float32 evaluation is off by up to 5e-7).
 */
function cubicWeights(t: number, out: Float64Array, o: number): void {
  const conv1 = (x: number) => fma(f32(fma(A + 2, x, -(A + 3)) * x), x, 1);
  const conv2 = (x: number) => fma(fma(fma(A, x, -5 * A), x, 8 * A), x, -4 * A);
  out[o] = conv2(f32(t + 1));
  out[o + 1] = conv1(t);
  const t2 = f32(1 - t);
  out[o + 2] = conv1(t2);
  out[o + 3] = conv2(f32(t2 + 1));
}

/**
 * Per output index: 4 clamped source indices and 4 weights. The scale is float32, but
 * src = scale * (dst + 0.5) - 0.5 is evaluated in double (the 0.5 literals are doubles
 * in ATen), and only t = src - floor(src) is rounded to float32.
 */
function taps(inSize: number, outSize: number, scaleFactor?: number) {
  const scale = scaleFactor !== undefined && scaleFactor > 0
    ? f32(1 / scaleFactor)
    : f32(f32(inSize) / outSize);
  const index = new Int32Array(outSize * 4);
  const weight = new Float64Array(outSize * 4);
  for (let i = 0; i < outSize; i++) {
    const src = scale * (i + 0.5) - 0.5;
    const base = Math.min(Math.floor(src), inSize - 1);
    const t = Math.min(Math.max(f32(src - base), 0), 1);
    cubicWeights(t, weight, 4 * i);
    for (let j = 0; j < 4; j++) index[4 * i + j] = Math.min(Math.max(base - 1 + j, 0), inSize - 1);
  }
  return { index, weight };
}

export interface InterpolateOptions {
  /** Output size [height, width]; or give scaleFactor. */
  size?: [number, number];
  /** [scaleH, scaleW] (or one number for both), as passed to F.interpolate. */
  scaleFactor?: number | [number, number];
}

/**
 * Bicubic resampling of `planes` images of size height x width stored back to back
 * (NCHW with planes = N*C). Returns the output planes and their size.
 */
export function interpolateBicubic(
  data: Float32Array,
  planes: number,
  height: number,
  width: number,
  opts: InterpolateOptions,
): { data: Float32Array; height: number; width: number } {
  if (data.length !== planes * height * width) {
    throw new Error(
      `interpolateBicubic: ${planes}x${height}x${width} needs ${
        planes * height * width
      } values, got ${data.length}`,
    );
  }
  let outH: number, outW: number, sH: number | undefined, sW: number | undefined;
  if (opts.size) {
    [outH, outW] = opts.size;
  } else if (opts.scaleFactor !== undefined) {
    [sH, sW] = typeof opts.scaleFactor === "number"
      ? [opts.scaleFactor, opts.scaleFactor]
      : opts.scaleFactor;
    outH = Math.floor(height * sH);
    outW = Math.floor(width * sW);
  } else {
    throw new Error("interpolateBicubic: give size or scaleFactor");
  }
  if (outH <= 0 || outW <= 0) throw new Error(`interpolateBicubic: empty output ${outH}x${outW}`);
  const ty = taps(height, outH, sH);
  const tx = taps(width, outW, sW);
  const out = new Float32Array(planes * outH * outW);
  const row = new Float64Array(4);
  for (let p = 0; p < planes; p++) {
    const src = p * height * width;
    const dst = p * outH * outW;
    for (let oy = 0; oy < outH; oy++) {
      for (let ox = 0; ox < outW; ox++) {
        // Interpolate along x on each of the 4 source rows, then along y.
        for (let j = 0; j < 4; j++) {
          const r = src + ty.index[4 * oy + j] * width;
          let s = 0;
          for (let i = 0; i < 4; i++) s += data[r + tx.index[4 * ox + i]] * tx.weight[4 * ox + i];
          row[j] = s;
        }
        out[dst + oy * outW + ox] = row[0] * ty.weight[4 * oy] + row[1] * ty.weight[4 * oy + 1] +
          row[2] * ty.weight[4 * oy + 2] + row[3] * ty.weight[4 * oy + 3];
      }
    }
  }
  return { data: out, height: outH, width: outW };
}
