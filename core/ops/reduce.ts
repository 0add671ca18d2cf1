/** Reductions over one or more axes, and sumTo (the adjoint of broadcasting). */

import { record } from "../autograd.ts";
import type { ReduceOp } from "../backend.ts";
import type { Tensor } from "../tensor.ts";
import { arange } from "./creation.ts";
import { affine, compare, mul } from "./elementwise.ts";
import { expand, reshape } from "./shape.ts";
import { dense, normAxis, ShapeError, shapeStr, sizeOf, wrap } from "./util.ts";

function axesOf(x: Tensor, axis: number | number[] | undefined, op: string): number[] {
  if (axis === undefined) return [...Array(x.ndim).keys()];
  const list = (Array.isArray(axis) ? axis : [axis]).map((a) => normAxis(a, x.ndim, op));
  return [...new Set(list)].sort((a, b) => a - b);
}

function keptShape(shape: readonly number[], axes: number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** One kernel call reducing a single axis; returns the keepdim-shaped result. */
function reduceAxis(op: ReduceOp, x: Tensor, axis: number): Tensor {
  const src = dense(x);
  const outer = sizeOf(x.shape.slice(0, axis));
  const inner = sizeOf(x.shape.slice(axis + 1));
  const out = wrap(
    x.backend.reduce(op, src.storage, outer, x.shape[axis], inner),
    keptShape(x.shape, [axis]),
  );
  if (src !== x) src.dispose();
  return out;
}

/** Reduce several axes by folding adjacent runs; no autograd. */
function reduceRaw(op: "sum" | "max" | "min", x: Tensor, axes: number[]): Tensor {
  if (x.ndim === 0) return x.alias(); // callers attach the graph node
  if (axes.length === x.ndim) {
    const d = dense(x);
    const flat = d.alias([1, x.size], [x.size, 1], 0);
    if (d !== x) d.dispose();
    const r = reduceAxis(op, flat, 1);
    flat.dispose();
    const out = r.alias(keptShape(x.shape, axes), undefined, 0);
    r.dispose();
    return out;
  }
  let cur = x;
  for (let i = axes.length - 1; i >= 0; i--) {
    const next = reduceAxis(op, cur, axes[i]);
    if (cur !== x) cur.dispose();
    cur = next;
  }
  return cur;
}

function finish(r: Tensor, x: Tensor, axes: number[], keepdim: boolean): Tensor {
  if (keepdim) return r;
  const out = reshape(r, x.shape.filter((_, i) => !axes.includes(i)));
  r.dispose();
  return out;
}

/** Sum over `axis` (all axes when omitted); `keepdim` keeps reduced axes as size 1. */
export function sum(x: Tensor, axis?: number | number[], keepdim = false): Tensor {
  const axes = axesOf(x, axis, "sum");
  const r = reduceRaw("sum", x, axes);
  const kept = record(
    "sum",
    r,
    [x],
    (g) => [expand(reshape(g, keptShape(x.shape, axes)), x.shape)],
  );
  return finish(kept, x, axes, keepdim);
}

/** Mean over `axis` (all axes when omitted); `keepdim` keeps reduced axes as size 1. */
export function mean(x: Tensor, axis?: number | number[], keepdim = false): Tensor {
  const axes = axesOf(x, axis, "mean");
  const n = axes.reduce((p, a) => p * x.shape[a], 1);
  if (n === 0) throw new ShapeError("mean", `empty reduction over shape ${shapeStr(x.shape)}`);
  return affine(sum(x, axes, keepdim), 1 / n, 0);
}

function extremum(op: "max" | "min", x: Tensor, axis: number, keepdim: boolean): Tensor {
  const a = normAxis(axis, x.ndim, op);
  const r = reduceRaw(op, x, [a]);
  const kept = record(op, r, [x], (g) => {
    // The gradient goes to the first extremal element only, as in PyTorch.
    const idx = argReduce(op === "max" ? "argmax" : "argmin", x, a, true);
    const positions = reshape(
      arange(x.shape[a], { backend: x.backend }),
      x.shape.map((d, i) => (i === a ? d : 1)),
    );
    const onehot = compare("eq", positions, idx);
    return [mul(expand(reshape(g, keptShape(x.shape, [a])), x.shape), onehot)];
  });
  return finish(kept, x, [a], keepdim);
}

/** Maximum along `axis`; the gradient goes to the first maximal element. */
export const max = (x: Tensor, axis: number, keepdim = false): Tensor =>
  extremum("max", x, axis, keepdim);
/** Minimum along `axis`; the gradient goes to the first minimal element. */
export const min = (x: Tensor, axis: number, keepdim = false): Tensor =>
  extremum("min", x, axis, keepdim);

function argReduce(op: "argmax" | "argmin", x: Tensor, axis: number, keepdim: boolean): Tensor {
  const a = normAxis(axis, x.ndim, op);
  return finish(reduceAxis(op, x, a), x, [a], keepdim);
}

/** Index of the first maximum along an axis (i32). */
export const argmax = (x: Tensor, axis: number, keepdim = false): Tensor =>
  argReduce("argmax", x, axis, keepdim);
/** Index of the first minimum along an axis (i32). */
export const argmin = (x: Tensor, axis: number, keepdim = false): Tensor =>
  argReduce("argmin", x, axis, keepdim);

/** Sum a broadcast gradient back down to `shape`. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.ndim === shape.length && g.shape.every((d, i) => d === shape[i])) return g.alias();
  const lead = g.ndim - shape.length;
  if (lead < 0) {
    throw new ShapeError("sumTo", `cannot reduce ${shapeStr(g.shape)} to ${shapeStr(shape)}`);
  }
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const r = axes.length ? sum(g, axes, true) : g.alias();
  const out = reshape(r, shape);
  r.dispose();
  return out;
}
