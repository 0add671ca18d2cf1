/**
 * Reductions over the middle axis of (outer, axis, inner), and the sum of squares used
 * for gradient clipping. Many outputs: one thread per output walking the axis. Few
 * outputs with a long axis: one workgroup per output and a tree reduction, so a
 * full-tensor sum does not run on a single thread.
 */

import type { ReduceOp } from "../../backend.ts";
import type { GpuStorage } from "./buffers.ts";
import type { GpuContext } from "./context.ts";
import type { KernelDef } from "./kernel.ts";
import { GROUP_INDEX, layout, NEG_INF, POS_INF, threadIndex, u32 } from "./wgsl.ts";

const REDUCE_WG = 256;

function initAndStep(op: ReduceOp, t: "f32" | "i32"): { init: string; better: string } {
  const big = t === "f32" ? POS_INF : "2147483647";
  const small = t === "f32" ? NEG_INF : "(-2147483647 - 1)";
  switch (op) {
    case "sum":
      return { init: t === "f32" ? "0.0" : "0", better: "" };
    case "max":
    case "argmax":
      return { init: small, better: "v > best" };
    case "min":
    case "argmin":
      return { init: big, better: "v < best" };
  }
}

export function reduce(
  ctx: GpuContext,
  op: ReduceOp,
  x: GpuStorage,
  outer: number,
  axis: number,
  inner: number,
): GpuStorage {
  if (outer * axis * inner !== x.length) {
    throw new Error(
      `reduce ${op}: (${outer}, ${axis}, ${inner}) does not match ${x.length} elements`,
    );
  }
  const outputs = outer * inner;
  const isArg = op === "argmax" || op === "argmin";
  const out = ctx.alloc(isArg ? "i32" : x.dtype, outputs, false, `reduce_${op}`);
  if (outputs === 0) return out;
  const t = x.dtype;
  const { init, better } = initAndStep(op, t);
  // Accumulate: sums add; max/min keep the first best value and its index.
  const step = op === "sum" ? "best = best + v;" : `if (${better}) { best = v; bi = j; }`;
  const result = isArg ? "bi" : "best";

  const perWorkgroup = outputs < 2048 && axis >= 512;
  if (!perWorkgroup) {
    const wg = ctx.wg1d;
    const def: KernelDef = {
      name: `reduce_${op}_${t}`,
      params: layout(u32("outputs"), u32("axis"), u32("inner")),
      bindings: [
        { name: "x", element: t, access: "read" },
        { name: "out", element: isArg ? "i32" : t, access: "read_write" },
      ],
      workgroupSize: [wg],
      body: `
  let o = ${threadIndex(wg)};
  if (o >= P.outputs) { return; }
  let base = (o / P.inner) * P.axis * P.inner + o % P.inner;
  var best: ${t} = ${init};
  var bi: i32 = 0;
  for (var jj = 0u; jj < P.axis; jj = jj + 1u) {
    let j = i32(jj);
    let v = x[base + jj * P.inner];
    ${step}
  }
  out[o] = ${result};`,
    };
    ctx.dispatch(def, { outputs, axis, inner }, [x, out], ctx.grid1d(outputs, def.name));
    return out;
  }

  // One workgroup per output: strided partial results, then a tree over (value, index).
  const wg = Math.min(REDUCE_WG, ctx.wg1d);
  const combine = op === "sum"
    ? "vals[l] = vals[l] + vals[l + s];"
    : `let v = vals[l + s]; let best = vals[l];
       if (${better} || (v == best && idxs[l + s] < idxs[l])) { vals[l] = v; idxs[l] = idxs[l + s]; }`;
  const def: KernelDef = {
    name: `reduce_wg_${op}_${t}`,
    params: layout(u32("outputs"), u32("axis"), u32("inner")),
    bindings: [
      { name: "x", element: t, access: "read" },
      { name: "out", element: isArg ? "i32" : t, access: "read_write" },
    ],
    workgroupSize: [wg],
    workgroupBytes: wg * 8,
    helpers: `var<workgroup> vals: array<${t}, ${wg}>;\nvar<workgroup> idxs: array<i32, ${wg}>;`,
    body: `
  let o = ${GROUP_INDEX};
  if (o >= P.outputs) { return; }
  let base = (o / P.inner) * P.axis * P.inner + o % P.inner;
  var best: ${t} = ${init};
  var bi: i32 = ${isArg ? "2147483647" : "0"};
  for (var jj = lindex; jj < P.axis; jj = jj + ${wg}u) {
    let j = i32(jj);
    let v = x[base + jj * P.inner];
    ${step}
  }
  vals[lindex] = best;
  idxs[lindex] = bi;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    let l = lindex;
    if (l < s) { ${combine} }
    workgroupBarrier();
  }
  if (lindex == 0u) { out[o] = ${
      isArg ? "select(idxs[0], 0, idxs[0] == 2147483647)" : "vals[0]"
    }; }`,
  };
  ctx.dispatch(def, { outputs, axis, inner }, [x, out], ctx.grid(outputs, def.name));
  return out;
}

