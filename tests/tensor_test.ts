/** Tensor front end: views, broadcasting, dtypes, memory scopes and error messages. */

import assert from "node:assert/strict";
import { backward, noGrad } from "../core/autograd.ts";
import * as ops from "../core/ops/mod.ts";
import { Generator } from "../core/random.ts";
import { liveStorages, tidy } from "../core/tensor.ts";

const arr = (t: { dataSync(): ArrayLike<number> }) => Array.from(t.dataSync());

Deno.test("views: reshape, permute, slice, expand read the right elements", () =>
  tidy(() => {
    const x = ops.tensor([0, 1, 2, 3, 4, 5], [2, 3]);
    assert.deepEqual(arr(ops.transpose(x)), [0, 3, 1, 4, 2, 5]);
    assert.deepEqual(arr(ops.slice(x, 1, 1, 3)), [1, 2, 4, 5]);
    assert.deepEqual(arr(ops.slice(ops.transpose(x), 0, 2, 3)), [2, 5]);
    assert.deepEqual(arr(ops.expand(ops.tensor([7, 8], [2, 1]), [2, 2])), [7, 7, 8, 8]);
    assert.deepEqual(arr(ops.reshape(ops.transpose(x), [6])), [0, 3, 1, 4, 2, 5]);
    assert.deepEqual(ops.reshape(x, [-1, 2]).shape, [3, 2]);
    const [a, b] = ops.split(x, [1, 2], 1);
    assert.deepEqual(arr(a), [0, 3]);
    assert.deepEqual(arr(b), [1, 2, 4, 5]);
    assert.deepEqual(arr(ops.stack([a, a], 0)), [0, 3, 0, 3]);
  }));

Deno.test("broadcasting matches numpy rules (closed form)", () =>
  tidy(() => {
    const a = ops.tensor([1, 2, 3], [3, 1]);
    const b = ops.tensor([10, 20], [2]);
    const s = ops.add(a, b);
    assert.deepEqual(s.shape, [3, 2]);
    assert.deepEqual(arr(s), [11, 21, 12, 22, 13, 23]);
    assert.deepEqual(arr(ops.mul(ops.transpose(ops.tensor([1, 2, 3, 4], [2, 2])), 2)), [
      2,
      6,
      4,
      8,
    ]);
  }));

Deno.test("reductions: sum/mean/max/argmax with keepdim; argmax takes the first maximum", () =>
  tidy(() => {
    const x = ops.tensor([1, 5, 5, 2, 0, 3], [2, 3]);
    assert.deepEqual(arr(ops.sum(x, 1)), [11, 5]);
    assert.deepEqual(ops.sum(x, 0, true).shape, [1, 3]);
    assert.deepEqual(arr(ops.mean(x, [0, 1])), [16 / 6].map(Math.fround));
    assert.deepEqual(arr(ops.max(x, 1)), [5, 3]);
    assert.deepEqual(arr(ops.argmax(x, 1)), [1, 2]);
    assert.equal(ops.argmax(x, 1).dtype, "i32");
  }));

Deno.test("matmul: 2-D, batched, transposed views agree with a float64 loop", () =>
  tidy(() => {
    const gen = new Generator(3);
    const a = ops.randn([2, 4, 5], gen), b = ops.randn([2, 6, 5], gen);
    const c = ops.matmul(a, ops.transpose(b));
    const A = a.dataSync(), B = b.dataSync(), C = c.dataSync();
    for (let n = 0; n < 2; n++) {
      for (let i = 0; i < 4; i++) {
        for (let j = 0; j < 6; j++) {
          let s = 0;
          for (let k = 0; k < 5; k++) s += A[n * 20 + i * 5 + k] * B[n * 30 + j * 5 + k];
          assert.ok(Math.abs(C[n * 24 + i * 6 + j] - s) < 1e-5);
        }
      }
    }
  }));

