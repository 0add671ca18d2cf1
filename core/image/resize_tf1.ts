/**
 * torch-fidelity's TF1-compatible bilinear resize (interpolate_compat_tensorflow.py,
 * method "slow", align_corners=False), used inside the FID Inception network to take
 * uint8 images to 299x299:
 *   x_src = float32(dst) * float32(in/out)   (no half-pixel offset)
 *   lo = trunc(x_src), hi = min(lo + 1, in - 1), d = x_src - lo
 *   top = a + (b - a) * dx; bottom likewise; out = top + (bottom - top) * dy
 * all in float32, which makes this bit-exact with the PyTorch code on CPU.
 */

import type { FloatImage, RgbImage } from "./rgb.ts";

const f32 = Math.fround;

function grid(inSize: number, outSize: number) {
  const scale = f32(inSize / outSize); // torch.tensor(in/out, dtype=float32)
  const lo = new Int32Array(outSize);
  const hi = new Int32Array(outSize);
  const d = new Float32Array(outSize);
  for (let i = 0; i < outSize; i++) {
    const x = f32(i * scale);
    lo[i] = Math.trunc(x);
    hi[i] = Math.min(lo[i] + 1, inSize - 1);
    d[i] = f32(x - lo[i]);
  }
  return { lo, hi, d };
}

/** Resize float32 planes (NCHW, planes = N*C) to outH x outW, TF1 style. */
export function resizeBilinearTf1Planes(
  data: Float32Array,
  planes: number,
  height: number,
  width: number,
  outH: number,
  outW: number,
): Float32Array {
  if (data.length !== planes * height * width) {
    throw new Error(
      `resizeBilinearTf1: ${planes}x${height}x${width} needs ${
        planes * height * width
      } values, got ${data.length}`,
    );
  }
  const gy = grid(height, outH);
  const gx = grid(width, outW);
  const out = new Float32Array(planes * outH * outW);
  for (let p = 0; p < planes; p++) {
    const src = p * height * width;
    const dst = p * outH * outW;
    for (let y = 0; y < outH; y++) {
      const r0 = src + gy.lo[y] * width;
      const r1 = src + gy.hi[y] * width;
      const dy = gy.d[y];
      for (let x = 0; x < outW; x++) {
        const x0 = gx.lo[x];
        const x1 = gx.hi[x];
        const dx = gx.d[x];
        const a = data[r0 + x0];
        const top = f32(a + f32(f32(data[r0 + x1] - a) * dx));
        const c = data[r1 + x0];
        const bottom = f32(c + f32(f32(data[r1 + x1] - c) * dx));
        out[dst + y * outW + x] = f32(top + f32(f32(bottom - top) * dy));
      }
    }
  }
  return out;
}

/** An 8-bit RGB image to CHW float32 (values 0..255) at outH x outW. */
export function resizeBilinearTf1(img: RgbImage, outH = 299, outW = 299): FloatImage {
  const n = img.width * img.height;
  const chw = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    chw[i] = img.data[3 * i];
    chw[n + i] = img.data[3 * i + 1];
    chw[2 * n + i] = img.data[3 * i + 2];
  }
  const data = resizeBilinearTf1Planes(chw, 3, img.height, img.width, outH, outW);
  return { channels: 3, height: outH, width: outW, data };
}
