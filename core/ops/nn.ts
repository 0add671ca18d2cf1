/**
 * Neural-network ops with fused kernels: softmax, normalisation, embedding,
 * cross-entropy, dropout, attention, convolution, pooling and resizing.
 */

import { record } from "../autograd.ts";
import type { AttentionRows, Conv2dArgs, Pool2dArgs, ResizeMode } from "../backend.ts";
import type { Rng } from "../random.ts";
import type { Tensor } from "../tensor.ts";
import { affine, compare, div, maximum, mul } from "./elementwise.ts";
import { sum } from "./reduce.ts";
import { identity, reshape, transpose } from "./shape.ts";
import {
  dense,
  expectDtype,
  normAxis,
  sameBackend,
  ShapeError,
  shapeStr,
  withDense,
  wrap,
} from "./util.ts";

// ---------------------------------------------------------------- softmax

function softmaxImpl(x: Tensor, axis: number, log: boolean): Tensor {
  const a = normAxis(axis, x.ndim, log ? "logSoftmax" : "softmax");
  if (a !== x.ndim - 1) {
    const t = transpose(x, a, -1);
    const y = softmaxImpl(t, -1, log);
    const out = transpose(y, a, -1);
    t.dispose();
    y.dispose();
    return out;
  }
  const cols = x.shape[a];
  const rows = x.size / cols;
  const y = withDense([x], (xd) => wrap(x.backend.softmax(xd.storage, rows, cols, log), x.shape));
  return record(
    log ? "logSoftmax" : "softmax",
    y,
    [x],
    (
      g,
      [ys],
    ) => [
      withDense(
        [g],
        (gd) => wrap(g.backend.softmaxBackward(ys.storage, gd.storage, rows, cols, log), x.shape),
      ),
    ],
    [y],
  );
}

export const softmax = (x: Tensor, axis = -1): Tensor => softmaxImpl(x, axis, false);
export const logSoftmax = (x: Tensor, axis = -1): Tensor => softmaxImpl(x, axis, true);

// ---------------------------------------------------------------- normalisation

/** LayerNorm over the last axis. */
export function layerNorm(
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps = 1e-5,
): Tensor {
  const cols = x.shape[x.ndim - 1];
  for (const [p, n] of [[weight, "weight"], [bias, "bias"]] as const) {
    if (p && (p.ndim !== 1 || p.shape[0] !== cols)) {
      throw new ShapeError(
        "layerNorm",
        `${n} ${shapeStr(p.shape)} does not match the last axis of ${shapeStr(x.shape)}`,
      );
    }
  }
  const rows = x.size / cols;
  const b = x.backend;
  const xd = dense(x);
  const r0 = b.layerNorm(
    xd.storage,
    weight?.storage ?? null,
    bias?.storage ?? null,
    rows,
    cols,
    eps,
  );
  const y = wrap(r0.y, x.shape), mean = wrap(r0.mean, [rows]), rstd = wrap(r0.rstd, [rows]);
  const inputs = [x, weight, bias];
  const out = record("layerNorm", y, inputs, (g, [xs, ms, rs, ws]) => {
    const r = withDense(
      [g],
      (gd) =>
        b.layerNormBackward(
          xs.storage,
          ws ? ws.storage : null,
          ms.storage,
          rs.storage,
          gd.storage,
          rows,
          cols,
        ),
    );
    return [
      wrap(r.dx, x.shape),
      weight ? wrap(r.dweight, [cols]) : (b.release(r.dweight), null),
      bias ? wrap(r.dbias, [cols]) : (b.release(r.dbias), null),
    ];
  }, weight ? [xd, mean, rstd, weight] : [xd, mean, rstd]);
  mean.dispose();
  rstd.dispose();
  if (xd !== x) xd.dispose();
  return out;
}

