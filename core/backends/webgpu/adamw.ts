/**
 * AdamW in place over flat parameter / gradient / moment buffers (PyTorch semantics:
 * decoupled decay p *= 1 - lr·wd, then the bias-corrected Adam step). param, m and v are
 * bound read_write once each; a buffer may not be bound twice with different access.
 */

import type { AdamWArgs } from "../../backend.ts";
import type { GpuStorage } from "./buffers.ts";
import type { GpuContext } from "./context.ts";
import type { KernelDef } from "./kernel.ts";
import { f32, layout, threadIndex, u32 } from "./wgsl.ts";

export function adamw(
  ctx: GpuContext,
  param: GpuStorage,
  grad: GpuStorage,
  m: GpuStorage,
  v: GpuStorage,
  a: AdamWArgs,
): void {
  const n = param.length;
  for (const [what, s] of [["grad", grad], ["m", m], ["v", v]] as const) {
    if (s.length !== n) throw new Error(`adamw: ${what} has ${s.length} elements, param has ${n}`);
  }
  const distinct = new Set([param.buffer, grad.buffer, m.buffer, v.buffer]);
  if (distinct.size !== 4) {
    throw new Error("adamw: param, grad, m and v must be four different storages");
  }
  // Scalars folded on the host in f64.
  const bc1 = 1 - Math.pow(a.beta1, a.step);
  const bc2 = 1 - Math.pow(a.beta2, a.step);
  const wg = ctx.wg1d;
  const def: KernelDef = {
    name: "adamw",
    params: layout(
      u32("n"),
      f32("decay"),
      f32("beta1"),
      f32("beta2"),
      f32("one_m_beta1"),
      f32("one_m_beta2"),
      f32("step_size"),
      f32("inv_sqrt_bc2"),
      f32("eps"),
      f32("grad_scale"),
    ),
    bindings: [
      { name: "param", element: "f32", access: "read_write" },
      { name: "grad", element: "f32", access: "read" },
      { name: "m", element: "f32", access: "read_write" },
      { name: "v", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    body: `
  let i = ${threadIndex(wg)};
  if (i >= P.n) { return; }
  let g = grad[i] * P.grad_scale;
  let mi = P.beta1 * m[i] + P.one_m_beta1 * g;
  let vi = P.beta2 * v[i] + P.one_m_beta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  let denom = sqrt(vi) * P.inv_sqrt_bc2 + P.eps;
  param[i] = param[i] * P.decay - P.step_size * mi / denom;`,
  };
  ctx.dispatch(
    def,
    {
      n,
      decay: 1 - a.lr * a.weightDecay,
      beta1: a.beta1,
      beta2: a.beta2,
      one_m_beta1: 1 - a.beta1,
      one_m_beta2: 1 - a.beta2,
      step_size: a.lr / bc1,
      inv_sqrt_bc2: 1 / Math.sqrt(bc2),
      eps: a.eps,
      grad_scale: a.gradScale,
    },
    [param, grad, m, v],
    ctx.grid1d(n, def.name),
  );
}
