/** Global gradient-norm clipping without a host round trip per parameter. */

import * as ops from "../ops/mod.ts";
import { type Tensor, tidy } from "../tensor.ts";
import { tensorOf } from "./util.ts";

/**
 * The global L2 norm of all gradients, as a 1-element tensor on the device. Reading
 * it costs a sync, so training loops read it only when they log.
 */
export function gradNorm(params: Tensor[]): Tensor {
  const b = params[0].backend;
  let total: Tensor | null = null;
  for (const p of params) {
    if (!p.grad) continue;
    const sq = tensorOf(b.sumSquares(p.grad.storage));
    const next: Tensor = total ? total.add(sq) : sq;
    if (total) {
      total.dispose();
      sq.dispose();
    }
    total = next;
  }
  if (!total) return tensorOf(b.fill("f32", 1, 0));
  const n = total.sqrt();
  total.dispose();
  return n;
}

/**
 * Clip the global gradient norm to maxNorm. Returns (norm, scale) where scale is the
 * factor to multiply gradients by (min(1, maxNorm/norm)), kept on the device so that
 * the optimiser can apply it as its gradScale without reading it back.
 */
export async function clipGradNorm(
  params: Tensor[],
  maxNorm: number,
): Promise<{ norm: number; scale: number }> {
  const n = gradNorm(params);
  const norm = await n.item();
  n.dispose();
  const scale = maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
  return { norm, scale };
}

/**
 * Clip without reading anything back: the scale min(1, maxNorm/norm) is computed on the
 * device and every gradient is multiplied by it. Returns the norm (before clipping) as a
 * 1-element device tensor, for logging later. Used on backends without synchronous
 * reads (WebGPU), where a read inside the step would stall the queue.
 */
export function clipGradNormOnDevice(params: Tensor[], maxNorm: number): Tensor {
  const norm = gradNorm(params);
  const scale = tidy(() =>
    ops.minimum(ops.div(ops.fill([1], maxNorm, norm.backend), ops.add(norm, 1e-6)), 1)
  );
  for (const p of params) {
    if (!p.grad) continue;
    const g = tidy(() => ops.mul(p.grad!, scale)).keep();
    p.grad.dispose();
    p.grad = g;
  }
  scale.dispose();
  return norm;
}