/** GroupNorm over (N, C, ...) with `groups` groups of channels. */
export function groupNorm(
  x: Tensor,
  groups: number,
  weight: Tensor | null,
  bias: Tensor | null,
  eps = 1e-5,
): Tensor {
  const [N, C] = x.shape;
  if (x.ndim < 2 || C % groups !== 0) {
    throw new ShapeError(
      "groupNorm",
      `${C} channels of ${shapeStr(x.shape)} do not split into ${groups} groups`,
    );
  }
  const HW = x.size / (N * C);
  const b = x.backend;
  const xd = dense(x);
  const r0 = b.groupNorm(
    xd.storage,
    weight?.storage ?? null,
    bias?.storage ?? null,
    N,
    C,
    HW,
    groups,
    eps,
  );
  const y = wrap(r0.y, x.shape),
    mean = wrap(r0.mean, [N * groups]),
    rstd = wrap(r0.rstd, [N * groups]);
  const out = record("groupNorm", y, [x, weight, bias], (g, [xs, ms, rs, ws]) => {
    const r = withDense(
      [g],
      (gd) =>
        b.groupNormBackward(
          xs.storage,
          ws ? ws.storage : null,
          ms.storage,
          rs.storage,
          gd.storage,
          N,
          C,
          HW,
          groups,
        ),
    );
    return [
      wrap(r.dx, x.shape),
      weight ? wrap(r.dweight, [C]) : (b.release(r.dweight), null),
      bias ? wrap(r.dbias, [C]) : (b.release(r.dbias), null),
    ];
  }, weight ? [xd, mean, rstd, weight] : [xd, mean, rstd]);
  mean.dispose();
  rstd.dispose();
  if (xd !== x) xd.dispose();
  return out;
}

// ---------------------------------------------------------------- embedding and losses

/** Rows of `table` (V, D) picked by integer ids of any shape: (..., D). */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  expectDtype("embedding", ids, "i32", "ids");
  if (table.ndim !== 2) {
    throw new ShapeError("embedding", `table must be 2-D, got ${shapeStr(table.shape)}`);
  }
  const [V, D] = table.shape;
  const out = withDense(
    [table, ids],
    (td, id) => wrap(table.backend.gather(td.storage, id.storage, V, D), [...ids.shape, D]),
  );
  const idd = dense(ids);
  const result = record(
    "embedding",
    out,
    [table],
    (
      g,
      [is],
    ) => [withDense([g], (gd) => wrap(g.backend.scatterAdd(gd.storage, is.storage, V, D), [V, D]))],
    [idd],
  );
  if (idd !== ids) idd.dispose();
  return result;
}

/** Rows of x (N, ...) picked by i32 ids along axis 0: (len(ids), ...). */
export function indexSelect(x: Tensor, ids: Tensor): Tensor {
  expectDtype("indexSelect", ids, "i32", "ids");
  if (ids.ndim !== 1) {
    throw new ShapeError("indexSelect", `ids must be 1-D, got ${shapeStr(ids.shape)}`);
  }
  const rowShape = x.shape.slice(1);
  const table = reshape(x, [x.shape[0], x.size / Math.max(1, x.shape[0])]);
  const picked = embedding(table, ids);
  const out = reshape(picked, [ids.shape[0], ...rowShape]);
  table.dispose();
  picked.dispose();
  return out;
}

/** out = zeros(rows, ...) with out[ids[i]] += src[i] (index_add_ along axis 0). */
export function scatterAdd(src: Tensor, ids: Tensor, rows: number): Tensor {
  expectDtype("scatterAdd", ids, "i32", "ids");
  if (ids.ndim !== 1 || src.shape[0] !== ids.shape[0]) {
    throw new ShapeError(
      "scatterAdd",
      `src ${shapeStr(src.shape)} and ids ${shapeStr(ids.shape)}: expected (N, ...) and (N)`,
    );
  }
  const cols = src.size / Math.max(1, src.shape[0]);
  const idd = dense(ids);
  const out = withDense(
    [src],
    (sd) =>
      wrap(src.backend.scatterAdd(sd.storage, idd.storage, rows, cols), [
        rows,
        ...src.shape.slice(1),
      ]),
  );
  const result = record("scatterAdd", out, [src], (g, [is]) => [indexSelect(g, is)], [idd]);
  if (idd !== ids) idd.dispose();
  return result;
}

export interface CrossEntropyOptions {
  /** Probability mass spread uniformly over all classes (fairseq and PyTorch). */
  labelSmoothing?: number;
  ignoreIndex?: number;
  reduction?: "mean" | "sum" | "none";
}