/** Sum of x² as a 1-element f32 storage: per-workgroup partials, then one more reduction. */
export function sumSquares(ctx: GpuContext, x: GpuStorage): GpuStorage {
  const wg = Math.min(REDUCE_WG, ctx.wg1d);
  const groups = Math.max(1, Math.min(1024, Math.ceil(x.length / (wg * 16))));
  const partial = ctx.alloc("f32", groups, false, "sumSquares");
  const def: KernelDef = {
    name: "sumSquares_partial",
    params: layout(u32("n"), u32("groups")),
    bindings: [
      { name: "x", element: "f32", access: "read" },
      { name: "partial", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    workgroupBytes: wg * 4,
    helpers: `var<workgroup> acc: array<f32, ${wg}>;`,
    body: `
  var s = 0.0;
  for (var j = wid.x * ${wg}u + lindex; j < P.n; j = j + P.groups * ${wg}u) {
    let v = x[j];
    s = s + v * v;
  }
  acc[lindex] = s;
  workgroupBarrier();
  for (var h = ${wg / 2}u; h > 0u; h = h >> 1u) {
    if (lindex < h) { acc[lindex] = acc[lindex] + acc[lindex + h]; }
    workgroupBarrier();
  }
  if (lindex == 0u) { partial[wid.x] = acc[0]; }`,
  };
  ctx.dispatch(def, { n: x.length, groups }, [x, partial], [groups]);
  const total = reduceSumFew(ctx, partial, groups);
  ctx.release(partial);
  return total;
}

function reduceSumFew(ctx: GpuContext, partial: GpuStorage, n: number): GpuStorage {
  // Always the workgroup path, whatever n is: force it through a one-output reduction.
  const wg = Math.min(REDUCE_WG, ctx.wg1d);
  const out = ctx.alloc("f32", 1, false, "sumSquares");
  const def: KernelDef = {
    name: "sum_all_small",
    params: layout(u32("n")),
    bindings: [
      { name: "x", element: "f32", access: "read" },
      { name: "out", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    workgroupBytes: wg * 4,
    helpers: `var<workgroup> acc: array<f32, ${wg}>;`,
    body: `
  var s = 0.0;
  for (var j = lindex; j < P.n; j = j + ${wg}u) { s = s + x[j]; }
  acc[lindex] = s;
  workgroupBarrier();
  for (var h = ${wg / 2}u; h > 0u; h = h >> 1u) {
    if (lindex < h) { acc[lindex] = acc[lindex] + acc[lindex + h]; }
    workgroupBarrier();
  }
  if (lindex == 0u) { out[0] = acc[0]; }`,
  };
  ctx.dispatch(def, { n }, [partial, out], [1]);
  return out;
}
