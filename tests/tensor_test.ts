/** Tensor front end: views, broadcasting, dtypes, memory scopes and error messages. */

import { expect, it } from "./lib/test.ts";
import { backward, noGrad } from "../core/autograd.ts";
import * as ops from "../core/ops/mod.ts";
import { Rng } from "../core/random.ts";
import { liveStorages, tidy } from "../core/tensor.ts";

const arr = (t: { dataSync(): ArrayLike<number> }) => Array.from(t.dataSync());

it("views: reshape, permute, slice, expand read the right elements", () =>
  tidy(() => {
    const x = ops.tensor([0, 1, 2, 3, 4, 5], [2, 3]);
    expect(arr(ops.transpose(x))).toEqual([0, 3, 1, 4, 2, 5]);
    expect(arr(ops.slice(x, 1, 1, 3))).toEqual([1, 2, 4, 5]);
    expect(arr(ops.slice(ops.transpose(x), 0, 2, 3))).toEqual([2, 5]);
    expect(arr(ops.expand(ops.tensor([7, 8], [2, 1]), [2, 2]))).toEqual([7, 7, 8, 8]);
    expect(arr(ops.reshape(ops.transpose(x), [6]))).toEqual([0, 3, 1, 4, 2, 5]);
    expect(ops.reshape(x, [-1, 2]).shape).toEqual([3, 2]);
    const [a, b] = ops.split(x, [1, 2], 1);
    expect(arr(a)).toEqual([0, 3]);
    expect(arr(b)).toEqual([1, 2, 4, 5]);
    expect(arr(ops.stack([a, a], 0))).toEqual([0, 3, 0, 3]);
  }));

it("broadcasting matches numpy rules (closed form)", () =>
  tidy(() => {
    const a = ops.tensor([1, 2, 3], [3, 1]);
    const b = ops.tensor([10, 20], [2]);
    const s = ops.add(a, b);
    expect(s.shape).toEqual([3, 2]);
    expect(arr(s)).toEqual([11, 21, 12, 22, 13, 23]);
    expect(arr(ops.mul(ops.transpose(ops.tensor([1, 2, 3, 4], [2, 2])), 2))).toEqual([
      2,
      6,
      4,
      8,
    ]);
  }));

it("reductions: sum/mean/max/argmax with keepdim; argmax takes the first maximum", () =>
  tidy(() => {
    const x = ops.tensor([1, 5, 5, 2, 0, 3], [2, 3]);
    expect(arr(ops.sum(x, 1))).toEqual([11, 5]);
    expect(ops.sum(x, 0, true).shape).toEqual([1, 3]);
    expect(arr(ops.mean(x, [0, 1]))).toEqual([16 / 6].map(Math.fround));
    expect(arr(ops.max(x, 1))).toEqual([5, 3]);
    expect(arr(ops.argmax(x, 1))).toEqual([1, 2]);
    expect(ops.argmax(x, 1).dtype).toBe("i32");
  }));

it("matmul: 2-D, batched, transposed views agree with a float64 loop", () =>
  tidy(() => {
    const gen = new Rng(3);
    const a = ops.randn([2, 4, 5], gen), b = ops.randn([2, 6, 5], gen);
    const c = ops.matmul(a, ops.transpose(b));
    const A = a.dataSync(), B = b.dataSync(), C = c.dataSync();
    for (let n = 0; n < 2; n++) {
      for (let i = 0; i < 4; i++) {
        for (let j = 0; j < 6; j++) {
          let s = 0;
          for (let k = 0; k < 5; k++) s += A[n * 20 + i * 5 + k] * B[n * 30 + j * 5 + k];
          expect(Math.abs(C[n * 24 + i * 6 + j] - s)).toBeLessThan(1e-5);
        }
      }
    }
  }));

