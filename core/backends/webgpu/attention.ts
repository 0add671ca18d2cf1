/**
 * Scaled dot-product attention, q: (B,H,Tq,D), k and v: (B,H,Tk,D), with an optional
 * causal mask (key j visible to query i iff j <= i + queryOffset, the KV-cache case).
 *
 * Forward: a workgroup owns QB query rows of one (batch, head), one row per thread. Keys
 * and values stream through workgroup memory in blocks of KB; each thread scores its row
 * against the block, then folds the block into a running (max, sum, output) — the online
 * softmax — so no (Tq, Tk) matrix exists. The row log-sum-exp is kept for the backward.
 *
 * Backward (FlashAttention's recomputation, P = exp(scale q·k - lse)):
 *   delta_i = dO_i · O_i
 *   dq_i    = scale Σ_j P_ij (dO_i·v_j - delta_i) k_j        (per query row)
 *   dv_j    = Σ_i P_ij dO_i ;  dk_j = scale Σ_i P_ij (dO_i·v_j - delta_i) q_i   (per key row)
 * Both passes gather, so there are no atomics.
 */

import { type AttentionArgs, ShapeError } from "../../backend.ts";
import type { GpuStorage } from "./buffers.ts";
import type { GpuContext } from "./context.ts";
import type { KernelDef } from "./kernel.ts";
import { f32, i32, layout, NEG_INF, u32 } from "./wgsl.ts";

const ROWS = 64;

const PARAMS = layout(u32("Tq"), u32("Tk"), f32("scale"), u32("causal"), i32("offset"));

function params(a: AttentionArgs) {
  return { Tq: a.Tq, Tk: a.Tk, scale: a.scale, causal: a.causal ? 1 : 0, offset: a.queryOffset };
}

/** Keys visible to query row i: a prefix [0, visible(i)). */
const VISIBLE_WGSL = `
fn visible(i: u32) -> u32 {
  if (P.causal == 0u) { return P.Tk; }
  return u32(clamp(i32(i) + P.offset + 1, 0, i32(P.Tk)));
}`;

function check(op: string, a: AttentionArgs, named: Record<string, [GpuStorage, number]>): void {
  for (const [name, [s, n]] of Object.entries(named)) {
    if (s.length !== n) {
      throw new ShapeError(
        op,
        `${name} has ${s.length} elements, expected ${n}: args=${JSON.stringify(a)}`,
      );
    }
  }
}

/** Key-block size so that `arrays` blocks of (KB, D) floats fit in workgroup memory. */
function blockSize(ctx: GpuContext, D: number, arrays: number, op: string): number {
  const kb = Math.min(
    32,
    Math.floor(ctx.limits.maxComputeWorkgroupStorageSize / (arrays * D * 4 + 16)),
  );
  if (kb < 1) {
    throw new ShapeError(
      op,
      `headDim ${D} does not fit in ${ctx.limits.maxComputeWorkgroupStorageSize} bytes of workgroup memory`,
    );
  }
  return kb;
}

function rowThreads(ctx: GpuContext): number {
  return Math.min(ROWS, ctx.wg1d);
}

