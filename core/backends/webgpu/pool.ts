/**
 * Average and max pooling over NCHW planes, forward and backward, with PyTorch's window
 * rules: a window starts at o*stride - pad, is cut at the padded edge (in + pad) for the
 * count_include_pad divisor, then clipped to the image. Backward kernels gather: each
 * input pixel visits the few windows that can contain it, so no atomics are needed and
 * the result is deterministic.
 */

import type { Pool2dArgs } from "../../backend.ts";
import type { GpuStorage } from "./buffers.ts";
import type { GpuContext } from "./context.ts";
import type { KernelDef } from "./kernel.ts";
import { layout, NEG_INF, threadIndex, u32 } from "./wgsl.ts";

const PARAMS = layout(
  u32("n"),
  u32("inH"),
  u32("inW"),
  u32("outH"),
  u32("outW"),
  u32("kH"),
  u32("kW"),
  u32("sH"),
  u32("sW"),
  u32("pH"),
  u32("pW"),
);

/** Window of output o along one axis: (clipped start, clipped end, padded length). */
const WINDOW_WGSL = `
fn window(o: i32, s: u32, p: u32, k: u32, n: u32) -> vec3<i32> {
  let start = o * i32(s) - i32(p);
  let end = min(start + i32(k), i32(n) + i32(p));
  return vec3<i32>(max(start, 0), min(end, i32(n)), end - start);
}
/** Outputs whose window may cover input i lie in [lo, hi]. */
fn candidates(i: i32, s: u32, p: u32, k: u32, outN: u32) -> vec2<i32> {
  let hi = min((i + i32(p)) / i32(s), i32(outN) - 1);
  let lo = max(0, (i + i32(p) - i32(k)) / i32(s));
  return vec2<i32>(lo, hi);
}`;

function values(a: Pool2dArgs, n: number) {
  return {
    n,
    inH: a.inH,
    inW: a.inW,
    outH: a.outH,
    outW: a.outW,
    kH: a.kH,
    kW: a.kW,
    sH: a.strideH,
    sW: a.strideW,
    pH: a.padH,
    pW: a.padW,
  };
}

function check(op: string, s: GpuStorage, n: number): void {
  if (s.length !== n) throw new Error(`${op}: storage has ${s.length} elements, expected ${n}`);
}

const planesOf = (a: Pool2dArgs) => a.batch * a.channels;

