/**
 * Row gather, row scatter-add and per-row column pick. Scatter-add uses atomics: integer
 * atomicAdd for i32, and a compare-exchange loop on the f32 bit pattern for f32 (WGSL has
 * no float atomics). Out-of-range indices read as 0 and are skipped on scatter.
 */

import type { GpuStorage } from "./buffers.ts";
import type { GpuContext } from "./context.ts";
import type { KernelDef } from "./kernel.ts";
import { layout, threadIndex, u32 } from "./wgsl.ts";

function needI32(op: string, idx: GpuStorage): void {
  if (idx.dtype !== "i32") throw new Error(`${op}: indices must be i32, got ${idx.dtype}`);
}

export function gather(
  ctx: GpuContext,
  table: GpuStorage,
  idx: GpuStorage,
  rows: number,
  cols: number,
): GpuStorage {
  needI32("gather", idx);
  if (table.length !== rows * cols) {
    throw new Error(`gather: table of ${table.length} is not (${rows}, ${cols})`);
  }
  const n = idx.length * cols;
  const out = ctx.alloc(table.dtype, n, false, "gather");
  const wg = ctx.wg1d;
  const t = table.dtype;
  const def: KernelDef = {
    name: `gather_${t}`,
    params: layout(u32("n"), u32("rows"), u32("cols")),
    bindings: [
      { name: "table", element: t, access: "read" },
      { name: "idx", element: "i32", access: "read" },
      { name: "out", element: t, access: "read_write" },
    ],
    workgroupSize: [wg],
    body: `
  let i = ${threadIndex(wg)};
  if (i >= P.n) { return; }
  let r = idx[i / P.cols];
  if (r < 0 || u32(r) >= P.rows) { out[i] = ${t}(0); return; }
  out[i] = table[u32(r) * P.cols + i % P.cols];`,
  };
  ctx.dispatch(def, { n, rows, cols }, [table, idx, out], ctx.grid1d(n, def.name));
  return out;
}

export function scatterAdd(
  ctx: GpuContext,
  src: GpuStorage,
  idx: GpuStorage,
  rows: number,
  cols: number,
): GpuStorage {
  needI32("scatterAdd", idx);
  if (src.length !== idx.length * cols) {
    throw new Error(`scatterAdd: src of ${src.length} is not (${idx.length}, ${cols})`);
  }
  const out = ctx.alloc(src.dtype, rows * cols, true, "scatterAdd");
  const n = src.length;
  const wg = ctx.wg1d;
  const add = src.dtype === "i32" ? `atomicAdd(&out[k], v);` : `
  var old = atomicLoad(&out[k]);
  loop {
    let next = bitcast<u32>(bitcast<f32>(old) + v);
    let res = atomicCompareExchangeWeak(&out[k], old, next);
    if (res.exchanged) { break; }
    old = res.old_value;
  }`;
  const def: KernelDef = {
    name: `scatterAdd_${src.dtype}`,
    params: layout(u32("n"), u32("rows"), u32("cols")),
    bindings: [
      { name: "src", element: src.dtype, access: "read" },
      { name: "idx", element: "i32", access: "read" },
      {
        name: "out",
        element: src.dtype === "i32" ? "atomic<i32>" : "atomic<u32>",
        access: "read_write",
      },
    ],
    workgroupSize: [wg],
    body: `
  let i = ${threadIndex(wg)};
  if (i >= P.n) { return; }
  let r = idx[i / P.cols];
  if (r < 0 || u32(r) >= P.rows) { return; }
  let k = u32(r) * P.cols + i % P.cols;
  let v = src[i];
  ${add}`,
  };
  ctx.dispatch(def, { n, rows, cols }, [src, idx, out], ctx.grid1d(n, def.name));
  return out;
}

export function gatherCols(
  ctx: GpuContext,
  x: GpuStorage,
  idx: GpuStorage,
  rows: number,
  cols: number,
): GpuStorage {
  needI32("gatherCols", idx);
  if (x.length !== rows * cols) {
    throw new Error(`gatherCols: x of ${x.length} is not (${rows}, ${cols})`);
  }
  if (idx.length !== rows) throw new Error(`gatherCols: ${idx.length} indices for ${rows} rows`);
  const out = ctx.alloc(x.dtype, rows, false, "gatherCols");
  const wg = ctx.wg1d;
  const t = x.dtype;
  const def: KernelDef = {
    name: `gatherCols_${t}`,
    params: layout(u32("rows"), u32("cols")),
    bindings: [
      { name: "x", element: t, access: "read" },
      { name: "idx", element: "i32", access: "read" },
      { name: "out", element: t, access: "read_write" },
    ],
    workgroupSize: [wg],
    body: `
  let i = ${threadIndex(wg)};
  if (i >= P.rows) { return; }
  let c = idx[i];
  if (c < 0 || u32(c) >= P.cols) { out[i] = ${t}(0); return; }
  out[i] = x[i * P.cols + u32(c)];`,
  };
  ctx.dispatch(def, { rows, cols }, [x, idx, out], ctx.grid1d(rows, def.name));
  return out;
}
