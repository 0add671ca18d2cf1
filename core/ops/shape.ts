/** Views (reshape, permute, slice, expand), copies, and joining/splitting tensors. */

import { record } from "../autograd.ts";
import type { DType } from "../backend.ts";
import type { Tensor } from "../tensor.ts";
import { fill } from "./creation.ts";
import { sumTo } from "./reduce.ts";
import {
  contiguousStrides,
  dense,
  normAxis,
  sameBackend,
  ShapeError,
  shapeStr,
  sizeOf,
  wrap,
} from "./util.ts";

/** A new handle on the same data that keeps x's place in the graph. */
export function identity(x: Tensor): Tensor {
  return record("identity", x.alias(), [x], (g) => [g.alias()]);
}

/** A row-major copy of `x`. */
export function contiguous(x: Tensor): Tensor {
  const out = wrap(x.backend.copy(x.view()), x.shape);
  return record("contiguous", out, [x], (g) => [g.alias()]);
}

/** Same elements in a new shape; one axis may be -1 (a view when dense, else a copy). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = [...shape];
  const free = s.indexOf(-1);
  if (free >= 0) {
    const known = s.reduce((p, d, i) => (i === free ? p : p * d), 1);
    s[free] = known === 0 ? 0 : x.size / known;
  }
  if (sizeOf(s) !== x.size || !s.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new ShapeError(
      "reshape",
      `cannot reshape ${shapeStr(x.shape)} (${x.size} elements) to ${shapeStr(shape)}`,
    );
  }
  const src = dense(x);
  const out = src.alias(s, contiguousStrides(s), 0);
  if (src !== x) src.dispose();
  return record("reshape", out, [x], (g) => [reshape(g, x.shape)]);
}

/** `x` as one axis. */
export const flatten = (x: Tensor): Tensor => reshape(x, [x.size]);
/** `x` with a size-1 axis inserted at `axis`. */
export const unsqueeze = (x: Tensor, axis: number): Tensor => {
  const a = axis < 0 ? axis + x.ndim + 1 : axis;
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return reshape(x, s);
};
/** `x` without `axis`, which must have size 1. */
export const squeeze = (x: Tensor, axis: number): Tensor => {
  const a = normAxis(axis, x.ndim, "squeeze");
  if (x.shape[a] !== 1) {
    throw new ShapeError("squeeze", `axis ${axis} of ${shapeStr(x.shape)} is not 1`);
  }
  return reshape(x, x.shape.filter((_, i) => i !== a));
};

