/**
 * Counter-based sampling kernels: element i depends only on (seed, offset + i), through
 * the shared hash in `core/random.ts`, so the WebGPU backend draws the same numbers.
 */

import { normalAt, uniformAt } from "../../random.ts";

export function uniform(length: number, seed: number, offset: number): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = uniformAt(seed, offset + i);
  return out;
}

export function normal(length: number, seed: number, offset: number): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = normalAt(seed, offset + i);
  return out;
}

/**
 * Inverted dropout: keep element i when uniform(seed, offset + i) >= p, and scale kept
 * elements by 1/(1-p). The mask holds 1 for kept and 0 for dropped elements; p >= 1
 * drops everything (y = 0, not NaN).
 */
export function dropout(
  x: Float32Array,
  p: number,
  seed: number,
  offset: number,
): { y: Float32Array; mask: Float32Array } {
  const n = x.length;
  const y = new Float32Array(n);
  const mask = new Float32Array(n);
  const scale = p < 1 ? 1 / (1 - p) : 0;
  for (let i = 0; i < n; i++) {
    if (uniformAt(seed, offset + i) >= p) {
      mask[i] = 1;
      y[i] = x[i] * scale;
    }
  }
  return { y, mask };
}