export function attention(
  ctx: GpuContext,
  q: GpuStorage,
  k: GpuStorage,
  v: GpuStorage,
  a: AttentionArgs,
): { out: GpuStorage; lse: GpuStorage } {
  const { Tq, Tk, headDim: D } = a;
  const BH = a.batch * a.heads;
  check("attention", a, { q: [q, BH * Tq * D], k: [k, BH * Tk * D], v: [v, BH * Tk * D] });
  const out = ctx.alloc("f32", BH * Tq * D, false, "attention");
  const lse = ctx.alloc("f32", BH * Tq, false, "attention");
  const QB = rowThreads(ctx);
  const KB = blockSize(ctx, D, 2, "attention");
  const def: KernelDef = {
    name: `attention_D${D}`,
    params: PARAMS,
    bindings: [
      { name: "q", element: "f32", access: "read" },
      { name: "k", element: "f32", access: "read" },
      { name: "v", element: "f32", access: "read" },
      { name: "out", element: "f32", access: "read_write" },
      { name: "lse", element: "f32", access: "read_write" },
    ],
    workgroupSize: [QB],
    workgroupBytes: 2 * KB * D * 4,
    helpers: `${VISIBLE_WGSL}
var<workgroup> Ks: array<f32, ${KB * D}>;
var<workgroup> Vs: array<f32, ${KB * D}>;`,
    body: `
  let bh = wid.y;
  let i = wid.x * ${QB}u + lindex;
  let live = i < P.Tq;
  let qBase = (bh * P.Tq + min(i, P.Tq - 1u)) * ${D}u;
  let kvBase = bh * P.Tk * ${D}u;
  let vis = select(0u, visible(i), live);
  // Keys any row of this workgroup can see (uniform, so whole blocks are skipped).
  let lastRow = min(wid.x * ${QB}u + ${QB - 1}u, P.Tq - 1u);
  let kEnd = visible(lastRow);
  var qr: array<f32, ${D}>;
  var acc: array<f32, ${D}>;
  for (var d = 0u; d < ${D}u; d = d + 1u) { qr[d] = q[qBase + d] * P.scale; acc[d] = 0.0; }
  var m = ${NEG_INF};
  var l = 0.0;
  var sc: array<f32, ${KB}>;
  for (var j0 = 0u; j0 < kEnd; j0 = j0 + ${KB}u) {
    for (var e = lindex; e < ${KB * D}u; e = e + ${QB}u) {
      let j = j0 + e / ${D}u;
      let inside = j < P.Tk;
      Ks[e] = select(0.0, k[kvBase + min(j, P.Tk - 1u) * ${D}u + e % ${D}u], inside);
      Vs[e] = select(0.0, v[kvBase + min(j, P.Tk - 1u) * ${D}u + e % ${D}u], inside);
    }
    workgroupBarrier();
    var bmax = ${NEG_INF};
    for (var jj = 0u; jj < ${KB}u; jj = jj + 1u) {
      var s = ${NEG_INF};
      if (j0 + jj < vis) {
        s = 0.0;
        for (var d = 0u; d < ${D}u; d = d + 1u) { s = fma(qr[d], Ks[jj * ${D}u + d], s); }
      }
      sc[jj] = s;
      bmax = max(bmax, s);
    }
    if (bmax > ${NEG_INF}) {
      let mNew = max(m, bmax);
      let corr = exp(m - mNew);
      l = l * corr;
      for (var d = 0u; d < ${D}u; d = d + 1u) { acc[d] = acc[d] * corr; }
      for (var jj = 0u; jj < ${KB}u; jj = jj + 1u) {
        if (j0 + jj < vis) {
          let p = exp(sc[jj] - mNew);
          l = l + p;
          for (var d = 0u; d < ${D}u; d = d + 1u) { acc[d] = fma(p, Vs[jj * ${D}u + d], acc[d]); }
        }
      }
      m = mNew;
    }
    workgroupBarrier();
  }
  if (live) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < ${D}u; d = d + 1u) { out[qBase + d] = acc[d] * inv; }
    lse[bh * P.Tq + i] = select(${NEG_INF}, m + log(l), l > 0.0);
  }`,
  };
  dispatchRows(ctx, def, params(a), [q, k, v, out, lse], Math.ceil(Tq / QB), BH);
  return { out, lse };
}

function dispatchRows(
  ctx: GpuContext,
  def: KernelDef,
  p: ReturnType<typeof params>,
  s: GpuStorage[],
  blocks: number,
  BH: number,
): void {
  if (blocks === 0 || BH === 0) return;
  ctx.dispatch(def, p, s, [blocks, BH]);
}

