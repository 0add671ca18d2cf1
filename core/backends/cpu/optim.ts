/**
 * AdamW in place over flat buffers (PyTorch torch.optim.AdamW, amsgrad off), and the
 * float64 sum of squares used for global gradient-norm clipping.
 *
 * With g = grad * gradScale:
 *   p -= lr * wd * p
 *   m = b1 m + (1 - b1) g ;  v = b2 v + (1 - b2) g^2
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 */

import type { AdamWArgs } from "../../backend.ts";

export function adamw(
  param: Float32Array,
  grad: Float32Array,
  m: Float32Array,
  v: Float32Array,
  a: AdamWArgs,
) {
  const decay = 1 - a.lr * a.weightDecay;
  const stepSize = a.lr / (1 - Math.pow(a.beta1, a.step));
  const correction2Sqrt = Math.sqrt(1 - Math.pow(a.beta2, a.step));
  const { beta1, beta2, eps, gradScale } = a;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i] * gradScale;
    // Round the moments to f32 before use, as PyTorch's stored state is.
    const mi = Math.fround(beta1 * m[i] + (1 - beta1) * g);
    const vi = Math.fround(beta2 * v[i] + (1 - beta2) * g * g);
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - (stepSize * mi) / (Math.sqrt(vi) / correction2Sqrt + eps);
  }
}

export function sumSquares(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}
