/**
 * ops.fusedLinear (residual + scale * act(x w^T + bias)): without autograd one backend
 * call, which must agree with the composed linear, gelu, mul and add (1e-6 relative: the
 * same float32 GEMM and GELU kernel, then the epilogue rounds as the separate ops do, up to
 * fused multiply-adds in the JIT); under autograd the composition itself (gradients:
 * tests/ops_grad_test.ts).
 */

import { expect, it } from "./lib/test.ts";
import { noGrad } from "../core/autograd.ts";
import * as ops from "../core/ops/mod.ts";
import { Rng } from "../core/random.ts";
import { liveStorages, type Tensor, tidy } from "../core/tensor.ts";

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, label: string) {
  expect(a.length, label).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    expect(Math.abs(a[i] - b[i]), `${label}[${i}]: ${a[i]} vs ${b[i]}`).toBeLessThanOrEqual(
      tol * (1 + Math.abs(b[i])),
    );
  }
}

it("fusedLinear: fused (no grad) matches linear, gelu, mul and add, for every combination", () => {
  const before = liveStorages();
  tidy(() => {
    const g = (shape: number[], seed: number) => ops.randn(shape, new Rng(seed));
    const x = g([2, 7, 12], 1),
      w = g([10, 12], 2),
      bias = g([10], 3),
      scale = g([10], 4),
      res = g([2, 7, 10], 5);
    const composed = (
      x: Tensor,
      b: Tensor | null,
      act: boolean,
      s: Tensor | null,
      r: Tensor | null,
    ) => {
      let y = ops.linear(x, w, b);
      if (act) y = ops.gelu(y);
      if (s) y = ops.mul(y, s);
      return r ? ops.add(r, y) : y;
    };
    for (let mask = 0; mask < 16; mask++) {
      const [b, act, s, r] = [
        mask & 1 ? bias : null,
        !!(mask & 2),
        mask & 4 ? scale : null,
        mask & 8 ? res : null,
      ];
      const fused = noGrad(() =>
        ops.fusedLinear(x, w, b, { activation: act ? "gelu" : undefined, scale: s, residual: r })
      );
      close(
        fused.dataSync(),
        composed(x, b, act, s, r).dataSync(),
        1e-6,
        `bias=${!!b} gelu=${act} scale=${!!s} residual=${!!r}`,
      );
    }
    // A strided input (a transposed view) is made dense first.
    const xt = ops.transpose(g([2, 12, 7], 6), 1, 2);
    const fused = noGrad(() => ops.fusedLinear(xt, w, bias, { scale, residual: res }));
    close(fused.dataSync(), composed(xt, bias, false, scale, res).dataSync(), 1e-6, "view");
  });
  expect(liveStorages(), "no storage leaks").toBe(before);
});

it("fusedLinear names mismatched shapes", () => {
  tidy(() => {
    const x = ops.zeros([3, 4]), w = ops.zeros([5, 4]);
    expect(() => ops.fusedLinear(x, w, null, { scale: ops.zeros([4]) })).toThrow(
      /fusedLinear: scale \[4\] does not match 5 output features/,
    );
    expect(() => ops.fusedLinear(x, w, null, { residual: ops.zeros([3, 4]) })).toThrow(
      /fusedLinear: residual \[3, 4\] is not the output shape \[3, 5\]/,
    );
    expect(() => ops.fusedLinear(x, ops.zeros([5, 3]), null)).toThrow(
      /fusedLinear: input \[3, 4\], weight \[5, 3\]/,
    );
  });
});
