/**
 * Finite-difference gradient checking through the public Tensor API.
 *
 * The loss is sum(f(inputs) * w) for a fixed random w, so every output element matters.
 * Kernels run in float32, so central differences use a moderate step and the
 * comparison allows |analytic - numeric| <= atol + rtol*|numeric|.
 */

import { backward, noGrad } from "../../core/autograd.ts";
import * as ops from "../../core/ops/mod.ts";
import { Rng } from "../../core/random.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  /** Check only these input indices (others are constants, e.g. integer ids). */
  wrt?: number[];
}

export function gradcheck(
  name: string,
  f: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: GradcheckOptions = {},
): void {
  const eps = opts.eps ?? 1e-2;
  const atol = opts.atol ?? 2e-3;
  const rtol = opts.rtol ?? 2e-2;
  const wrt = opts.wrt ?? inputs.map((_, i) => i).filter((i) => inputs[i].dtype === "f32");
  const hosts = inputs.map((t) => t.dataSync().slice());

  const probe = tidy(() => noGrad(() => f(...inputs)));
  const weights = ops.randn(probe.shape as number[], new Rng(99)).keep();
  const wHost = Float64Array.from(weights.dataSync());
  probe.dispose();

  const lossAt = (vals: (Float32Array | Int32Array)[]): number =>
    tidy(() =>
      noGrad(() => {
        const ts = vals.map((v, i) =>
          ops.tensor(v, inputs[i].shape as number[], { dtype: inputs[i].dtype })
        );
        const out = f(...ts).dataSync();
        let s = 0;
        for (let i = 0; i < out.length; i++) s += out[i] * wHost[i];
        return s;
      })
    );

  const leaves = inputs.map((t, i) => {
    const l = ops.tensor(hosts[i], t.shape as number[], { dtype: t.dtype }).keep();
    if (wrt.includes(i)) l.requireGrad();
    return l;
  });
  tidy(() => {
    const out = f(...leaves);
    const loss = ops.sum(ops.mul(out, weights));
    backward(loss);
  });

  for (const i of wrt) {
    const g = leaves[i].grad;
    if (!g) throw new Error(`${name}: input ${i} received no gradient`);
    const analytic = g.dataSync();
    const x = hosts[i] as Float32Array;
    for (let j = 0; j < x.length; j++) {
      const orig = x[j];
      const plus = hosts.map((h) => h.slice());
      const minus = hosts.map((h) => h.slice());
      plus[i][j] = orig + eps;
      minus[i][j] = orig - eps;
      const numeric = (lossAt(plus) - lossAt(minus)) / (2 * eps);
      const err = Math.abs(analytic[j] - numeric);
      if (!(err <= atol + rtol * Math.abs(numeric))) {
        throw new Error(
          `${name}: d/dinput${i}[${j}] analytic ${analytic[j]} vs numeric ${numeric} (err ${err})`,
        );
      }
    }
  }
  for (const l of leaves) {
    l.grad?.dispose();
    l.dispose();
  }
  weights.dispose();
}

/** Deterministic f32 test input. */
export function randomTensor(shape: number[], seed: number, scale = 1): Tensor {
  return ops.randn(shape, new Rng(seed), scale);
}
