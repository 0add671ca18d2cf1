/**
 * Layer norm over rows and group norm over (N, C, HW), forward and backward.
 *
 * Statistics take one workgroup per row (or per (n, group)) with a two-pass mean and
 * variance. Per-column weight/bias gradients are summed in row chunks, then the chunks
 * are reduced with the generic reduction, so no thread walks a whole column alone.
 */

import type { GpuStorage } from "./buffers.ts";
import type { GpuContext } from "./context.ts";
import type { BindingDecl, KernelDef } from "./kernel.ts";
import { reduce } from "./reduce.ts";
import { f32, GROUP_INDEX, layout, rowWorkgroup, u32, workgroupReduce } from "./wgsl.ts";

interface Stats {
  y: GpuStorage;
  mean: GpuStorage;
  rstd: GpuStorage;
}
interface Grads {
  dx: GpuStorage;
  dweight: GpuStorage;
  dbias: GpuStorage;
}

function expectLength(op: string, what: string, s: GpuStorage | null, n: number): void {
  if (s && s.length !== n) {
    throw new Error(`${op}: ${what} has ${s.length} elements, expected ${n}`);
  }
}

/**
 * Normalise `count` segments of `len` contiguous elements. `channelOf` maps an element's
 * position j within its segment (and the segment index) to the index of its weight.
 */
function normForward(
  ctx: GpuContext,
  op: string,
  x: GpuStorage,
  w: GpuStorage | null,
  b: GpuStorage | null,
  count: number,
  len: number,
  eps: number,
  channelOf: string,
  extra: Record<string, number>,
): Stats {
  const y = ctx.alloc("f32", count * len, false, op);
  const mean = ctx.alloc("f32", count, false, op);
  const rstd = ctx.alloc("f32", count, false, op);
  const wg = rowWorkgroup(ctx.wg1d, len);
  const bindings: BindingDecl[] = [{ name: "x", element: "f32", access: "read" }];
  if (w) bindings.push({ name: "w", element: "f32", access: "read" });
  if (b) bindings.push({ name: "b", element: "f32", access: "read" });
  bindings.push(
    { name: "y", element: "f32", access: "read_write" },
    { name: "mean_out", element: "f32", access: "read_write" },
    { name: "rstd_out", element: "f32", access: "read_write" },
  );
  let value = "(x[base + j] - mu) * r";
  if (w) value = `${value} * w[${channelOf}]`;
  if (b) value = `${value} + b[${channelOf}]`;
  const def: KernelDef = {
    name: `${op}${w ? "_w" : ""}${b ? "_b" : ""}`,
    params: layout(u32("count"), u32("len"), f32("eps"), u32("C"), u32("HW"), u32("cpg")),
    bindings,
    workgroupSize: [wg],
    workgroupBytes: wg * 4,
    helpers: workgroupReduce(wg),
    body: `
  let seg = ${GROUP_INDEX};
  if (seg >= P.count) { return; }
  let base = seg * P.len;
  var s = 0.0;
  for (var j = lindex; j < P.len; j = j + ${wg}u) { s = s + x[base + j]; }
  let mu = wg_sum_a(s, lindex) / f32(P.len);
  var q = 0.0;
  for (var j = lindex; j < P.len; j = j + ${wg}u) { let d = x[base + j] - mu; q = q + d * d; }
  let r = 1.0 / sqrt(wg_sum_a(q, lindex) / f32(P.len) + P.eps);
  for (var j = lindex; j < P.len; j = j + ${wg}u) { y[base + j] = ${value}; }
  if (lindex == 0u) { mean_out[seg] = mu; rstd_out[seg] = r; }`,
  };
  const storages = [x, ...(w ? [w] : []), ...(b ? [b] : []), y, mean, rstd];
  ctx.dispatch(
    def,
    { count, len, eps, C: 0, HW: 1, cpg: 1, ...extra },
    storages,
    ctx.grid(count, def.name),
  );
  return { y, mean, rstd };
}