export function attentionBackward(
  ctx: GpuContext,
  q: GpuStorage,
  k: GpuStorage,
  v: GpuStorage,
  out: GpuStorage,
  lse: GpuStorage,
  dout: GpuStorage,
  a: AttentionArgs,
): { dq: GpuStorage; dk: GpuStorage; dv: GpuStorage } {
  const { Tq, Tk, headDim: D } = a;
  const BH = a.batch * a.heads;
  check("attentionBackward", a, {
    q: [q, BH * Tq * D],
    k: [k, BH * Tk * D],
    v: [v, BH * Tk * D],
    out: [out, BH * Tq * D],
    lse: [lse, BH * Tq],
    dout: [dout, BH * Tq * D],
  });
  const R = rowThreads(ctx);
  const f = (name: string) => ({ name, element: "f32" as const, access: "read" as const });
  const w = (name: string) => ({ name, element: "f32" as const, access: "read_write" as const });

  // delta_i = dO_i · O_i, one thread per query row.
  const delta = ctx.alloc("f32", BH * Tq, false, "attentionBackward");
  ctx.dispatch(
    {
      name: `attention_delta_D${D}`,
      params: layout(u32("rows")),
      bindings: [f("out"), f("dout"), w("delta")],
      workgroupSize: [R],
      body: `
  let r = (wid.y * nwg.x + wid.x) * ${R}u + lindex;
  if (r >= P.rows) { return; }
  var s = 0.0;
  for (var d = 0u; d < ${D}u; d = d + 1u) { s = fma(out[r * ${D}u + d], dout[r * ${D}u + d], s); }
  delta[r] = s;`,
    },
    { rows: BH * Tq },
    [out, dout, delta],
    ctx.grid1d(BH * Tq, "attention_delta", R),
  );

  // dq: per query row, keys stream through workgroup memory.
  const dq = ctx.alloc("f32", BH * Tq * D, false, "attentionBackward");
  const KB = blockSize(ctx, D, 2, "attentionBackward");
  const dqDef: KernelDef = {
    name: `attention_dq_D${D}`,
    params: PARAMS,
    bindings: [f("q"), f("k"), f("v"), f("lse"), f("dout"), f("delta"), w("dq")],
    workgroupSize: [R],
    workgroupBytes: 2 * KB * D * 4,
    helpers: `${VISIBLE_WGSL}
var<workgroup> Ks: array<f32, ${KB * D}>;
var<workgroup> Vs: array<f32, ${KB * D}>;`,
    body: `
  let bh = wid.y;
  let i = wid.x * ${R}u + lindex;
  let live = i < P.Tq;
  let row = bh * P.Tq + min(i, P.Tq - 1u);
  let qBase = row * ${D}u;
  let kvBase = bh * P.Tk * ${D}u;
  let vis = select(0u, visible(i), live);
  let kEnd = visible(min(wid.x * ${R}u + ${R - 1}u, P.Tq - 1u));
  let rowLse = lse[row];
  let rowDelta = delta[row];
  var qr: array<f32, ${D}>;
  var dor: array<f32, ${D}>;
  var g: array<f32, ${D}>;
  for (var d = 0u; d < ${D}u; d = d + 1u) { qr[d] = q[qBase + d]; dor[d] = dout[qBase + d]; g[d] = 0.0; }
  for (var j0 = 0u; j0 < kEnd; j0 = j0 + ${KB}u) {
    for (var e = lindex; e < ${KB * D}u; e = e + ${R}u) {
      let j = min(j0 + e / ${D}u, P.Tk - 1u);
      Ks[e] = k[kvBase + j * ${D}u + e % ${D}u];
      Vs[e] = v[kvBase + j * ${D}u + e % ${D}u];
    }
    workgroupBarrier();
    for (var jj = 0u; jj < ${KB}u; jj = jj + 1u) {
      if (j0 + jj < vis) {
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < ${D}u; d = d + 1u) {
          s = fma(qr[d], Ks[jj * ${D}u + d], s);
          dp = fma(dor[d], Vs[jj * ${D}u + d], dp);
        }
        let ds = exp(s * P.scale - rowLse) * (dp - rowDelta) * P.scale;
        for (var d = 0u; d < ${D}u; d = d + 1u) { g[d] = fma(ds, Ks[jj * ${D}u + d], g[d]); }
      }
    }
    workgroupBarrier();
  }
  if (live) {
    for (var d = 0u; d < ${D}u; d = d + 1u) { dq[qBase + d] = g[d]; }
  }`,
  };
  dispatchRows(ctx, dqDef, params(a), [q, k, v, lse, dout, delta, dq], Math.ceil(Tq / R), BH);

  // dk, dv: per key row, queries (with their lse and delta) stream through workgroup memory.
  const dk = ctx.alloc("f32", BH * Tk * D, false, "attentionBackward");
  const dv = ctx.alloc("f32", BH * Tk * D, false, "attentionBackward");
  const QB = blockSize(ctx, D, 2, "attentionBackward");
  const dkvDef: KernelDef = {
    name: `attention_dkv_D${D}`,
    params: PARAMS,
    bindings: [f("q"), f("k"), f("v"), f("lse"), f("dout"), f("delta"), w("dk"), w("dv")],
    workgroupSize: [R],
    workgroupBytes: 2 * QB * D * 4 + 2 * QB * 4,
    helpers: `${VISIBLE_WGSL}
var<workgroup> Qs: array<f32, ${QB * D}>;
var<workgroup> Ds: array<f32, ${QB * D}>;
var<workgroup> Ls: array<f32, ${QB}>;
var<workgroup> Es: array<f32, ${QB}>;
// First query row that can see key j.
fn first_query(j: u32) -> u32 {
  if (P.causal == 0u) { return 0u; }
  return u32(clamp(i32(j) - P.offset, 0, i32(P.Tq)));
}`,
    body: `
  let bh = wid.y;
  let j = wid.x * ${R}u + lindex;
  let live = j < P.Tk;
  let kBase = (bh * P.Tk + min(j, P.Tk - 1u)) * ${D}u;
  let qRowBase = bh * P.Tq;
  // Queries that can see this key: [first, Tq); the workgroup starts at its first key's.
  let first = select(P.Tq, first_query(j), live);
  let start = first_query(wid.x * ${R}u);
  var kr: array<f32, ${D}>;
  var vr: array<f32, ${D}>;
  var gk: array<f32, ${D}>;
  var gv: array<f32, ${D}>;
  for (var d = 0u; d < ${D}u; d = d + 1u) { kr[d] = k[kBase + d]; vr[d] = v[kBase + d]; gk[d] = 0.0; gv[d] = 0.0; }
  for (var i0 = (start / ${QB}u) * ${QB}u; i0 < P.Tq; i0 = i0 + ${QB}u) {
    for (var e = lindex; e < ${QB * D}u; e = e + ${R}u) {
      let r = min(i0 + e / ${D}u, P.Tq - 1u);
      Qs[e] = q[(qRowBase + r) * ${D}u + e % ${D}u];
      Ds[e] = dout[(qRowBase + r) * ${D}u + e % ${D}u];
    }
    for (var e = lindex; e < ${QB}u; e = e + ${R}u) {
      let r = min(i0 + e, P.Tq - 1u);
      Ls[e] = lse[qRowBase + r];
      Es[e] = delta[qRowBase + r];
    }
    workgroupBarrier();
    for (var ii = 0u; ii < ${QB}u; ii = ii + 1u) {
      let i = i0 + ii;
      if (i >= first && i < P.Tq) {
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < ${D}u; d = d + 1u) {
          s = fma(Qs[ii * ${D}u + d], kr[d], s);
          dp = fma(Ds[ii * ${D}u + d], vr[d], dp);
        }
        let p = exp(s * P.scale - Ls[ii]);
        let ds = p * (dp - Es[ii]) * P.scale;
        for (var d = 0u; d < ${D}u; d = d + 1u) {
          gv[d] = fma(p, Ds[ii * ${D}u + d], gv[d]);
          gk[d] = fma(ds, Qs[ii * ${D}u + d], gk[d]);
        }
      }
    }
    workgroupBarrier();
  }
  if (live) {
    for (var d = 0u; d < ${D}u; d = d + 1u) { dk[kBase + d] = gk[d]; dv[kBase + d] = gv[d]; }
  }`,
  };
  dispatchRows(ctx, dkvDef, params(a), [q, k, v, lse, dout, delta, dk, dv], Math.ceil(Tk / R), BH);
  ctx.release(delta);
  return { dq, dk, dv };
}
