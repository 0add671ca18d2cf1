/**
 * Cross-entropy with label smoothing and an ignore index, as fairseq/PyTorch define it:
 * loss = (1-eps)·(-logp[target]) + eps·mean_c(-logp_c), and 0 for ignored rows. The
 * forward keeps the log-softmax so the backward is one elementwise pass.
 */

import type { GpuStorage } from "./buffers.ts";
import type { GpuContext } from "./context.ts";
import type { KernelDef } from "./kernel.ts";
import {
  f32,
  GROUP_INDEX,
  i32,
  layout,
  NEG_INF,
  rowWorkgroup,
  threadIndex,
  u32,
  workgroupReduce,
} from "./wgsl.ts";

function check(
  op: string,
  logits: GpuStorage,
  targets: GpuStorage,
  rows: number,
  cols: number,
): void {
  if (logits.length !== rows * cols) {
    throw new Error(`${op}: logits of ${logits.length} are not (${rows}, ${cols})`);
  }
  if (targets.length !== rows) throw new Error(`${op}: ${targets.length} targets for ${rows} rows`);
  if (targets.dtype !== "i32") throw new Error(`${op}: targets must be i32, got ${targets.dtype}`);
}

export function crossEntropy(
  ctx: GpuContext,
  logits: GpuStorage,
  targets: GpuStorage,
  rows: number,
  cols: number,
  smoothing: number,
  ignoreIndex: number,
): { loss: GpuStorage; logp: GpuStorage } {
  check("crossEntropy", logits, targets, rows, cols);
  const loss = ctx.alloc("f32", rows, false, "crossEntropy");
  const logp = ctx.alloc("f32", rows * cols, false, "crossEntropy");
  const wg = rowWorkgroup(ctx.wg1d, cols);
  const def: KernelDef = {
    name: "crossEntropy",
    params: layout(u32("rows"), u32("cols"), f32("eps"), i32("ignore")),
    bindings: [
      { name: "x", element: "f32", access: "read" },
      { name: "targets", element: "i32", access: "read" },
      { name: "loss", element: "f32", access: "read_write" },
      { name: "logp", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    workgroupBytes: wg * 4,
    helpers: workgroupReduce(wg),
    body: `
  let row = ${GROUP_INDEX};
  if (row >= P.rows) { return; }
  let base = row * P.cols;
  var m = ${NEG_INF};
  for (var j = lindex; j < P.cols; j = j + ${wg}u) { m = max(m, x[base + j]); }
  m = wg_max_a(m, lindex);
  var s = 0.0;
  for (var j = lindex; j < P.cols; j = j + ${wg}u) { s = s + exp(x[base + j] - m); }
  let lse = m + log(wg_sum_a(s, lindex));
  var total = 0.0;
  for (var j = lindex; j < P.cols; j = j + ${wg}u) {
    let lp = x[base + j] - lse;
    logp[base + j] = lp;
    total = total + lp;
  }
  total = wg_sum_a(total, lindex);
  if (lindex == 0u) {
    let t = targets[row];
    if (t == P.ignore || t < 0 || u32(t) >= P.cols) {
      loss[row] = 0.0;
    } else {
      let nll = lse - x[base + u32(t)];
      loss[row] = (1.0 - P.eps) * nll - P.eps * total / f32(P.cols);
    }
  }`,
  };
  ctx.dispatch(def, { rows, cols, eps: smoothing, ignore: ignoreIndex }, [
    logits,
    targets,
    loss,
    logp,
  ], ctx.grid(rows, def.name));
  return { loss, logp };
}

export function crossEntropyBackward(
  ctx: GpuContext,
  logp: GpuStorage,
  targets: GpuStorage,
  dloss: GpuStorage,
  rows: number,
  cols: number,
  smoothing: number,
  ignoreIndex: number,
): GpuStorage {
  check("crossEntropyBackward", logp, targets, rows, cols);
  if (dloss.length !== rows) {
    throw new Error(`crossEntropyBackward: dloss has ${dloss.length}, expected ${rows}`);
  }
  const dx = ctx.alloc("f32", rows * cols, false, "crossEntropyBackward");
  const wg = ctx.wg1d;
  const def: KernelDef = {
    name: "crossEntropyBackward",
    params: layout(u32("n"), u32("cols"), f32("eps"), i32("ignore")),
    bindings: [
      { name: "logp", element: "f32", access: "read" },
      { name: "targets", element: "i32", access: "read" },
      { name: "dloss", element: "f32", access: "read" },
      { name: "dx", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    body: `
  let i = ${threadIndex(wg)};
  if (i >= P.n) { return; }
  let row = i / P.cols;
  let j = i % P.cols;
  let t = targets[row];
  if (t == P.ignore || t < 0 || u32(t) >= P.cols) { dx[i] = 0.0; return; }
  let hit = select(0.0, 1.0, u32(t) == j);
  dx[i] = dloss[row] * (exp(logp[i]) - (1.0 - P.eps) * hit - P.eps / f32(P.cols));`,
  };
  const n = rows * cols;
  ctx.dispatch(
    def,
    { n, cols, eps: smoothing, ignore: ignoreIndex },
    [logp, targets, dloss, dx],
    ctx.grid1d(n, def.name),
  );
  return dx;
}
