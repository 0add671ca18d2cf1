/**
 * ops.linearResidual (residual + scale * (x w^T + bias)): without autograd one fused
 * backend call, which must agree with the composed linear, mul and add (1e-6: the same
 * float32 GEMM, then the epilogue rounds as the separate ops do, up to fused multiply-adds
 * in the JIT); under autograd the composition itself (gradients: tests/ops_grad_test.ts).
 */

import assert from "node:assert/strict";
import { noGrad } from "../core/autograd.ts";
import * as ops from "../core/ops/mod.ts";
import { Generator } from "../core/random.ts";
import { liveStorages, tidy } from "../core/tensor.ts";

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, label: string) {
  assert.equal(a.length, b.length, label);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `${label}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

Deno.test("linearResidual: fused (no grad) matches linear, mul and add; with and without bias and scale", () => {
  const before = liveStorages();
  tidy(() => {
    const g = (shape: number[], seed: number) => ops.randn(shape, new Generator(seed));
    const x = g([2, 7, 12], 1), w = g([10, 12], 2), bias = g([10], 3), scale = g([10], 4), res = g([2, 7, 10], 5);
    for (const [b, s] of [[bias, scale], [null, scale], [bias, null], [null, null]] as const) {
      const fused = noGrad(() => ops.linearResidual(x, w, b, s, res));
      const y = ops.linear(x, w, b);
      const composed = ops.add(res, s ? ops.mul(y, s) : y);
      close(fused.dataSync(), composed.dataSync(), 1e-6, `bias=${!!b} scale=${!!s}`);
    }
    // A strided input (a transposed view) is made dense first.
    const xt = ops.transpose(g([2, 12, 7], 6), 1, 2);
    const fused = noGrad(() => ops.linearResidual(xt, w, bias, scale, res));
    close(fused.dataSync(), ops.add(res, ops.mul(ops.linear(xt, w, bias), scale)).dataSync(), 1e-6, "view");
  });
  assert.equal(liveStorages(), before, "no storage leaks");
});

Deno.test("linearResidual names mismatched shapes", () => {
  tidy(() => {
    const x = ops.zeros([3, 4]), w = ops.zeros([5, 4]);
    assert.throws(() => ops.linearResidual(x, w, null, ops.zeros([4]), ops.zeros([3, 5])), /linearResidual: scale \[4\] does not match 5 output features/);
    assert.throws(() => ops.linearResidual(x, w, null, null, ops.zeros([3, 4])), /linearResidual: residual \[3, 4\] is not the output shape \[3, 5\]/);
    assert.throws(() => ops.linearResidual(x, ops.zeros([5, 3]), null, null, ops.zeros([3, 5])), /linearResidual: input \[3, 4\], weight \[5, 3\]/);
  });
});