/** A view with the axes reordered as `dims`. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const d = dims.map((a) => normAxis(a, x.ndim, "permute"));
  if (d.length !== x.ndim || new Set(d).size !== d.length) {
    throw new ShapeError("permute", `dims [${dims}] are not a permutation of ${x.ndim} axes`);
  }
  const out = x.alias(d.map((i) => x.shape[i]), d.map((i) => x.strides[i]), x.offset);
  const inverse = new Array<number>(d.length);
  d.forEach((a, i) => (inverse[a] = i));
  return record("permute", out, [x], (g) => [permute(g, inverse)]);
}

/** A view with axes `a` and `b` swapped (by default the last two). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const dims = [...Array(x.ndim).keys()];
  const i = normAxis(a, x.ndim, "transpose");
  const j = normAxis(b, x.ndim, "transpose");
  [dims[i], dims[j]] = [dims[j], dims[i]];
  return permute(x, dims);
}

/** x[..., start:end, ...] along one axis (a view). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const a = normAxis(axis, x.ndim, "slice");
  const n = x.shape[a];
  if (start < 0) start += n;
  if (end < 0) end += n;
  if (!(0 <= start && start <= end && end <= n)) {
    throw new ShapeError(
      "slice",
      `range ${start}:${end} is outside axis ${axis} of size ${n} (shape ${shapeStr(x.shape)})`,
    );
  }
  const shape = [...x.shape];
  shape[a] = end - start;
  const out = x.alias(shape, x.strides, x.offset + start * x.strides[a]);
  return record("slice", out, [x], (g) => {
    const full = fill(x.shape, 0, x.backend);
    const window = full.alias(shape, full.strides, start * full.strides[a]);
    full.backend.copyInto(window.view(), g.view());
    window.dispose();
    return [full];
  });
}

/** Broadcast size-1 (or missing leading) axes to `shape` without copying. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const lead = shape.length - x.ndim;
  if (lead < 0) {
    throw new ShapeError(
      "expand",
      `cannot expand ${shapeStr(x.shape)} to fewer dims ${shapeStr(shape)}`,
    );
  }
  const strides = shape.map((d, i) => {
    if (i < lead) return 0;
    const xd = x.shape[i - lead];
    if (xd === d) return x.strides[i - lead];
    if (xd === 1) return 0;
    throw new ShapeError("expand", `cannot expand ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
  });
  const out = x.alias([...shape], strides, x.offset);
  return record("expand", out, [x], (g) => [sumTo(g, x.shape)]);
}

/** Concatenation along an existing axis; every other axis must match. */
export function cat(xs: Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new ShapeError("cat", "needs at least one tensor");
  const b = sameBackend("cat", ...xs);
  const a = normAxis(axis, xs[0].ndim, "cat");
  const dtype = xs[0].dtype;
  for (const x of xs) {
    if (x.dtype !== dtype) throw new ShapeError("cat", `mixed dtypes ${dtype} and ${x.dtype}`);
    if (x.ndim !== xs[0].ndim || x.shape.some((d, i) => i !== a && d !== xs[0].shape[i])) {
      throw new ShapeError(
        "cat",
        `shapes ${xs.map((t) => shapeStr(t.shape)).join(", ")} differ outside axis ${axis}`,
      );
    }
  }
  const shape = [...xs[0].shape];
  shape[a] = xs.reduce((s, x) => s + x.shape[a], 0);
  const out = wrap(b.fill(dtype, sizeOf(shape), 0), shape);
  let at = 0;
  const starts: number[] = [];
  for (const x of xs) {
    starts.push(at);
    const ws = [...shape];
    ws[a] = x.shape[a];
    b.copyInto({
      storage: out.storage,
      shape: ws,
      strides: out.strides,
      offset: at * out.strides[a],
    }, x.view());
    at += x.shape[a];
  }
  return record(
    "cat",
    out,
    xs,
    (g) => xs.map((x, i) => slice(g, a, starts[i], starts[i] + x.shape[a])),
  );
}

/** Concatenation along a new axis. */
export function stack(xs: Tensor[], axis = 0): Tensor {
  const parts = xs.map((x) => unsqueezeView(x, axis));
  const out = cat(parts, axis);
  parts.forEach((p) => p.dispose());
  return out;
}

function unsqueezeView(x: Tensor, axis: number): Tensor {
  return unsqueeze(x, axis);
}

/** Split along an axis into pieces of the given sizes (or `n` equal pieces). */
export function split(x: Tensor, sizes: number | number[], axis = 0): Tensor[] {
  const a = normAxis(axis, x.ndim, "split");
  const n = x.shape[a];
  const parts = typeof sizes === "number" ? Array(sizes).fill(n / sizes) : sizes;
  if (parts.reduce((s, p) => s + p, 0) !== n || !parts.every(Number.isInteger)) {
    throw new ShapeError(
      "split",
      `sizes [${parts}] do not add up to axis ${axis} of ${shapeStr(x.shape)}`,
    );
  }
  let at = 0;
  return parts.map((p) => {
    const s = slice(x, a, at, at + p);
    at += p;
    return s;
  });
}

/** Elementwise conversion to `dtype` (no gradient). */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return identity(x);
  const src = dense(x);
  const out = wrap(x.backend.cast(src.storage, dtype), x.shape);
  if (src !== x) src.dispose();
  return out;
}