export function avgPool2d(ctx: GpuContext, x: GpuStorage, a: Pool2dArgs): GpuStorage {
  check("avgPool2d", x, planesOf(a) * a.inH * a.inW);
  const n = planesOf(a) * a.outH * a.outW;
  const y = ctx.alloc("f32", n, false, "avgPool2d");
  const wg = ctx.wg1d;
  const def: KernelDef = {
    name: `avgPool2d_${a.countIncludePad ? "incl" : "excl"}`,
    params: PARAMS,
    bindings: [
      { name: "x", element: "f32", access: "read" },
      { name: "y", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    helpers: WINDOW_WGSL,
    body: `
  let i = ${threadIndex(wg)};
  if (i >= P.n) { return; }
  let ow = i % P.outW;
  let oh = (i / P.outW) % P.outH;
  let plane = i / (P.outW * P.outH);
  let wh = window(i32(oh), P.sH, P.pH, P.kH, P.inH);
  let ww = window(i32(ow), P.sW, P.pW, P.kW, P.inW);
  var s = 0.0;
  for (var h = wh.x; h < wh.y; h = h + 1) {
    for (var w = ww.x; w < ww.y; w = w + 1) { s = s + x[(plane * P.inH + u32(h)) * P.inW + u32(w)]; }
  }
  let divisor = ${a.countIncludePad ? "wh.z * ww.z" : "(wh.y - wh.x) * (ww.y - ww.x)"};
  y[i] = s / f32(divisor);`,
  };
  ctx.dispatch(def, values(a, n), [x, y], ctx.grid1d(n, def.name));
  return y;
}

export function avgPool2dBackward(ctx: GpuContext, dy: GpuStorage, a: Pool2dArgs): GpuStorage {
  check("avgPool2dBackward", dy, planesOf(a) * a.outH * a.outW);
  const n = planesOf(a) * a.inH * a.inW;
  const dx = ctx.alloc("f32", n, false, "avgPool2dBackward");
  const wg = ctx.wg1d;
  const def: KernelDef = {
    name: `avgPool2dBackward_${a.countIncludePad ? "incl" : "excl"}`,
    params: PARAMS,
    bindings: [
      { name: "dy", element: "f32", access: "read" },
      { name: "dx", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    helpers: WINDOW_WGSL,
    body: `
  let i = ${threadIndex(wg)};
  if (i >= P.n) { return; }
  let iw = i32(i % P.inW);
  let ih = i32((i / P.inW) % P.inH);
  let plane = i / (P.inW * P.inH);
  let ch = candidates(ih, P.sH, P.pH, P.kH, P.outH);
  let cw = candidates(iw, P.sW, P.pW, P.kW, P.outW);
  var s = 0.0;
  for (var oh = ch.x; oh <= ch.y; oh = oh + 1) {
    let wh = window(oh, P.sH, P.pH, P.kH, P.inH);
    if (ih < wh.x || ih >= wh.y) { continue; }
    for (var ow = cw.x; ow <= cw.y; ow = ow + 1) {
      let ww = window(ow, P.sW, P.pW, P.kW, P.inW);
      if (iw < ww.x || iw >= ww.y) { continue; }
      let divisor = ${a.countIncludePad ? "wh.z * ww.z" : "(wh.y - wh.x) * (ww.y - ww.x)"};
      s = s + dy[(plane * P.outH + u32(oh)) * P.outW + u32(ow)] / f32(divisor);
    }
  }
  dx[i] = s;`,
  };
  ctx.dispatch(def, values(a, n), [dy, dx], ctx.grid1d(n, def.name));
  return dx;
}

export function maxPool2d(
  ctx: GpuContext,
  x: GpuStorage,
  a: Pool2dArgs,
): { y: GpuStorage; argmax: GpuStorage } {
  check("maxPool2d", x, planesOf(a) * a.inH * a.inW);
  const n = planesOf(a) * a.outH * a.outW;
  const y = ctx.alloc("f32", n, false, "maxPool2d");
  const argmax = ctx.alloc("i32", n, false, "maxPool2d");
  const wg = ctx.wg1d;
  const def: KernelDef = {
    name: "maxPool2d",
    params: PARAMS,
    bindings: [
      { name: "x", element: "f32", access: "read" },
      { name: "y", element: "f32", access: "read_write" },
      { name: "argmax", element: "i32", access: "read_write" },
    ],
    workgroupSize: [wg],
    helpers: WINDOW_WGSL,
    body: `
  let i = ${threadIndex(wg)};
  if (i >= P.n) { return; }
  let ow = i % P.outW;
  let oh = (i / P.outW) % P.outH;
  let plane = i / (P.outW * P.outH);
  let wh = window(i32(oh), P.sH, P.pH, P.kH, P.inH);
  let ww = window(i32(ow), P.sW, P.pW, P.kW, P.inW);
  var best = ${NEG_INF};
  var index = -1;
  for (var h = wh.x; h < wh.y; h = h + 1) {
    for (var w = ww.x; w < ww.y; w = w + 1) {
      let v = x[(plane * P.inH + u32(h)) * P.inW + u32(w)];
      if (index < 0 || v > best || (v != v && best == best)) { best = v; index = h * i32(P.inW) + w; }
    }
  }
  y[i] = best;
  argmax[i] = index;`,
  };
  ctx.dispatch(def, values(a, n), [x, y, argmax], ctx.grid1d(n, def.name));
  return { y, argmax };
}

export function maxPool2dBackward(
  ctx: GpuContext,
  dy: GpuStorage,
  argmax: GpuStorage,
  a: Pool2dArgs,
): GpuStorage {
  check("maxPool2dBackward", dy, planesOf(a) * a.outH * a.outW);
  check("maxPool2dBackward", argmax, planesOf(a) * a.outH * a.outW);
  const n = planesOf(a) * a.inH * a.inW;
  const dx = ctx.alloc("f32", n, false, "maxPool2dBackward");
  const wg = ctx.wg1d;
  const def: KernelDef = {
    name: "maxPool2dBackward",
    params: PARAMS,
    bindings: [
      { name: "dy", element: "f32", access: "read" },
      { name: "argmax", element: "i32", access: "read" },
      { name: "dx", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    helpers: WINDOW_WGSL,
    body: `
  let i = ${threadIndex(wg)};
  if (i >= P.n) { return; }
  let iw = i32(i % P.inW);
  let ih = i32((i / P.inW) % P.inH);
  let plane = i / (P.inW * P.inH);
  let me = ih * i32(P.inW) + iw;
  let ch = candidates(ih, P.sH, P.pH, P.kH, P.outH);
  let cw = candidates(iw, P.sW, P.pW, P.kW, P.outW);
  var s = 0.0;
  for (var oh = ch.x; oh <= ch.y; oh = oh + 1) {
    for (var ow = cw.x; ow <= cw.y; ow = ow + 1) {
      let o = (plane * P.outH + u32(oh)) * P.outW + u32(ow);
      if (argmax[o] == me) { s = s + dy[o]; }
    }
  }
  dx[i] = s;`,
  };
  ctx.dispatch(def, values(a, n), [dy, argmax, dx], ctx.grid1d(n, def.name));
  return dx;
}