/** dx for normalised segments: dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy w. */
function normBackwardInput(
  ctx: GpuContext,
  op: string,
  x: GpuStorage,
  w: GpuStorage | null,
  mean: GpuStorage,
  rstd: GpuStorage,
  dy: GpuStorage,
  count: number,
  len: number,
  channelOf: string,
  extra: Record<string, number>,
): GpuStorage {
  const dx = ctx.alloc("f32", count * len, false, op);
  const wg = rowWorkgroup(ctx.wg1d, len);
  const bindings: BindingDecl[] = [
    { name: "x", element: "f32", access: "read" },
    ...(w ? [{ name: "w", element: "f32" as const, access: "read" as const }] : []),
    { name: "mean", element: "f32", access: "read" },
    { name: "rstd", element: "f32", access: "read" },
    { name: "dy", element: "f32", access: "read" },
    { name: "dx", element: "f32", access: "read_write" },
  ];
  const g = w ? `dy[base + j] * w[${channelOf}]` : "dy[base + j]";
  const def: KernelDef = {
    name: `${op}_dx${w ? "_w" : ""}`,
    params: layout(u32("count"), u32("len"), u32("C"), u32("HW"), u32("cpg")),
    bindings,
    workgroupSize: [wg],
    workgroupBytes: 2 * wg * 4,
    helpers: workgroupReduce(wg, "a") + workgroupReduce(wg, "b"),
    body: `
  let seg = ${GROUP_INDEX};
  if (seg >= P.count) { return; }
  let base = seg * P.len;
  let mu = mean[seg];
  let r = rstd[seg];
  var s1 = 0.0;
  var s2 = 0.0;
  for (var j = lindex; j < P.len; j = j + ${wg}u) {
    let gj = ${g};
    s1 = s1 + gj;
    s2 = s2 + gj * (x[base + j] - mu) * r;
  }
  let mg = wg_sum_a(s1, lindex) / f32(P.len);
  let mgx = wg_sum_b(s2, lindex) / f32(P.len);
  for (var j = lindex; j < P.len; j = j + ${wg}u) {
    let xhat = (x[base + j] - mu) * r;
    dx[base + j] = r * (${g} - mg - xhat * mgx);
  }`,
  };
  const storages = [x, ...(w ? [w] : []), mean, rstd, dy, dx];
  ctx.dispatch(
    def,
    { count, len, C: 0, HW: 1, cpg: 1, ...extra },
    storages,
    ctx.grid(count, def.name),
  );
  return dx;
}

export function layerNorm(
  ctx: GpuContext,
  x: GpuStorage,
  w: GpuStorage | null,
  b: GpuStorage | null,
  rows: number,
  cols: number,
  eps: number,
): Stats {
  expectLength("layerNorm", "x", x, rows * cols);
  expectLength("layerNorm", "weight", w, cols);
  expectLength("layerNorm", "bias", b, cols);
  return normForward(ctx, "layerNorm", x, w, b, rows, cols, eps, "j", {});
}