Deno.test("tidy disposes temporaries and keeps what it returns", () => {
  const before = liveStorages();
  const kept = tidy(() => {
    const a = ops.ones([4]);
    const b = ops.add(a, 1);
    ops.mul(b, b);
    return b;
  });
  assert.equal(liveStorages(), before + 1);
  assert.deepEqual(arr(kept), [2, 2, 2, 2]);
  kept.dispose();
  assert.equal(liveStorages(), before);
});

Deno.test("training-style loop returns the live-storage count to its start", () => {
  const w = ops.randn([3, 3], new Generator(1)).keep().requireGrad();
  const before = liveStorages();
  for (let i = 0; i < 3; i++) {
    tidy(() => {
      const x = ops.randn([2, 3], new Generator(i));
      const loss = ops.sum(ops.tanh(ops.matmul(x, w)));
      backward(loss);
    });
    w.grad!.dispose();
    w.grad = null;
  }
  assert.equal(liveStorages(), before);
  w.dispose();
});

Deno.test("gradients accumulate over two backward calls", () => {
  const w = ops.tensor([1, 2], [2]).requireGrad();
  for (let i = 0; i < 2; i++) tidy(() => backward(ops.sum(ops.mul(w, w))));
  assert.deepEqual(arr(w.grad!), [4, 8]);
  w.grad!.dispose();
  w.dispose();
});

Deno.test("noGrad records no graph", () =>
  tidy(() => {
    const w = ops.tensor([1, 2], [2]).requireGrad();
    const y = noGrad(() => ops.mul(w, 3));
    assert.equal(y.requiresGrad, false);
    assert.equal(y.node, null);
  }));

Deno.test("same seed gives the same random numbers; different seeds differ", () =>
  tidy(() => {
    const a = arr(ops.randn([5], new Generator(7)));
    const b = arr(ops.randn([5], new Generator(7)));
    const c = arr(ops.randn([5], new Generator(8)));
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  }));

Deno.test("bad input gives clear errors naming the op and shapes", () =>
  tidy(() => {
    assert.throws(
      () => ops.add(ops.zeros([2, 3]), ops.zeros([4])),
      /add: shapes \[2, 3\] and \[4\] cannot be broadcast/,
    );
    assert.throws(
      () => ops.matmul(ops.zeros([2, 3]), ops.zeros([4, 5])),
      /matmul: inner dimensions differ: \[2, 3\] @ \[4, 5\]/,
    );
    assert.throws(
      () => ops.add(ops.zeros([2]), ops.zeros([2], { dtype: "i32" })),
      /add: dtype mismatch/,
    );
    assert.throws(
      () => ops.embedding(ops.zeros([4, 2]), ops.tensor([0, 9], [2], { dtype: "i32" })),
      /9/,
    );
    assert.throws(() => ops.reshape(ops.zeros([6]), [4, 2]), /reshape: cannot reshape \[6\]/);
    assert.throws(
      () => ops.conv2d(ops.zeros([1, 3, 4, 4]), ops.zeros([2, 2, 3, 3])),
      /conv2d: input \[1, 3, 4, 4\] and weight \[2, 2, 3, 3\]/,
    );
    assert.throws(
      () => ops.slice(ops.zeros([3]), 0, 1, 5),
      /slice: range 1:5 is outside axis 0 of size 3/,
    );
    assert.throws(
      () => ops.crossEntropy(ops.zeros([2, 3]), ops.tensor([0], [1], { dtype: "i32" })),
      /crossEntropy/,
    );
    const t = ops.zeros([2]);
    t.dispose();
    assert.throws(() => ops.add(t, 1), /used after dispose/);
  }));

Deno.test("indexSelect and scatterAdd (closed form)", () =>
  tidy(() => {
    const x = ops.tensor([1, 2, 3, 4, 5, 6], [3, 2]);
    const ids = ops.tensor([2, 0, 2], [3], { dtype: "i32" });
    assert.deepEqual(arr(ops.indexSelect(x, ids)), [5, 6, 1, 2, 5, 6]);
    assert.deepEqual(arr(ops.scatterAdd(x, ids, 4)), [3, 4, 0, 0, 6, 8, 0, 0]);
  }));