/** Cross-entropy of logits (N, C) against i32 targets (N). */
export function crossEntropy(
  logits: Tensor,
  targets: Tensor,
  opts: CrossEntropyOptions = {},
): Tensor {
  const eps = opts.labelSmoothing ?? 0;
  const ignore = opts.ignoreIndex ?? -100;
  expectDtype("crossEntropy", targets, "i32", "targets");
  if (logits.ndim !== 2 || targets.ndim !== 1 || targets.shape[0] !== logits.shape[0]) {
    throw new ShapeError(
      "crossEntropy",
      `logits ${shapeStr(logits.shape)} and targets ${
        shapeStr(targets.shape)
      }: expected (N, C) and (N)`,
    );
  }
  const [N, C] = logits.shape;
  const b = sameBackend("crossEntropy", logits, targets);
  const t = dense(targets);
  const r = withDense([logits], (ld) => b.crossEntropy(ld.storage, t.storage, N, C, eps, ignore));
  const logp = wrap(r.logp, [N, C]);
  const rows = record(
    "crossEntropy",
    wrap(r.loss, [N]),
    [logits],
    (
      g,
      [lp, ts],
    ) => [
      withDense(
        [g],
        (gd) =>
          wrap(b.crossEntropyBackward(lp.storage, ts.storage, gd.storage, N, C, eps, ignore), [
            N,
            C,
          ]),
      ),
    ],
    [logp, t],
  );
  logp.dispose();
  if (t !== targets) t.dispose();
  const reduction = opts.reduction ?? "mean";
  if (reduction === "none") return rows;
  const total = sum(rows);
  rows.dispose();
  if (reduction === "sum") return total;
  const counted = compare("ne", targets, ignore);
  const n = maximum(sum(counted), 1);
  counted.dispose();
  const out = div(total, n);
  total.dispose();
  n.dispose();
  return out;
}

// ---------------------------------------------------------------- dropout

/** Inverted dropout with a counter-based mask drawn from `gen`. */
export function dropout(x: Tensor, p: number, gen: Rng, training = true): Tensor {
  if (!training || p === 0) return identity(x);
  if (p < 0 || p >= 1) throw new ShapeError("dropout", `probability must be in [0, 1), got ${p}`);
  const start = gen.take(x.size);
  const r = withDense([x], (xd) => x.backend.dropout(xd.storage, p, gen.seed, start));
  const mask = wrap(r.mask, x.shape);
  const out = record(
    "dropout",
    wrap(r.y, x.shape),
    [x],
    (g, [m]) => [affine(mul(g, m), 1 / (1 - p), 0)],
    [mask],
  );
  mask.dispose();
  return out;
}

// ---------------------------------------------------------------- attention

export interface AttentionOptions {
  causal?: boolean;
  scale?: number;
  /** Position of the first query among the keys (KV cache: keys before it are the past). */
  queryOffset?: number;
}

/**
 * Where a (B, H, T, D) tensor's rows sit, when the kernel can read it in place: any view
 * whose last axis is contiguous (e.g. heads sliced out of a fused qkv projection).
 */
function attentionRows(t: Tensor): AttentionRows | null {
  const [, , T, D] = t.shape;
  if (D > 1 && t.strides[3] !== 1) return null;
  const row = T > 1 ? t.strides[2] : D; // a single row's stride is never used
  if (T > 1 && row < D) return null; // rows overlap
  return { offset: t.offset, batch: t.strides[0], head: t.strides[1], row };
}

