/**
 * Deterministic stand-in weights for the FID Inception-v3, for tests and benchmarks (the
 * real 95 MB file is not in the repository). Every value is a pure function of (seed, key,
 * element index), so tests/fixtures/make_inception_fixtures.py builds the very same float32
 * tensors in numpy and only the network's outputs need to be stored.
 *
 *   key seed  = FNV-1a-32 of the UTF-8 bytes of `${seed}:${key}`
 *   u         = uniformAt(keySeed, i)            (core/random.ts: PCG hash, 24-bit uniform)
 *   conv.weight         (2u - 1) * sqrt(6 / fanIn)   He-uniform, keeps ReLU activations O(1)
 *   bn.weight           0.5 + u
 *   bn.bias             (2u - 1) * 0.2
 *   bn.running_mean     (2u - 1) * 0.2
 *   bn.running_var      0.5 + u
 *   fc.weight           (2u - 1) * sqrt(3 / 2048)
 *   fc.bias             (2u - 1) * 0.1
 * Each is computed in float64 and rounded once to float32.
 */

import type { StateDict } from "../../core/io/host_tensor.ts";
import { uniformAt } from "../../core/random.ts";

export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(text)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function valueRule(key: string, shape: readonly number[]): (u: number) => number {
  if (key.endsWith("conv.weight")) {
    const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
    const bound = Math.sqrt(6 / fanIn);
    return (u) => (2 * u - 1) * bound;
  }
  if (key.endsWith("bn.weight") || key.endsWith("bn.running_var")) return (u) => 0.5 + u;
  if (key.endsWith("bn.bias") || key.endsWith("bn.running_mean")) return (u) => (2 * u - 1) * 0.2;
  if (key === "fc.weight") {
    const bound = Math.sqrt(3 / shape[1]);
    return (u) => (2 * u - 1) * bound;
  }
  if (key === "fc.bias") return (u) => (2 * u - 1) * 0.1;
  throw new Error(`syntheticInceptionWeights: no rule for key '${key}'`);
}

/** Synthetic weights for the given keys and shapes (e.g. from `model.stateDict()`). */
export function syntheticInceptionWeights(
  shapes: Iterable<[string, readonly number[]]>,
  seed = 0,
): StateDict {
  const out: StateDict = new Map();
  for (const [key, shape] of shapes) {
    const rule = valueRule(key, shape);
    const keySeed = fnv1a32(`${seed}:${key}`);
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = rule(uniformAt(keySeed, i));
    out.set(key, { dtype: "f32", shape: [...shape], data, sourceDtype: "f32" });
  }
  return out;
}
