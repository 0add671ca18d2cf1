/**
 * 2-D convolution (NCHW input, OIHW weight, groups, stride, zero padding) lowered to the
 * tiled matrix product:
 *
 *   forward          y_g (Og, OHW)      = W_g (Og, Cg·kk) · cols_g      (+ bias per row)
 *   backward input   dcols_g            = W_gᵀ · dy_g, then col2im (a gather per pixel)
 *   backward weight  dW_g (Og, Cg·kk)  += dy_g · cols_gᵀ               (per image)
 *
 * cols is im2col of a chunk of images and a band of output rows, laid out
 * (image, Cg·kk, rows·outW) and sized to stay under a memory budget. A 1x1, stride-1,
 * unpadded convolution reads x directly as the column matrix.
 */

import { type Conv2dArgs, ShapeError } from "../../backend.ts";
import type { GpuStorage } from "./buffers.ts";
import type { GpuContext } from "./context.ts";
import type { KernelDef } from "./kernel.ts";
import { gemm } from "./matmul.ts";
import { layout, threadIndex, u32 } from "./wgsl.ts";

/** Column-buffer budget in floats (128 MiB), further capped by the binding limit. */
const COLS_BUDGET = 1 << 25;

interface Plan {
  Cg: number;
  Og: number;
  kk: number;
  HW: number;
  OHW: number;
  pointwise: boolean;
  /** Images per chunk and output rows per band. */
  images: number;
  rows: number;
}

function plan(ctx: GpuContext, a: Conv2dArgs, op: string): Plan {
  const describe = `args=${JSON.stringify(a)}`;
  if (a.groups < 1 || a.inC % a.groups !== 0 || a.outC % a.groups !== 0) {
    throw new ShapeError(op, `channels must divide by groups: ${describe}`);
  }
  const expectH = Math.floor((a.inH + 2 * a.padH - a.kH) / a.strideH) + 1;
  const expectW = Math.floor((a.inW + 2 * a.padW - a.kW) / a.strideW) + 1;
  if (a.outH !== expectH || a.outW !== expectW || a.outH < 1 || a.outW < 1) {
    throw new ShapeError(
      op,
      `output ${a.outH}x${a.outW}, expected ${expectH}x${expectW}: ${describe}`,
    );
  }
  const Cg = a.inC / a.groups;
  const kk = a.kH * a.kW;
  const OHW = a.outH * a.outW;
  const budget = Math.min(COLS_BUDGET, Math.floor(ctx.limits.maxStorageBufferBindingSize / 4));
  const perImage = Cg * kk * OHW;
  let images = Math.max(1, Math.min(a.batch, Math.floor(budget / perImage)));
  let rows = a.outH;
  if (perImage > budget) {
    images = 1;
    rows = Math.floor(budget / (Cg * kk * a.outW));
    if (rows < 1) {
      throw new ShapeError(
        op,
        `one output row needs ${Cg * kk * a.outW} column floats, budget ${budget}`,
      );
    }
  }
  return {
    Cg,
    Og: a.outC / a.groups,
    kk,
    HW: a.inH * a.inW,
    OHW,
    pointwise: kk === 1 && a.strideH === 1 && a.strideW === 1 && a.padH === 0 && a.padW === 0,
    images,
    rows,
  };
}

function expectLength(op: string, what: string, s: GpuStorage, n: number, a: Conv2dArgs): void {
  if (s.length !== n) {
    throw new ShapeError(
      op,
      `${what} has ${s.length} elements, expected ${n}: args=${JSON.stringify(a)}`,
    );
  }
}

const GEOMETRY = [
  u32("inC"),
  u32("inH"),
  u32("inW"),
  u32("outW"),
  u32("kH"),
  u32("kW"),
  u32("sH"),
  u32("sW"),
  u32("pH"),
  u32("pW"),
  u32("Cg"),
  u32("group"),
  u32("n0"),
  u32("oh0"),
  u32("width"),
  u32("count"),
];

function geometry(
  a: Conv2dArgs,
  p: Plan,
  group: number,
  n0: number,
  oh0: number,
  width: number,
  count: number,
) {
  return {
    inC: a.inC,
    inH: a.inH,
    inW: a.inW,
    outW: a.outW,
    kH: a.kH,
    kW: a.kW,
    sH: a.strideH,
    sW: a.strideW,
    pH: a.padH,
    pW: a.padW,
    Cg: p.Cg,
    group,
    n0,
    oh0,
    width,
    count,
  };
}

