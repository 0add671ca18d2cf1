/**
 * Nearest / bilinear / bicubic resizing of (planes, H, W) and its backward.
 *
 * Resizing is separable: each axis is a small sparse matrix (per output position, the
 * source taps and their weights). The taps are worked out on the host with PyTorch's
 * coordinate rules, rounded to f32 at the same steps as the CPU backend, and uploaded as
 * a compressed-row table. One kernel then computes
 *   y[p, a, b] = sum_(i, wi) in rowH[a]  wi * sum_(j, wj) in rowW[b]  wj * x[p, i, j].
 * The backward is the same kernel run on the transposed tables, so it gathers instead of
 * scattering: no atomics, deterministic sums.
 */

import { type ResizeArgs, ShapeError } from "../../backend.ts";
import { axisTaps as cpuAxisTaps } from "../cpu/resize.ts";
import type { GpuStorage } from "./buffers.ts";
import type { GpuContext } from "./context.ts";
import type { KernelDef } from "./kernel.ts";
import { layout, threadIndex, u32 } from "./wgsl.ts";

/** Compressed rows: row r has entries ptr[r] .. ptr[r+1]-1 of (index, weight). */
interface Csr {
  ptr: number[];
  index: number[];
  weight: number[];
}

/** Per output position along one axis, its (source index, weight) taps: the CPU backend's. */
function axisTaps(
  a: ResizeArgs,
  inSize: number,
  outSize: number,
  scale: number,
): [number, number][][] {
  const t = cpuAxisTaps(a, inSize, outSize, scale);
  return Array.from(
    { length: outSize },
    (_, o) =>
      Array.from({ length: t.taps }, (_, k): [number, number] => [
        t.index[o * t.taps + k],
        t.weight[o * t.taps + k],
      ]),
  );
}

function forwardCsr(taps: [number, number][][]): Csr {
  const csr: Csr = { ptr: [0], index: [], weight: [] };
  for (const row of taps) {
    for (const [i, w] of row) {
      csr.index.push(i);
      csr.weight.push(w);
    }
    csr.ptr.push(csr.index.length);
  }
  return csr;
}

/** The adjoint: for each source position, the outputs that read it and with what weight. */
function transposeCsr(taps: [number, number][][], inSize: number): Csr {
  const rows: [number, number][][] = Array.from({ length: inSize }, () => []);
  taps.forEach((row, o) => {
    for (const [i, w] of row) rows[i].push([o, w]);
  });
  return forwardCsr(rows);
}

function checkArgs(a: ResizeArgs): void {
  for (const [k, v] of Object.entries({ inH: a.inH, inW: a.inW, outH: a.outH, outW: a.outW })) {
    if (!Number.isInteger(v) || v < 1) {
      throw new ShapeError("resize", `${k} must be a positive integer, got ${v}`);
    }
  }
}

function separable(
  ctx: GpuContext,
  op: string,
  src: GpuStorage,
  planes: number,
  srcH: number,
  srcW: number,
  h: Csr,
  w: Csr,
): GpuStorage {
  const rowsH = h.ptr.length - 1;
  const rowsW = w.ptr.length - 1;
  const n = planes * rowsH * rowsW;
  const out = ctx.alloc("f32", n, false, op);
  if (n === 0) return out;
  // One i32 and one f32 table: [ptrH, idxH, ptrW, idxW] and [wH, wW].
  const ints = Int32Array.from([...h.ptr, ...h.index, ...w.ptr, ...w.index]);
  const floats = Float32Array.from([...h.weight, ...w.weight]);
  const tabI = ctx.fromHost(ints);
  const tabF = ctx.fromHost(floats);
  const offIdxH = h.ptr.length;
  const offPtrW = offIdxH + h.index.length;
  const offIdxW = offPtrW + w.ptr.length;
  const wg = ctx.wg1d;
  const def: KernelDef = {
    name: "resize_separable",
    params: layout(
      u32("n"),
      u32("rowsH"),
      u32("rowsW"),
      u32("srcH"),
      u32("srcW"),
      u32("offIdxH"),
      u32("offPtrW"),
      u32("offIdxW"),
      u32("offWW"),
    ),
    bindings: [
      { name: "src", element: "f32", access: "read" },
      { name: "tabI", element: "i32", access: "read" },
      { name: "tabF", element: "f32", access: "read" },
      { name: "out", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    body: `
  let i = ${threadIndex(wg)};
  if (i >= P.n) { return; }
  let b = i % P.rowsW;
  let a = (i / P.rowsW) % P.rowsH;
  let plane = i / (P.rowsW * P.rowsH);
  let w0 = u32(tabI[P.offPtrW + b]);
  let w1 = u32(tabI[P.offPtrW + b + 1u]);
  var acc = 0.0;
  for (var e = u32(tabI[a]); e < u32(tabI[a + 1u]); e = e + 1u) {
    let row = (plane * P.srcH + u32(tabI[P.offIdxH + e])) * P.srcW;
    var inner = 0.0;
    for (var f = w0; f < w1; f = f + 1u) {
      inner = inner + tabF[P.offWW + f] * src[row + u32(tabI[P.offIdxW + f])];
    }
    acc = acc + tabF[e] * inner;
  }
  out[i] = acc;`,
  };
  ctx.dispatch(
    def,
    {
      n,
      rowsH,
      rowsW,
      srcH,
      srcW,
      offIdxH,
      offPtrW,
      offIdxW,
      offWW: h.weight.length,
    },
    [src, tabI, tabF, out],
    ctx.grid1d(n, def.name),
  );
  ctx.release(tabI);
  ctx.release(tabF);
  return out;
}

export function resize(ctx: GpuContext, x: GpuStorage, a: ResizeArgs): GpuStorage {
  checkArgs(a);
  if (x.length !== a.planes * a.inH * a.inW) {
    throw new ShapeError(
      "resize",
      `x has ${x.length} elements, expected ${a.planes}x${a.inH}x${a.inW}`,
    );
  }
  const h = forwardCsr(axisTaps(a, a.inH, a.outH, a.scaleH));
  const w = forwardCsr(axisTaps(a, a.inW, a.outW, a.scaleW));
  return separable(ctx, "resize", x, a.planes, a.inH, a.inW, h, w);
}

export function resizeBackward(ctx: GpuContext, dy: GpuStorage, a: ResizeArgs): GpuStorage {
  checkArgs(a);
  if (dy.length !== a.planes * a.outH * a.outW) {
    throw new ShapeError(
      "resizeBackward",
      `dy has ${dy.length} elements, expected ${a.planes}x${a.outH}x${a.outW}`,
    );
  }
  const h = transposeCsr(axisTaps(a, a.inH, a.outH, a.scaleH), a.inH);
  const w = transposeCsr(axisTaps(a, a.inW, a.outW, a.scaleW), a.inW);
  return separable(ctx, "resizeBackward", dy, a.planes, a.outH, a.outW, h, w);
}