/**
 * Scaled dot-product attention on (B, H, T, D) tensors; k and v may be longer than q.
 * q, k and v are read in place when their last axis is contiguous, and the output is laid
 * out (B, Tq, H, D) in memory, so permuting it to (B, Tq, H, D) and merging the heads is a
 * free reshape.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const b = sameBackend("attention", q, k, v);
  if (
    q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4 || k.shape[2] !== v.shape[2] ||
    q.shape[3] !== k.shape[3] || k.shape[3] !== v.shape[3] || q.shape[0] !== k.shape[0] ||
    q.shape[1] !== k.shape[1] ||
    v.shape[0] !== q.shape[0] || v.shape[1] !== q.shape[1]
  ) {
    throw new ShapeError(
      "attention",
      `q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${
        shapeStr(v.shape)
      }: expected (B, H, T, D)`,
    );
  }
  for (const t of [q, k, v]) expectDtype("attention", t, "f32");
  const [B, H, Tq, D] = q.shape;
  const Tk = k.shape[2];
  const args = {
    batch: B,
    heads: H,
    Tq,
    Tk,
    headDim: D,
    scale: opts.scale ?? 1 / Math.sqrt(D),
    causal: opts.causal ?? false,
    queryOffset: opts.queryOffset ?? Tk - Tq,
  };
  // Operands the kernel cannot read in place are copied (the copies are disposed below).
  const [qs, ks, vs] = [q, k, v].map((t) => (attentionRows(t) ? t : dense(t)));
  const inputs = { q: attentionRows(qs)!, k: attentionRows(ks)!, v: attentionRows(vs)! };
  const r = b.attention(qs.shared.storage, ks.shared.storage, vs.shared.storage, {
    ...args,
    inputs,
    tokenMajorOut: true,
  });
  const tokenMajor = wrap(r.out, [B, Tq, H, D]);
  const out = tokenMajor.alias([B, H, Tq, D], [Tq * H * D, D, H * D, 1], 0);
  tokenMajor.dispose();
  const lse = wrap(r.lse, [B, H, Tq]);
  // The backward kernel takes dense operands (copied only when a gradient is asked for).
  const result = record("attention", out, [q, k, v], (g, saved) => {
    const d = withDense(
      [g, ...saved],
      (gd, qd, kd, vd, od, ld) =>
        b.attentionBackward(
          qd.storage,
          kd.storage,
          vd.storage,
          od.storage,
          ld.storage,
          gd.storage,
          args,
        ),
    );
    return [wrap(d.dq, q.shape), wrap(d.dk, k.shape), wrap(d.dv, v.shape)];
  }, [qs, ks, vs, out, lse]);
  lse.dispose();
  for (const [s, o] of [[qs, q], [ks, k], [vs, v]]) if (s !== o) s.dispose();
  return result;
}

// ---------------------------------------------------------------- convolution and pooling

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  groups?: number;
}

const pair = (v: number | [number, number] | undefined, d: number): [number, number] =>
  v === undefined ? [d, d] : typeof v === "number" ? [v, v] : v;

/** 2-D convolution, NCHW input and OIHW weight (PyTorch layout). */
export function conv2d(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null = null,
  opts: Conv2dOptions = {},
): Tensor {
  const backend = sameBackend("conv2d", x, w);
  const [strideH, strideW] = pair(opts.stride, 1);
  const [padH, padW] = pair(opts.padding, 0);
  const groups = opts.groups ?? 1;
  if (
    x.ndim !== 4 || w.ndim !== 4 || x.shape[1] !== w.shape[1] * groups || w.shape[0] % groups !== 0
  ) {
    throw new ShapeError(
      "conv2d",
      `input ${shapeStr(x.shape)} and weight ${
        shapeStr(w.shape)
      } with groups=${groups}: expected input (N, C, H, W) and weight (O, C/groups, kH, kW)`,
    );
  }
  const [N, C, H, W] = x.shape;
  const [O, , kH, kW] = w.shape;
  const outH = Math.floor((H + 2 * padH - kH) / strideH) + 1;
  const outW = Math.floor((W + 2 * padW - kW) / strideW) + 1;
  if (outH <= 0 || outW <= 0) {
    throw new ShapeError(
      "conv2d",
      `kernel ${kH}x${kW} is larger than the padded input ${shapeStr(x.shape)}`,
    );
  }
  const args: Conv2dArgs = {
    batch: N,
    inC: C,
    inH: H,
    inW: W,
    outC: O,
    kH,
    kW,
    strideH,
    strideW,
    padH,
    padW,
    groups,
    outH,
    outW,
  };
  const xd = dense(x), wd = dense(w);
  const y = wrap(backend.conv2d(xd.storage, wd.storage, bias?.storage ?? null, args), [
    N,
    O,
    outH,
    outW,
  ]);
  const inputs = bias ? [x, w, bias] : [x, w];
  const out = record("conv2d", y, inputs, (g, [xs, ws]) => {
    const gd = dense(g);
    const dx = x.requiresGrad
      ? wrap(backend.conv2dBackwardInput(gd.storage, ws.storage, args), x.shape)
      : null;
    const dw = w.requiresGrad
      ? wrap(backend.conv2dBackwardWeight(gd.storage, xs.storage, args), w.shape)
      : null;
    const db = bias?.requiresGrad ? sum(gd, [0, 2, 3]) : null;
    if (gd !== g) gd.dispose();
    return bias ? [dx, dw, db] : [dx, dw];
  }, [xd, wd]);
  if (xd !== x) xd.dispose();
  if (wd !== w) wd.dispose();
  return out;
}

