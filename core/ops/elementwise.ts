/** Elementwise arithmetic, unary math, comparisons and `where`, with their gradients. */

import { record } from "../autograd.ts";
import type { BinaryOp, DType, UnaryOp } from "../backend.ts";
import type { Tensor } from "../tensor.ts";
import { fill } from "./creation.ts";
import { sumTo } from "./reduce.ts";
import {
  broadcastShapes,
  broadcastView,
  dense,
  sameBackend,
  ShapeError,
  shapeStr,
  wrap,
} from "./util.ts";

// ---------------------------------------------------------------- unary

function unaryRaw(op: UnaryOp, x: Tensor): Tensor {
  const src = dense(x);
  const out = wrap(x.backend.unary(op, src.storage), x.shape);
  if (src !== x) src.dispose();
  return out;
}

function unary(
  op: UnaryOp,
  x: Tensor,
  grad: (g: Tensor, x: Tensor, y: Tensor) => Tensor | null,
): Tensor {
  if (x.dtype !== "f32" && op !== "neg" && op !== "abs" && op !== "sign" && op !== "square") {
    throw new ShapeError(op, `expects f32, got ${x.dtype} ${shapeStr(x.shape)}`);
  }
  const y = unaryRaw(op, x);
  return record(op, y, [x], (g, [xs, ys]) => [grad(g, xs, ys)], [x, y]);
}

/** Elementwise `-x`. */
export const neg = (x: Tensor): Tensor => unary("neg", x, (g) => neg(g));
/** Elementwise `e ** x`. */
export const exp = (x: Tensor): Tensor => unary("exp", x, (g, _x, y) => mul(g, y));
/** Elementwise natural logarithm. */
export const log = (x: Tensor): Tensor => unary("log", x, (g, x) => div(g, x));
/** Elementwise square root. */
export const sqrt = (x: Tensor): Tensor =>
  unary("sqrt", x, (g, _x, y) => div(affine(g, 0.5, 0), y));
/** Elementwise `1 / sqrt(x)`. */
export const rsqrt = (x: Tensor): Tensor =>
  unary("rsqrt", x, (g, _x, y) => mul(g, affine(powScalar(y, 3), -0.5, 0)));
/** Elementwise hyperbolic tangent. */
export const tanh = (x: Tensor): Tensor =>
  unary("tanh", x, (g, _x, y) => mul(g, affine(mul(y, y), -1, 1)));
/** Elementwise logistic sigmoid. */
export const sigmoid = (x: Tensor): Tensor =>
  unary("sigmoid", x, (g, _x, y) => mul(g, mul(y, affine(y, -1, 1))));
/** Elementwise `x * sigmoid(x)`. */
export const silu = (x: Tensor): Tensor =>
  unary("silu", x, (g, x) => mul(g, unaryRaw("silu_grad", x)));
/** Exact (erf) GELU, as PyTorch's nn.GELU() and fairseq's gelu. */
export const gelu = (x: Tensor): Tensor =>
  unary("gelu", x, (g, x) => mul(g, unaryRaw("gelu_grad", x)));
/** Elementwise `max(x, 0)`. */
export const relu = (x: Tensor): Tensor => unary("relu", x, (g, x) => mul(g, compare("gt", x, 0)));
/** Elementwise absolute value. */
export const abs = (x: Tensor): Tensor => unary("abs", x, (g, x) => mul(g, unaryRaw("sign", x)));
/** Elementwise `x * x`. */
export const square = (x: Tensor): Tensor => unary("square", x, (g, x) => mul(g, affine(x, 2, 0)));
/** Elementwise `1 / x`. */
export const reciprocal = (x: Tensor): Tensor =>
  unary("reciprocal", x, (g, _x, y) => mul(g, affine(mul(y, y), -1, 0)));
/** Elementwise sine. */
export const sin = (x: Tensor): Tensor => unary("sin", x, (g, x) => mul(g, unaryRaw("cos", x)));
/** Elementwise cosine. */
export const cos = (x: Tensor): Tensor =>
  unary("cos", x, (g, x) => neg(mul(g, unaryRaw("sin", x))));
/** Elementwise floor (no gradient). */
export const floor = (x: Tensor): Tensor => unary("floor", x, () => null);
/** Elementwise sign: -1, 0 or 1 (no gradient). */
export const sign = (x: Tensor): Tensor => unary("sign", x, () => null);

/** x*scale + shift in one kernel. */
export function affine(x: Tensor, scale: number, shift: number): Tensor {
  const src = dense(x);
  const out = wrap(x.backend.affine(src.storage, scale, shift), x.shape);
  if (src !== x) src.dispose();
  return record("affine", out, [x], (g) => [affine(g, scale, 0)]);
}

/** `x ** p` for a constant exponent. */
export function powScalar(x: Tensor, p: number): Tensor {
  const src = dense(x);
  const out = wrap(x.backend.powScalar(src.storage, p), x.shape);
  if (src !== x) src.dispose();
  return record("pow", out, [x], (g, [xs]) => [mul(g, affine(powScalar(xs, p - 1), p, 0))], [x]);
}

/** Elementwise clamp to [lo, hi]; no gradient where clamped. */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  const src = dense(x);
  const out = wrap(x.backend.clamp(src.storage, lo, hi), x.shape);
  if (src !== x) src.dispose();
  return record(
    "clamp",
    out,
    [x],
    (g, [xs]) => [mul(g, mul(compare("ge", xs, lo), compare("le", xs, hi)))],
    [x],
  );
}

