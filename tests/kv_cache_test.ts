/**
 * KVCache (core/nn/attention.ts): appends write in place into a buffer that grows as
 * needed, and what the cache holds must equal the plain concatenation of what was
 * appended (built here on the host), whatever the append sizes, the reserve and the
 * inputs' strides. Decoding one token at a time through MultiheadAttention with a cache
 * must give the full causal forward's outputs.
 */

import { expect, it } from "./lib/test.ts";
import { noGrad } from "../core/autograd.ts";
import { ShapeError } from "../core/backend.ts";
import { KVCache, MultiheadAttention } from "../core/nn/mod.ts";
import * as ops from "../core/ops/mod.ts";
import { Rng } from "../core/random.ts";
import { liveStorages, tidy } from "../core/tensor.ts";

const B = 2, H = 3, D = 4;

/** Host (B, H, T, D) data whose every element differs. */
function piece(T: number, tag: number): Float32Array {
  return Float32Array.from({ length: B * H * T * D }, (_, i) => tag * 1000 + i);
}

/** Concatenation of (B, H, T_i, D) host arrays along T. */
function concat(pieces: Float32Array[], lengths: number[]): number[] {
  const out: number[] = [];
  for (let bh = 0; bh < B * H; bh++) {
    pieces.forEach((p, i) => {
      const n = lengths[i] * D;
      out.push(...p.subarray(bh * n, (bh + 1) * n));
    });
  }
  return out;
}

for (const reserve of [0, 4, 64]) {
  it(`KVCache (reserve ${reserve}) holds the concatenation of what was appended`, () => {
    const before = liveStorages();
    const cache = new KVCache(reserve);
    const lengths = [3, 1, 1, 4, 1, 7];
    const keys: Float32Array[] = [], values: Float32Array[] = [];
    lengths.forEach((T, i) => {
      keys.push(piece(T, i + 1));
      values.push(piece(T, -(i + 1)));
      tidy(() => {
        // Keys arrive as a strided view, as MultiheadAttention's head split makes them.
        const k = ops.permute(
          ops.tensor(toTokenMajor(keys[i], T), [B, T, H, D]),
          [0, 2, 1, 3],
        );
        const got = cache.append(k, ops.tensor(values[i], [B, H, T, D]));
        const total = lengths.slice(0, i + 1).reduce((s, n) => s + n, 0);
        expect(got.k.shape).toEqual([B, H, total, D]);
        expect(cache.length).toBe(total);
        expect(Array.from(got.k.dataSync()), `keys after ${i + 1} appends`)
          .toEqual(concat(keys, lengths.slice(0, i + 1)));
        expect(Array.from(got.v.dataSync()), `values after ${i + 1} appends`)
          .toEqual(concat(values, lengths.slice(0, i + 1)));
      });
    });
    cache.dispose();
    expect(cache.length).toBe(0);
    expect(liveStorages(), "a disposed cache leaves nothing live").toBe(before);
  });
}

/** (B, H, T, D) host data laid out (B, T, H, D). */
function toTokenMajor(x: Float32Array, T: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        for (let d = 0; d < D; d++) {
          out[((b * T + t) * H + h) * D + d] = x[((b * H + h) * T + t) * D + d];
        }
      }
    }
  }
  return out;
}

it("KVCache refuses positions of another shape and appends that need a gradient", () => {
  const cache = new KVCache();
  tidy(() => {
    cache.append(ops.zeros([B, H, 2, D]), ops.zeros([B, H, 2, D]));
    expect(() => cache.append(ops.zeros([B, H + 1, 1, D]), ops.zeros([B, H + 1, 1, D])))
      .toThrow(ShapeError);
    expect(() => cache.append(ops.zeros([B, H, 1, D]), ops.zeros([B, H, 2, D])))
      .toThrow(/values \[2, 3, 2, 4\]/);
    const w = ops.zeros([B, H, 1, D]).requireGrad();
    expect(() => cache.append(w, w)).toThrow(/noGrad/);
    noGrad(() => cache.append(w, w));
  });
  expect(cache.length).toBe(3);
  cache.dispose();
});

it("MultiheadAttention decoding token by token with a cache matches the causal forward", () => {
  const before = liveStorages();
  const T = 9, dim = 12;
  const attn = new MultiheadAttention(dim, 3, new Rng(2));
  const x = ops.randn([2, T, dim], new Rng(5));
  const full = tidy(() => noGrad(() => Array.from(attn.forward(x, { causal: true }).dataSync())));
  const cache = new KVCache();
  const steps: number[][] = [];
  for (let t = 0; t < T; t++) {
    tidy(() =>
      noGrad(() => {
        const y = attn.forward(ops.slice(x, 1, t, t + 1), { causal: true, cache });
        steps.push(Array.from(y.dataSync()));
      })
    );
  }
  let worst = 0;
  for (let b = 0; b < 2; b++) {
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < dim; c++) {
        worst = Math.max(worst, Math.abs(steps[t][b * dim + c] - full[(b * T + t) * dim + c]));
      }
    }
  }
  expect(worst, `max |cached - full| ${worst} (tolerance 1e-5)`).toBeLessThan(1e-5);
  cache.dispose();
  x.dispose();
  attn.dispose();
  expect(liveStorages()).toBe(before);
});
