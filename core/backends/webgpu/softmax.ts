/**
 * Row-wise softmax / log-softmax over (rows, cols), one workgroup per row: a max pass,
 * a sum-of-exponentials pass, then the write, each a strided loop plus a tree reduction.
 */

import type { GpuStorage } from "./buffers.ts";
import type { GpuContext } from "./context.ts";
import type { KernelDef } from "./kernel.ts";
import { GROUP_INDEX, layout, NEG_INF, rowWorkgroup, u32, workgroupReduce } from "./wgsl.ts";

function checkRows(op: string, s: GpuStorage, rows: number, cols: number): void {
  if (s.length !== rows * cols) {
    throw new Error(`${op}: storage of ${s.length} is not (${rows}, ${cols})`);
  }
}

export function softmax(
  ctx: GpuContext,
  x: GpuStorage,
  rows: number,
  cols: number,
  log: boolean,
): GpuStorage {
  checkRows("softmax", x, rows, cols);
  const y = ctx.alloc("f32", rows * cols, false, "softmax");
  const wg = rowWorkgroup(ctx.wg1d, cols);
  const write = log ? "x[base + j] - m - log(s)" : "exp(x[base + j] - m) * inv";
  const def: KernelDef = {
    name: `softmax_${log ? "log" : "plain"}`,
    params: layout(u32("rows"), u32("cols")),
    bindings: [
      { name: "x", element: "f32", access: "read" },
      { name: "y", element: "f32", access: "read_write" },
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
  s = wg_sum_a(s, lindex);
  let inv = 1.0 / s;
  for (var j = lindex; j < P.cols; j = j + ${wg}u) { y[base + j] = ${write}; }`,
  };
  ctx.dispatch(def, { rows, cols }, [x, y], ctx.grid(rows, def.name));
  return y;
}

export function softmaxBackward(
  ctx: GpuContext,
  y: GpuStorage,
  dy: GpuStorage,
  rows: number,
  cols: number,
  log: boolean,
): GpuStorage {
  checkRows("softmaxBackward", y, rows, cols);
  checkRows("softmaxBackward", dy, rows, cols);
  const dx = ctx.alloc("f32", rows * cols, false, "softmaxBackward");
  const wg = rowWorkgroup(ctx.wg1d, cols);
  // softmax: dx = y (dy - sum(dy y)); log-softmax: dx = dy - exp(y) sum(dy).
  const term = log ? "dy[base + j]" : "dy[base + j] * y[base + j]";
  const write = log ? "dy[base + j] - exp(y[base + j]) * s" : "y[base + j] * (dy[base + j] - s)";
  const def: KernelDef = {
    name: `softmaxBackward_${log ? "log" : "plain"}`,
    params: layout(u32("rows"), u32("cols")),
    bindings: [
      { name: "y", element: "f32", access: "read" },
      { name: "dy", element: "f32", access: "read" },
      { name: "dx", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    workgroupBytes: wg * 4,
    helpers: workgroupReduce(wg),
    body: `
  let row = ${GROUP_INDEX};
  if (row >= P.rows) { return; }
  let base = row * P.cols;
  var s = 0.0;
  for (var j = lindex; j < P.cols; j = j + ${wg}u) { s = s + ${term}; }
  s = wg_sum_a(s, lindex);
  for (var j = lindex; j < P.cols; j = j + ${wg}u) { dx[base + j] = ${write}; }`,
  };
  ctx.dispatch(def, { rows, cols }, [y, dy, dx], ctx.grid(rows, def.name));
  return dx;
}