export function layerNormBackward(
  ctx: GpuContext,
  x: GpuStorage,
  w: GpuStorage | null,
  mean: GpuStorage,
  rstd: GpuStorage,
  dy: GpuStorage,
  rows: number,
  cols: number,
): Grads {
  expectLength("layerNormBackward", "x", x, rows * cols);
  expectLength("layerNormBackward", "dy", dy, rows * cols);
  expectLength("layerNormBackward", "weight", w, cols);
  const dx = normBackwardInput(ctx, "layerNormBackward", x, w, mean, rstd, dy, rows, cols, "j", {});
  // Column sums of dy*xhat and dy over row chunks, then over chunks.
  const chunkRows = 64;
  const chunks = Math.max(1, Math.ceil(rows / chunkRows));
  const partW = ctx.alloc("f32", chunks * cols, false, "layerNormBackward");
  const partB = ctx.alloc("f32", chunks * cols, false, "layerNormBackward");
  const wg = ctx.wg1d;
  const def: KernelDef = {
    name: "layerNormBackward_params",
    params: layout(u32("rows"), u32("cols"), u32("chunkRows")),
    bindings: [
      { name: "x", element: "f32", access: "read" },
      { name: "mean", element: "f32", access: "read" },
      { name: "rstd", element: "f32", access: "read" },
      { name: "dy", element: "f32", access: "read" },
      { name: "pw", element: "f32", access: "read_write" },
      { name: "pb", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    body: `
  let c = wid.x * ${wg}u + lid.x;
  let chunk = wid.y;
  if (c >= P.cols) { return; }
  let r0 = chunk * P.chunkRows;
  let r1 = min(r0 + P.chunkRows, P.rows);
  var sw = 0.0;
  var sb = 0.0;
  for (var r = r0; r < r1; r = r + 1u) {
    let g = dy[r * P.cols + c];
    sw = sw + g * (x[r * P.cols + c] - mean[r]) * rstd[r];
    sb = sb + g;
  }
  pw[chunk * P.cols + c] = sw;
  pb[chunk * P.cols + c] = sb;`,
  };
  ctx.dispatch(def, { rows, cols, chunkRows }, [x, mean, rstd, dy, partW, partB], [
    Math.ceil(cols / wg),
    chunks,
  ]);
  const dweight = reduce(ctx, "sum", partW, 1, chunks, cols);
  const dbias = reduce(ctx, "sum", partB, 1, chunks, cols);
  ctx.release(partW);
  ctx.release(partB);
  return { dx, dweight, dbias };
}

function groupChecks(op: string, C: number, groups: number): number {
  if (groups <= 0 || C % groups !== 0) {
    throw new Error(`${op}: ${C} channels do not split into ${groups} groups`);
  }
  return C / groups;
}

export function groupNorm(
  ctx: GpuContext,
  x: GpuStorage,
  w: GpuStorage | null,
  b: GpuStorage | null,
  N: number,
  C: number,
  HW: number,
  groups: number,
  eps: number,
): Stats {
  const cpg = groupChecks("groupNorm", C, groups);
  expectLength("groupNorm", "x", x, N * C * HW);
  expectLength("groupNorm", "weight", w, C);
  expectLength("groupNorm", "bias", b, C);
  // Segment (n, g) holds channels g*cpg .. g*cpg+cpg-1 of sample n, contiguous.
  const channelOf = "(seg % (P.C / P.cpg)) * P.cpg + j / P.HW";
  return normForward(ctx, "groupNorm", x, w, b, N * groups, cpg * HW, eps, channelOf, {
    C,
    HW,
    cpg,
  });
}

export function groupNormBackward(
  ctx: GpuContext,
  x: GpuStorage,
  w: GpuStorage | null,
  mean: GpuStorage,
  rstd: GpuStorage,
  dy: GpuStorage,
  N: number,
  C: number,
  HW: number,
  groups: number,
): Grads {
  const cpg = groupChecks("groupNormBackward", C, groups);
  expectLength("groupNormBackward", "x", x, N * C * HW);
  expectLength("groupNormBackward", "dy", dy, N * C * HW);
  const channelOf = "(seg % (P.C / P.cpg)) * P.cpg + j / P.HW";
  const dx = normBackwardInput(
    ctx,
    "groupNormBackward",
    x,
    w,
    mean,
    rstd,
    dy,
    N * groups,
    cpg * HW,
    channelOf,
    { C, HW, cpg },
  );
  // Per channel: one workgroup sums dy*xhat and dy over (n, hw).
  const dweight = ctx.alloc("f32", C, false, "groupNormBackward");
  const dbias = ctx.alloc("f32", C, false, "groupNormBackward");
  const wg = rowWorkgroup(ctx.wg1d, N * HW);
  const def: KernelDef = {
    name: "groupNormBackward_params",
    params: layout(u32("N"), u32("C"), u32("HW"), u32("cpg")),
    bindings: [
      { name: "x", element: "f32", access: "read" },
      { name: "mean", element: "f32", access: "read" },
      { name: "rstd", element: "f32", access: "read" },
      { name: "dy", element: "f32", access: "read" },
      { name: "dw", element: "f32", access: "read_write" },
      { name: "db", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    workgroupBytes: 2 * wg * 4,
    helpers: workgroupReduce(wg, "a") + workgroupReduce(wg, "b"),
    body: `
  let c = ${GROUP_INDEX};
  if (c >= P.C) { return; }
  let groups = P.C / P.cpg;
  var sw = 0.0;
  var sb = 0.0;
  for (var t = lindex; t < P.N * P.HW; t = t + ${wg}u) {
    let n = t / P.HW;
    let i = (n * P.C + c) * P.HW + t % P.HW;
    let seg = n * groups + c / P.cpg;
    let g = dy[i];
    sw = sw + g * (x[i] - mean[seg]) * rstd[seg];
    sb = sb + g;
  }
  sw = wg_sum_a(sw, lindex);
  sb = wg_sum_b(sb, lindex);
  if (lindex == 0u) { dw[c] = sw; db[c] = sb; }`,
  };
  ctx.dispatch(def, { N, C, HW, cpg }, [x, mean, rstd, dy, dweight, dbias], ctx.grid(C, def.name));
  return { dx, dweight, dbias };
}
