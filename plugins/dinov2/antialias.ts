/**
 * torch.nn.functional.interpolate(mode="bicubic", antialias=True, align_corners=False) with
 * an output size, on the host in float64. Used once per input size for the position table
 * of the official hub models, so clarity beats speed here.
 *
 * PyTorch's antialiased kernels (aten/src/ATen/native/cpu/UpSampleKernel.cpp,
 * `_compute_indices_weights_aa`) resample each axis separately, like PIL:
 *   scale   = in / out
 *   support = 2 * max(scale, 1)                (bicubic: interp_size 4, half of it is 2)
 *   center  = scale * (i + 0.5)
 *   taps j in [max(int(center - support + 0.5), 0), min(int(center + support + 0.5), in))
 *   weight  = cubic((j - center + 0.5) / max(scale, 1)), normalised to sum 1
 * with Keys' cubic at a = -0.5 (not the -0.75 of the plain bicubic mode).
 */

const A = -0.5;

function cubic(x: number): number {
  const t = Math.abs(x);
  if (t < 1) return ((A + 2) * t - (A + 3)) * t * t + 1;
  if (t < 2) return ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
  return 0;
}

export interface AxisWeights {
  /** First source index of each output position. */
  start: Int32Array;
  /** Number of taps of each output position. */
  count: Int32Array;
  /** Taps of output i at weights[i * maxTaps + j]. */
  weights: Float64Array;
  maxTaps: number;
}

/** The normalised antialiased-bicubic taps for resizing one axis from `inSize` to `outSize`. */
export function antialiasWeights(inSize: number, outSize: number): AxisWeights {
  const scale = inSize / outSize;
  const support = 2 * Math.max(scale, 1);
  const invScale = scale >= 1 ? 1 / scale : 1;
  const maxTaps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * maxTaps);
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    let total = 0;
    for (let j = lo; j < hi; j++) {
      const w = cubic((j - center + 0.5) * invScale);
      weights[i * maxTaps + j - lo] = w;
      total += w;
    }
    if (total !== 0) { for (let j = 0; j < hi - lo; j++) weights[i * maxTaps + j] /= total; }
    start[i] = lo;
    count[i] = hi - lo;
  }
  return { start, count, weights, maxTaps };
}

/**
 * Resize `planes` images (height x width, back to back) to outH x outW with antialiased
 * bicubic, horizontal pass first as PyTorch does, all in float64.
 */
export function resizeAntialiasBicubic(
  data: ArrayLike<number>,
  planes: number,
  height: number,
  width: number,
  outH: number,
  outW: number,
): Float64Array {
  if (data.length !== planes * height * width) {
    throw new Error(
      `resizeAntialiasBicubic: ${planes}x${height}x${width} needs ${
        planes * height * width
      } values, got ${data.length}`,
    );
  }
  const wx = antialiasWeights(width, outW);
  const wy = antialiasWeights(height, outH);
  const tmp = new Float64Array(height * outW);
  const out = new Float64Array(planes * outH * outW);
  for (let p = 0; p < planes; p++) {
    const src = p * height * width;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < outW; x++) {
        let s = 0;
        for (let j = 0; j < wx.count[x]; j++) {
          s += data[src + y * width + wx.start[x] + j] * wx.weights[x * wx.maxTaps + j];
        }
        tmp[y * outW + x] = s;
      }
    }
    const dst = p * outH * outW;
    for (let y = 0; y < outH; y++) {
      for (let x = 0; x < outW; x++) {
        let s = 0;
        for (let j = 0; j < wy.count[y]; j++) {
          s += tmp[(wy.start[y] + j) * outW + x] * wy.weights[y * wy.maxTaps + j];
        }
        out[dst + y * outW + x] = s;
      }
    }
  }
  return out;
}