export interface Pool2dOptions {
  kernel: number | [number, number];
  stride?: number | [number, number];
  padding?: number | [number, number];
  countIncludePad?: boolean;
}

function poolArgs(x: Tensor, opts: Pool2dOptions, op: string): Pool2dArgs {
  if (x.ndim !== 4) throw new ShapeError(op, `expects (N, C, H, W), got ${shapeStr(x.shape)}`);
  const [kH, kW] = pair(opts.kernel, 1);
  const [strideH, strideW] = pair(opts.stride ?? opts.kernel, 1);
  const [padH, padW] = pair(opts.padding, 0);
  const [batch, channels, inH, inW] = x.shape;
  const outH = Math.floor((inH + 2 * padH - kH) / strideH) + 1;
  const outW = Math.floor((inW + 2 * padW - kW) / strideW) + 1;
  if (outH <= 0 || outW <= 0) {
    throw new ShapeError(op, `window ${kH}x${kW} does not fit ${shapeStr(x.shape)}`);
  }
  return {
    batch,
    channels,
    inH,
    inW,
    kH,
    kW,
    strideH,
    strideW,
    padH,
    padW,
    outH,
    outW,
    countIncludePad: opts.countIncludePad ?? true,
  };
}

export function avgPool2d(x: Tensor, opts: Pool2dOptions): Tensor {
  const args = poolArgs(x, opts, "avgPool2d");
  const y = withDense(
    [x],
    (xd) =>
      wrap(x.backend.avgPool2d(xd.storage, args), [
        args.batch,
        args.channels,
        args.outH,
        args.outW,
      ]),
  );
  return record(
    "avgPool2d",
    y,
    [x],
    (g) => [withDense([g], (gd) => wrap(g.backend.avgPool2dBackward(gd.storage, args), x.shape))],
  );
}

export function maxPool2d(x: Tensor, opts: Pool2dOptions): Tensor {
  const args = poolArgs(x, opts, "maxPool2d");
  const r = withDense([x], (xd) => x.backend.maxPool2d(xd.storage, args));
  const shape = [args.batch, args.channels, args.outH, args.outW];
  const idx = wrap(r.argmax, shape);
  const out = record(
    "maxPool2d",
    wrap(r.y, shape),
    [x],
    (
      g,
      [is],
    ) => [
      withDense(
        [g],
        (gd) => wrap(g.backend.maxPool2dBackward(gd.storage, is.storage, args), x.shape),
      ),
    ],
    [idx],
  );
  idx.dispose();
  return out;
}

export interface InterpolateOptions {
  size?: [number, number];
  /** As F.interpolate's scale_factor: the output is floor(in*scale) and coordinates use 1/scale. */
  scaleFactor?: number | [number, number];
  mode?: ResizeMode;
  alignCorners?: boolean;
  /** Cubic convolution coefficient (PyTorch: -0.75). */
  cubicA?: number;
}

/** Resize (N, C, H, W) like torch.nn.functional.interpolate (no antialias). */
export function interpolate(x: Tensor, opts: InterpolateOptions): Tensor {
  if (x.ndim !== 4) {
    throw new ShapeError("interpolate", `expects (N, C, H, W), got ${shapeStr(x.shape)}`);
  }
  const [N, C, inH, inW] = x.shape;
  let outH: number, outW: number, scaleH: number, scaleW: number;
  if (opts.size) {
    [outH, outW] = opts.size;
    scaleH = inH / outH;
    scaleW = inW / outW;
  } else if (opts.scaleFactor !== undefined) {
    const [sh, sw] = pair(opts.scaleFactor, 1);
    outH = Math.floor(inH * sh);
    outW = Math.floor(inW * sw);
    scaleH = 1 / sh;
    scaleW = 1 / sw;
  } else {
    throw new ShapeError("interpolate", "give either size or scaleFactor");
  }
  const args = {
    planes: N * C,
    inH,
    inW,
    outH,
    outW,
    mode: opts.mode ?? "nearest",
    alignCorners: opts.alignCorners ?? false,
    scaleH,
    scaleW,
    cubicA: opts.cubicA ?? -0.75,
  };
  const y = withDense([x], (xd) => wrap(x.backend.resize(xd.storage, args), [N, C, outH, outW]));
  return record(
    "interpolate",
    y,
    [x],
    (g) => [withDense([g], (gd) => wrap(g.backend.resizeBackward(gd.storage, args), x.shape))],
  );
}
