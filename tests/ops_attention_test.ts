/**
 * ops.attention's layouts: q, k and v sliced out of one fused projection are read in place
 * (no copies), the output is laid out (B, T, H, D) so merging heads is a view, and both
 * give the same numbers as contiguous operands, forward and backward.
 */

import { expect, it } from "./lib/test.ts";
import { backward } from "../core/autograd.ts";
import * as ops from "../core/ops/mod.ts";
import { Rng } from "../core/random.ts";
import { liveStorages, type Tensor, tidy } from "../core/tensor.ts";

const B = 2, T = 5, H = 3, D = 4;

/** (B, T, 3HD) -> q, k, v (B, H, T, D) views, as DINOv2's and the fused attention do it. */
function splitFused(x: Tensor) {
  const rows = ops.permute(ops.reshape(x, [B, T, 3 * H, D]), [0, 2, 1, 3]);
  return [0, 1, 2].map((i) => ops.slice(rows, 1, i * H, (i + 1) * H));
}

it("attention on fused-qkv views matches contiguous operands, and merging heads is a view", () => {
  const before = liveStorages();
  tidy(() => {
    const x = ops.randn([B, T, 3 * H * D], new Rng(3)).requireGrad();
    const g = ops.randn([B, T, H * D], new Rng(4));
    const dropGrad = () => {
      x.grad?.dispose();
      x.grad = null;
    };
    const run = (contiguous: boolean) => {
      dropGrad();
      const [q, k, v] = splitFused(x).map((t) => (contiguous ? ops.contiguous(t) : t));
      if (!contiguous) expect(q.isContiguous(), "the slices are strided views").toBeFalsy();
      const o = ops.attention(q, k, v, { causal: true });
      const merged = ops.permute(o, [0, 2, 1, 3]);
      expect(merged.isContiguous(), "the output is laid out (B, T, H, D)").toBeTruthy();
      const y = ops.reshape(merged, [B, T, H * D]);
      backward(ops.sum(ops.mul(y, g)));
      return { y: Float32Array.from(y.dataSync()), dx: Float32Array.from(x.grad!.dataSync()) };
    };
    const viewed = run(false), copied = run(true);
    // The same kernel arithmetic either way: only the row strides differ.
    expect(viewed.y).toEqual(copied.y);
    expect(viewed.dx).toEqual(copied.dx);
    dropGrad();
  });
  expect(liveStorages(), "no storage leaks").toBe(before);
});

it("attention copies operands whose last axis is strided, and still matches", () => {
  tidy(() => {
    const q = ops.randn([1, 2, 3, 4], new Rng(5));
    const k = ops.randn([1, 2, 4, 3], new Rng(6)); // (B, H, D, T): transposed below
    const v = ops.randn([1, 2, 3, 4], new Rng(7));
    const kT = ops.transpose(k, 2, 3);
    const a = ops.attention(q, kT, v).dataSync();
    const b = ops.attention(q, ops.contiguous(kT), v).dataSync();
    expect(Float32Array.from(a)).toEqual(Float32Array.from(b));
  });
});