// ---------------------------------------------------------------- binary

function scalarLike(x: Tensor, v: number): Tensor {
  return fill([], v, x.backend, x.dtype);
}

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor, outDtype?: DType): Tensor {
  const backend = sameBackend(op, a, b);
  if (a.dtype !== b.dtype) {
    throw new ShapeError(
      op,
      `dtype mismatch: ${a.dtype} ${shapeStr(a.shape)} and ${b.dtype} ${
        shapeStr(b.shape)
      }; cast one first`,
    );
  }
  const shape = broadcastShapes(op, a.shape, b.shape);
  const dtype = outDtype ?? a.dtype;
  return wrap(
    backend.binary(op, broadcastView(a, shape), broadcastView(b, shape), shape, dtype),
    shape,
  );
}

function withScalar(a: Tensor, b: Tensor | number, fn: (a: Tensor, b: Tensor) => Tensor): Tensor {
  if (typeof b !== "number") return fn(a, b);
  const s = scalarLike(a, b);
  const out = fn(a, s);
  s.dispose();
  return out;
}

/** `a + b`, broadcasting. */
export function add(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === "number" && a.dtype === "f32") return affine(a, 1, b);
  return withScalar(a, b, (a, b) => {
    const out = binaryRaw("add", a, b);
    return record("add", out, [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
  });
}

/** `a - b`, broadcasting. */
export function sub(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === "number" && a.dtype === "f32") return affine(a, 1, -b);
  return withScalar(a, b, (a, b) => {
    const out = binaryRaw("sub", a, b);
    return record("sub", out, [a, b], (g) => [sumTo(g, a.shape), neg(sumTo(g, b.shape))]);
  });
}

/** `a * b`, broadcasting. */
export function mul(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === "number" && a.dtype === "f32") return affine(a, b, 0);
  return withScalar(a, b, (a, b) => {
    const out = binaryRaw("mul", a, b);
    return record("mul", out, [a, b], (g, [as, bs]) => [
      a.requiresGrad ? sumTo(mul(g, bs), a.shape) : null,
      b.requiresGrad ? sumTo(mul(g, as), b.shape) : null,
    ], [a, b]);
  });
}

/** `a / b`, broadcasting. */
export function div(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === "number" && a.dtype === "f32") return affine(a, 1 / b, 0);
  return withScalar(a, b, (a, b) => {
    const out = binaryRaw("div", a, b);
    return record("div", out, [a, b], (g, [as, bs]) => [
      a.requiresGrad ? sumTo(div(g, bs), a.shape) : null,
      b.requiresGrad ? sumTo(neg(div(mul(g, as), mul(bs, bs))), b.shape) : null,
    ], [a, b]);
  });
}

/** Elementwise maximum; ties send the gradient to `a`. */
export function maximum(a: Tensor, b: Tensor | number): Tensor {
  return withScalar(a, b, (a, b) => {
    const out = binaryRaw("max", a, b);
    return record("maximum", out, [a, b], (g, [as, bs]) => {
      const m = compare("ge", as, bs);
      return [sumTo(mul(g, m), a.shape), sumTo(mul(g, affine(m, -1, 1)), b.shape)];
    }, [a, b]);
  });
}

/** Elementwise minimum; ties send the gradient to `a`. */
export function minimum(a: Tensor, b: Tensor | number): Tensor {
  return withScalar(a, b, (a, b) => {
    const out = binaryRaw("min", a, b);
    return record("minimum", out, [a, b], (g, [as, bs]) => {
      const m = compare("le", as, bs);
      return [sumTo(mul(g, m), a.shape), sumTo(mul(g, affine(m, -1, 1)), b.shape)];
    }, [a, b]);
  });
}

/** Comparisons `compare` accepts. */
export type CompareOp = "eq" | "ne" | "lt" | "le" | "gt" | "ge";

/** Comparison giving f32 1/0 (never differentiable). */
export function compare(op: CompareOp, a: Tensor, b: Tensor | number): Tensor {
  return withScalar(a, b, (a, b) => binaryRaw(op, a, b, "f32"));
}

/** cond != 0 ? a : b, broadcasting all three. */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  const ref = typeof a !== "number" ? a : typeof b !== "number" ? b : null;
  const ta = typeof a === "number" ? fill([], a, cond.backend, ref?.dtype ?? "f32") : a;
  const tb = typeof b === "number" ? fill([], b, cond.backend, ref?.dtype ?? "f32") : b;
  if (ta.dtype !== tb.dtype) {
    throw new ShapeError("where", `branches differ in dtype: ${ta.dtype} and ${tb.dtype}`);
  }
  const backend = sameBackend("where", cond, ta, tb);
  const shape = broadcastShapes("where", broadcastShapes("where", cond.shape, ta.shape), tb.shape);
  const out = wrap(
    backend.where(
      broadcastView(cond, shape),
      broadcastView(ta, shape),
      broadcastView(tb, shape),
      shape,
    ),
    shape,
  );
  const result = record("where", out, [ta, tb], (g, [c]) => {
    const zero = fill([], 0, g.backend);
    return [sumTo(where(c, g, zero), ta.shape), sumTo(where(c, zero, g), tb.shape)];
  }, [cond]);
  if (ta !== a) ta.dispose();
  if (tb !== b) tb.dispose();
  return result;
}