/** cols[n, r, j] for r = (c, kh, kw) and j = (oh - oh0)·outW + ow; zero outside the image. */
function im2col(
  ctx: GpuContext,
  x: GpuStorage,
  cols: GpuStorage,
  a: Conv2dArgs,
  p: Plan,
  g: number,
  n0: number,
  nb: number,
  oh0: number,
  width: number,
): void {
  const count = nb * p.Cg * p.kk * width;
  const wg = ctx.wg1d;
  const def: KernelDef = {
    name: "conv_im2col",
    params: layout(...GEOMETRY),
    bindings: [
      { name: "x", element: "f32", access: "read" },
      { name: "cols", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    body: `
  let i = ${threadIndex(wg)};
  if (i >= P.count) { return; }
  let j = i % P.width;
  let r = (i / P.width) % (P.Cg * P.kH * P.kW);
  let n = i / (P.width * P.Cg * P.kH * P.kW);
  let c = r / (P.kH * P.kW);
  let kh = (r / P.kW) % P.kH;
  let kw = r % P.kW;
  let oh = P.oh0 + j / P.outW;
  let ow = j % P.outW;
  let ih = i32(oh * P.sH + kh) - i32(P.pH);
  let iw = i32(ow * P.sW + kw) - i32(P.pW);
  var v = 0.0;
  if (ih >= 0 && ih < i32(P.inH) && iw >= 0 && iw < i32(P.inW)) {
    v = x[(((P.n0 + n) * P.inC + P.group * P.Cg + c) * P.inH + u32(ih)) * P.inW + u32(iw)];
  }
  cols[i] = v;`,
  };
  ctx.dispatch(
    def,
    geometry(a, p, g, n0, oh0, width, count),
    [x, cols],
    ctx.grid1d(count, def.name),
  );
}

/** dx[n, c, ih, iw] += the dcols entries that im2col read from that pixel, within the band. */
function col2im(
  ctx: GpuContext,
  dcols: GpuStorage,
  dx: GpuStorage,
  a: Conv2dArgs,
  p: Plan,
  g: number,
  n0: number,
  nb: number,
  oh0: number,
  width: number,
): void {
  const count = nb * p.Cg * p.HW;
  const wg = ctx.wg1d;
  const def: KernelDef = {
    name: "conv_col2im",
    params: layout(...GEOMETRY),
    bindings: [
      { name: "dcols", element: "f32", access: "read" },
      { name: "dx", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    body: `
  let i = ${threadIndex(wg)};
  if (i >= P.count) { return; }
  let iw = i % P.inW;
  let ih = (i / P.inW) % P.inH;
  let c = (i / (P.inW * P.inH)) % P.Cg;
  let n = i / (P.inW * P.inH * P.Cg);
  let bandRows = P.width / P.outW;
  var s = 0.0;
  for (var kh = 0u; kh < P.kH; kh = kh + 1u) {
    let th = i32(ih + P.pH) - i32(kh);
    if (th < 0 || u32(th) % P.sH != 0u) { continue; }
    let oh = u32(th) / P.sH;
    if (oh < P.oh0 || oh >= P.oh0 + bandRows) { continue; }
    for (var kw = 0u; kw < P.kW; kw = kw + 1u) {
      let tw = i32(iw + P.pW) - i32(kw);
      if (tw < 0 || u32(tw) % P.sW != 0u) { continue; }
      let ow = u32(tw) / P.sW;
      if (ow >= P.outW) { continue; }
      let r = (c * P.kH + kh) * P.kW + kw;
      s = s + dcols[(n * P.Cg * P.kH * P.kW + r) * P.width + (oh - P.oh0) * P.outW + ow];
    }
  }
  let di = (((P.n0 + n) * P.inC + P.group * P.Cg + c) * P.inH + ih) * P.inW + iw;
  dx[di] = dx[di] + s;`,
  };
  ctx.dispatch(
    def,
    geometry(a, p, g, n0, oh0, width, count),
    [dcols, dx],
    ctx.grid1d(count, def.name),
  );
}

/** Visit each (group, image chunk, row band) with its column-matrix width. */
function forEachBlock(
  a: Conv2dArgs,
  p: Plan,
  visit: (g: number, n0: number, nb: number, oh0: number, width: number) => void,
): void {
  for (let n0 = 0; n0 < a.batch; n0 += p.images) {
    const nb = Math.min(p.images, a.batch - n0);
    for (let oh0 = 0; oh0 < a.outH; oh0 += p.rows) {
      const width = Math.min(p.rows, a.outH - oh0) * a.outW;
      for (let g = 0; g < a.groups; g++) visit(g, n0, nb, oh0, width);
    }
  }
}

export function conv2d(
  ctx: GpuContext,
  x: GpuStorage,
  w: GpuStorage,
  bias: GpuStorage | null,
  a: Conv2dArgs,
): GpuStorage {
  const p = plan(ctx, a, "conv2d");
  expectLength("conv2d", "x", x, a.batch * a.inC * p.HW, a);
  expectLength("conv2d", "w", w, a.outC * p.Cg * p.kk, a);
  if (bias) expectLength("conv2d", "bias", bias, a.outC, a);
  const y = ctx.alloc("f32", a.batch * a.outC * p.OHW, false, "conv2d");
  const K = p.Cg * p.kk;
  const biasPart = (
    g: number,
  ) => (bias ? { bias, biasMode: "row" as const, biasOffset: g * p.Og } : {});
  if (p.pointwise) {
    for (let g = 0; g < a.groups; g++) {
      gemm(ctx, w, x, y, {
        batch: a.batch,
        M: p.Og,
        N: p.OHW,
        K,
        transA: false,
        transB: false,
        strideA: 0,
        strideB: a.inC * p.HW,
        strideC: a.outC * p.OHW,
        offA: g * p.Og * K,
        offB: g * p.Cg * p.HW,
        offC: g * p.Og * p.OHW,
        ...biasPart(g),
      });
    }
    return y;
  }
  const cols = ctx.alloc("f32", p.images * K * p.rows * a.outW, false, "conv2d cols");
  forEachBlock(a, p, (g, n0, nb, oh0, width) => {
    im2col(ctx, x, cols, a, p, g, n0, nb, oh0, width);
    gemm(ctx, w, cols, y, {
      batch: nb,
      M: p.Og,
      N: width,
      K,
      transA: false,
      transB: false,
      strideA: 0,
      strideB: K * width,
      strideC: a.outC * p.OHW,
      ldc: p.OHW,
      offA: g * p.Og * K,
      offC: (n0 * a.outC + g * p.Og) * p.OHW + oh0 * a.outW,
      ...biasPart(g),
    });
  });
  ctx.release(cols);
  return y;
}

export function conv2dBackwardInput(
  ctx: GpuContext,
  dy: GpuStorage,
  w: GpuStorage,
  a: Conv2dArgs,
): GpuStorage {
  const p = plan(ctx, a, "conv2dBackwardInput");
  expectLength("conv2dBackwardInput", "dy", dy, a.batch * a.outC * p.OHW, a);
  expectLength("conv2dBackwardInput", "w", w, a.outC * p.Cg * p.kk, a);
  const K = p.Cg * p.kk;
  if (p.pointwise) {
    const dx = ctx.alloc("f32", a.batch * a.inC * p.HW, false, "conv2dBackwardInput");
    for (let g = 0; g < a.groups; g++) {
      gemm(ctx, w, dy, dx, {
        batch: a.batch,
        M: p.Cg,
        N: p.HW,
        K: p.Og,
        transA: true,
        transB: false,
        strideA: 0,
        strideB: a.outC * p.OHW,
        strideC: a.inC * p.HW,
        offA: g * p.Og * K,
        offB: g * p.Og * p.OHW,
        offC: g * p.Cg * p.HW,
      });
    }
    return dx;
  }
  const dx = ctx.alloc("f32", a.batch * a.inC * p.HW, true, "conv2dBackwardInput");
  const dcols = ctx.alloc("f32", p.images * K * p.rows * a.outW, false, "conv2dBackwardInput cols");
  forEachBlock(a, p, (g, n0, nb, oh0, width) => {
    gemm(ctx, w, dy, dcols, {
      batch: nb,
      M: K,
      N: width,
      K: p.Og,
      transA: true,
      transB: false,
      strideA: 0,
      strideB: a.outC * p.OHW,
      ldb: p.OHW,
      strideC: K * width,
      offA: g * p.Og * K,
      offB: (n0 * a.outC + g * p.Og) * p.OHW + oh0 * a.outW,
    });
    col2im(ctx, dcols, dx, a, p, g, n0, nb, oh0, width);
  });
  ctx.release(dcols);
  return dx;
}

export function conv2dBackwardWeight(
  ctx: GpuContext,
  dy: GpuStorage,
  x: GpuStorage,
  a: Conv2dArgs,
): GpuStorage {
  const p = plan(ctx, a, "conv2dBackwardWeight");
  expectLength("conv2dBackwardWeight", "dy", dy, a.batch * a.outC * p.OHW, a);
  expectLength("conv2dBackwardWeight", "x", x, a.batch * a.inC * p.HW, a);
  const K = p.Cg * p.kk;
  const dw = ctx.alloc("f32", a.outC * K, true, "conv2dBackwardWeight");
  if (p.pointwise) {
    for (let n = 0; n < a.batch; n++) {
      for (let g = 0; g < a.groups; g++) {
        gemm(ctx, dy, x, dw, {
          batch: 1,
          M: p.Og,
          N: p.Cg,
          K: p.HW,
          transA: false,
          transB: true,
          strideA: 0,
          strideB: 0,
          offA: (n * a.outC + g * p.Og) * p.OHW,
          offB: (n * a.inC + g * p.Cg) * p.HW,
          offC: g * p.Og * K,
          accumulate: true,
        });
      }
    }
    return dw;
  }
  const cols = ctx.alloc("f32", p.images * K * p.rows * a.outW, false, "conv2dBackwardWeight cols");
  forEachBlock(a, p, (g, n0, nb, oh0, width) => {
    im2col(ctx, x, cols, a, p, g, n0, nb, oh0, width);
    for (let n = 0; n < nb; n++) {
      gemm(ctx, dy, cols, dw, {
        batch: 1,
        M: p.Og,
        N: K,
        K: width,
        transA: false,
        transB: true,
        strideA: 0,
        strideB: 0,
        lda: p.OHW,
        ldb: width,
        offA: ((n0 + n) * a.outC + g * p.Og) * p.OHW + oh0 * a.outW,
        offB: n * K * width,
        offC: g * p.Og * K,
        accumulate: true,
      });
    }
  });
  ctx.release(cols);
  return dw;
}