it("tidy disposes temporaries and keeps what it returns", () => {
  const before = liveStorages();
  const kept = tidy(() => {
    const a = ops.ones([4]);
    const b = ops.add(a, 1);
    ops.mul(b, b);
    return b;
  });
  expect(liveStorages()).toBe(before + 1);
  expect(arr(kept)).toEqual([2, 2, 2, 2]);
  kept.dispose();
  expect(liveStorages()).toBe(before);
});

it("training-style loop returns the live-storage count to its start", () => {
  const w = ops.randn([3, 3], new Rng(1)).keep().requireGrad();
  const before = liveStorages();
  for (let i = 0; i < 3; i++) {
    tidy(() => {
      const x = ops.randn([2, 3], new Rng(i));
      const loss = ops.sum(ops.tanh(ops.matmul(x, w)));
      backward(loss);
    });
    w.grad!.dispose();
    w.grad = null;
  }
  expect(liveStorages()).toBe(before);
  w.dispose();
});

it("gradients accumulate over two backward calls", () => {
  const w = ops.tensor([1, 2], [2]).requireGrad();
  for (let i = 0; i < 2; i++) tidy(() => backward(ops.sum(ops.mul(w, w))));
  expect(arr(w.grad!)).toEqual([4, 8]);
  w.grad!.dispose();
  w.dispose();
});

it("noGrad records no graph", () =>
  tidy(() => {
    const w = ops.tensor([1, 2], [2]).requireGrad();
    const y = noGrad(() => ops.mul(w, 3));
    expect(y.requiresGrad).toBe(false);
    expect(y.node).toBe(null);
  }));

it("same seed gives the same random numbers; different seeds differ", () =>
  tidy(() => {
    const a = arr(ops.randn([5], new Rng(7)));
    const b = arr(ops.randn([5], new Rng(7)));
    const c = arr(ops.randn([5], new Rng(8)));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  }));

it("bad input gives clear errors naming the op and shapes", () =>
  tidy(() => {
    expect(() => ops.add(ops.zeros([2, 3]), ops.zeros([4]))).toThrow(
      /add: shapes \[2, 3\] and \[4\] cannot be broadcast/,
    );
    expect(() => ops.matmul(ops.zeros([2, 3]), ops.zeros([4, 5]))).toThrow(
      /matmul: inner dimensions differ: \[2, 3\] @ \[4, 5\]/,
    );
    expect(() => ops.add(ops.zeros([2]), ops.zeros([2], { dtype: "i32" }))).toThrow(
      /add: dtype mismatch/,
    );
    expect(() => ops.embedding(ops.zeros([4, 2]), ops.tensor([0, 9], [2], { dtype: "i32" })))
      .toThrow(/9/);
    expect(() => ops.reshape(ops.zeros([6]), [4, 2])).toThrow(/reshape: cannot reshape \[6\]/);
    expect(() => ops.conv2d(ops.zeros([1, 3, 4, 4]), ops.zeros([2, 2, 3, 3]))).toThrow(
      /conv2d: input \[1, 3, 4, 4\] and weight \[2, 2, 3, 3\]/,
    );
    expect(() => ops.slice(ops.zeros([3]), 0, 1, 5)).toThrow(
      /slice: range 1:5 is outside axis 0 of size 3/,
    );
    expect(() => ops.crossEntropy(ops.zeros([2, 3]), ops.tensor([0], [1], { dtype: "i32" })))
      .toThrow(/crossEntropy/);
    const t = ops.zeros([2]);
    t.dispose();
    expect(() => ops.add(t, 1)).toThrow(/used after dispose/);
  }));

it("indexSelect and scatterAdd (closed form)", () =>
  tidy(() => {
    const x = ops.tensor([1, 2, 3, 4, 5, 6], [3, 2]);
    const ids = ops.tensor([2, 0, 2], [3], { dtype: "i32" });
    expect(arr(ops.indexSelect(x, ids))).toEqual([5, 6, 1, 2, 5, 6]);
    expect(arr(ops.scatterAdd(x, ids, 4))).toEqual([3, 4, 0, 0, 6, 8, 0, 0]);
  }));
