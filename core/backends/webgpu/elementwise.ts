/**
 * Elementwise kernels: one generated WGSL expression per op and dtype, run through the
 * strided engine. Integer inputs stay integer for ops that are closed over the integers
 * (neg, abs, add, max...); the rest compute in f32 and truncate on store.
 */

import type { BinaryOp, DType, UnaryOp, View } from "../../backend.ts";
import type { GpuStorage } from "./buffers.ts";
import type { GpuContext } from "./context.ts";
import { alignedStrides, flatView, runElementwise } from "./strided.ts";
import { ACCURATE_MATH_WGSL, ERF_WGSL, f32, i32, NAN, POS_INF } from "./wgsl.ts";

const UNARY_F32: Record<UnaryOp, string> = {
  neg: "-x",
  abs: "abs(x)",
  exp: "exp(x)",
  log: "log_f(x)",
  sqrt: "sqrt(x)",
  rsqrt: "inverseSqrt(x)",
  tanh: "tanh(clamp(x, -20.0, 20.0))",
  sigmoid: "1.0 / (1.0 + exp(-x))",
  silu: "x / (1.0 + exp(-x))",
  gelu: "gelu_f(x)",
  relu: "max(x, 0.0)",
  sin: "sin(x)",
  cos: "cos(x)",
  square: "x * x",
  reciprocal: "1.0 / x",
  floor: "floor(x)",
  sign: "sign(x)",
  gelu_grad: "gelu_grad_f(x)",
  silu_grad: "silu_grad_f(x)",
};

/** Ops that are exact on integers and keep i32 math. */
const UNARY_I32: Partial<Record<UnaryOp, string>> = {
  neg: "-x",
  abs: "abs(x)",
  relu: "max(x, 0)",
  square: "x * x",
  floor: "x",
  sign: "sign(x)",
};

/** Helper functions by name, with the helpers each one calls. */
const MATH_FUNCS: Record<string, { code: string; uses: string[] }> = {
  gelu_f: { code: ERF_WGSL, uses: [] },
  gelu_grad_f: { code: "", uses: ["gelu_f"] },
  log_f: {
    code: `fn log_f(x: f32) -> f32 {
  if (x > 0.0 && x < ${POS_INF}) { return log_acc(x); }
  return log(x);
}`,
    uses: ["log_acc"],
  },
  log_acc: { code: ACCURATE_MATH_WGSL, uses: [] },
  silu_grad_f: {
    code: `fn silu_grad_f(x: f32) -> f32 {
  let s = 1.0 / (1.0 + exp(-x));
  return s * (1.0 + x * (1.0 - s));
}`,
    uses: [],
  },
  // pow with the sign rules of Math.pow for negative bases and integer exponents.
  pow_f: {
    code: `fn pow_f(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (a == 0.0) { return select(${POS_INF}, 0.0, b > 0.0); }
  let m = pow(abs(a), b);
  if (a > 0.0) { return m; }
  if (floor(b) != b) { return ${NAN}; }
  return select(m, -m, (abs(b) % 2.0) == 1.0);
}`,
    uses: [],
  },
};

/**
 * Only the helpers an expression calls: a software adapter compiles every function in
 * the module, so shipping all of them to each elementwise kernel costs real time.
 */
export function mathHelpersFor(expr: string): string {
  const chosen = new Set<string>();
  const visit = (name: string) => {
    if (chosen.has(name)) return;
    chosen.add(name);
    for (const u of MATH_FUNCS[name].uses) visit(u);
  };
  for (const name of Object.keys(MATH_FUNCS)) {
    if (new RegExp(`\\b${name}\\(`).test(expr)) visit(name);
  }
  return [...new Set([...chosen].map((n) => MATH_FUNCS[n].code))].filter(Boolean).join("\n");
}

export function unary(ctx: GpuContext, op: UnaryOp, x: GpuStorage): GpuStorage {
  const f = UNARY_F32[op];
  if (f === undefined) throw new Error(`unary: unknown op '${op}'`);
  const intOp = x.dtype === "i32" ? UNARY_I32[op] : undefined;
  const as = intOp ? "i32" : "f32";
  return runElementwise(ctx, {
    name: `unary_${op}_${x.dtype}`,
    inputs: [{ view: flatView(x), as }],
    outShape: [x.length],
    outDtype: x.dtype,
    expr: `op(v0)`,
    exprType: as,
    helpers: `${mathHelpersFor(intOp ?? f)}\nfn op(x: ${as}) -> ${as} { return ${intOp ?? f}; }`,
  });
}

const BINARY: Record<BinaryOp, { f: string; i?: string }> = {
  add: { f: "a + b", i: "a + b" },
  sub: { f: "a - b", i: "a - b" },
  mul: { f: "a * b", i: "a * b" },
  div: { f: "a / b", i: "select(a / b, 0, b == 0)" },
  pow: { f: "pow_f(a, b)" },
  max: { f: "max(a, b)", i: "max(a, b)" },
  min: { f: "min(a, b)", i: "min(a, b)" },
  eq: { f: "select(0.0, 1.0, a == b)", i: "select(0, 1, a == b)" },
  ne: { f: "select(0.0, 1.0, a != b)", i: "select(0, 1, a != b)" },
  lt: { f: "select(0.0, 1.0, a < b)", i: "select(0, 1, a < b)" },
  le: { f: "select(0.0, 1.0, a <= b)", i: "select(0, 1, a <= b)" },
  gt: { f: "select(0.0, 1.0, a > b)", i: "select(0, 1, a > b)" },
  ge: { f: "select(0.0, 1.0, a >= b)", i: "select(0, 1, a >= b)" },
};

export function binary(
  ctx: GpuContext,
  op: BinaryOp,
  a: View,
  b: View,
  outShape: readonly number[],
  outDtype: DType,
): GpuStorage {
  const e = BINARY[op];
  if (!e) throw new Error(`binary: unknown op '${op}'`);
  const intMath = a.storage.dtype === "i32" && b.storage.dtype === "i32" && e.i !== undefined;
  const as = intMath ? "i32" : "f32";
  return runElementwise(ctx, {
    name: `binary_${op}_${a.storage.dtype}_${b.storage.dtype}_${outDtype}`,
    inputs: [{ view: a, as }, { view: b, as }],
    outShape,
    outDtype,
    expr: "op(v0, v1)",
    exprType: as,
    helpers: `${
      mathHelpersFor(intMath ? e.i! : e.f)
    }\nfn op(a: ${as}, b: ${as}) -> ${as} { return ${intMath ? e.i : e.f}; }`,
  });
}

/** out = cond != 0 ? a : b; the output takes a's dtype (as on the CPU). */
export function where(
  ctx: GpuContext,
  cond: View,
  a: View,
  b: View,
  outShape: readonly number[],
): GpuStorage {
  const outDtype: DType = a.storage.dtype;
  const zero = cond.storage.dtype === "i32" ? "0" : "0.0";
  return runElementwise(ctx, {
    name: `where_${cond.storage.dtype}_${outDtype}`,
    inputs: [
      { view: cond, as: cond.storage.dtype },
      { view: a, as: outDtype },
      { view: b, as: outDtype },
    ],
    outShape,
    outDtype,
    expr: `select(v2, v1, v0 != ${zero})`,
    exprType: outDtype,
  });
}

export function affine(ctx: GpuContext, x: GpuStorage, scale: number, shift: number): GpuStorage {
  if (x.dtype === "i32" && isI32(scale) && isI32(shift)) {
    // Integer scale and shift keep exact integer math (token-id offsets and the like).
    return runElementwise(ctx, {
      name: "affine_i32_exact",
      inputs: [{ view: flatView(x), as: "i32" }],
      outShape: [x.length],
      outDtype: "i32",
      expr: "v0 * P.scale + P.shift",
      exprType: "i32",
      extraParams: [i32("scale"), i32("shift")],
      extraValues: { scale, shift },
    });
  }
  return runElementwise(ctx, {
    name: `affine_${x.dtype}`,
    inputs: [{ view: flatView(x), as: "f32" }],
    outShape: [x.length],
    outDtype: x.dtype,
    expr: "fma(v0, P.scale, P.shift)",
    exprType: "f32",
    extraParams: [f32("scale"), f32("shift")],
    extraValues: { scale, shift },
  });
}

export function powScalar(ctx: GpuContext, x: GpuStorage, p: number): GpuStorage {
  // Common exponents get exact forms; the rest go through pow_f.
  const expr = p === 1
    ? "v0"
    : p === 2
    ? "v0 * v0"
    : p === 3
    ? "v0 * v0 * v0"
    : p === 0.5
    ? "sqrt(v0)"
    : p === -1
    ? "1.0 / v0"
    : "pow_f(v0, P.p)";
  return runElementwise(ctx, {
    name: `powScalar_${x.dtype}`,
    inputs: [{ view: flatView(x), as: "f32" }],
    outShape: [x.length],
    outDtype: x.dtype,
    expr,
    exprType: "f32",
    helpers: mathHelpersFor(expr),
    extraParams: [f32("p")],
    extraValues: { p },
  });
}

function isI32(v: number): boolean {
  return Number.isInteger(v) && v >= -2147483648 && v <= 2147483647;
}

export function clamp(ctx: GpuContext, x: GpuStorage, lo: number, hi: number): GpuStorage {
  if (x.dtype === "i32") {
    // Compare as numbers, store the bound truncated toward zero (a typed-array store).
    const trunc = (
      v: number,
    ) => (Number.isFinite(v) ? Math.max(-2147483648, Math.min(2147483647, Math.trunc(v))) : 0);
    return runElementwise(ctx, {
      name: "clamp_i32",
      inputs: [{ view: flatView(x), as: "i32" }],
      outShape: [x.length],
      outDtype: "i32",
      expr: "select(select(v0, P.hi_i, f32(v0) > P.hi), P.lo_i, f32(v0) < P.lo)",
      exprType: "i32",
      extraParams: [f32("lo"), f32("hi"), i32("lo_i"), i32("hi_i")],
      extraValues: { lo, hi, lo_i: trunc(lo), hi_i: trunc(hi) },
    });
  }
  return runElementwise(ctx, {
    name: "clamp_f32",
    inputs: [{ view: flatView(x), as: "f32" }],
    outShape: [x.length],
    outDtype: "f32",
    expr: "select(select(v0, P.hi, v0 > P.hi), P.lo, v0 < P.lo)",
    exprType: "f32",
    extraParams: [f32("lo"), f32("hi")],
    extraValues: { lo, hi },
  });
}

export function cast(ctx: GpuContext, x: GpuStorage, to: DType): GpuStorage {
  return runElementwise(ctx, {
    name: `cast_${x.dtype}_${to}`,
    inputs: [{ view: flatView(x), as: x.dtype }],
    outShape: [x.length],
    outDtype: to,
    expr: "v0",
    exprType: x.dtype,
  });
}

export function fill(ctx: GpuContext, dtype: DType, length: number, value: number): GpuStorage {
  if (value === 0) return ctx.alloc(dtype, length, true, "fill");
  return runElementwise(ctx, {
    name: `fill_${dtype}`,
    inputs: [],
    outShape: [length],
    outDtype: dtype,
    expr: "P.value",
    exprType: dtype,
    extraParams: [dtype === "f32" ? f32("value") : i32("value")],
    extraValues: { value },
  });
}

export function arange(
  ctx: GpuContext,
  dtype: DType,
  length: number,
  start: number,
  step: number,
): GpuStorage {
  const t = dtype;
  return runElementwise(ctx, {
    name: `arange_${dtype}`,
    inputs: [],
    outShape: [length],
    outDtype: dtype,
    expr: `P.start + ${t}(i) * P.step`,
    exprType: dtype,
    extraParams: [
      t === "f32" ? f32("start") : i32("start"),
      t === "f32" ? f32("step") : i32("step"),
    ],
    extraValues: { start, step },
  });
}

/** Contiguous copy of a strided view (a plain buffer copy when the view is dense). */
export function copy(ctx: GpuContext, src: View): GpuStorage {
  const n = src.shape.reduce((a, b) => a * b, 1);
  alignedStrides(src, src.shape, "copy", "src"); // bounds, before the buffer-copy shortcut
  if (runDenseCheck(src)) {
    const out = ctx.alloc(src.storage.dtype, n, false, "copy");
    ctx.copyElements(src.storage as GpuStorage, src.offset, out, 0, n);
    return out;
  }
  return runElementwise(ctx, {
    name: `copy_${src.storage.dtype}`,
    inputs: [{ view: src, as: src.storage.dtype }],
    outShape: src.shape,
    outDtype: src.storage.dtype,
    expr: "v0",
    exprType: src.storage.dtype,
  });
}

function runDenseCheck(v: View): boolean {
  let expect = 1;
  for (let d = v.shape.length - 1; d >= 0; d--) {
    if (v.shape[d] !== 1 && v.strides[d] !== expect) return false;
    expect *= v.shape[d];
  }
  return true;
}

export function copyInto(ctx: GpuContext, dst: View, src: View): void {
  // A buffer cannot be bound read-only and writable in one dispatch: stage aliased sources.
  let source = src;
  let staged: GpuStorage | null = null;
  if (src.storage === dst.storage) {
    staged = copy(ctx, src);
    source = { storage: staged, shape: src.shape, strides: contiguousOf(src.shape), offset: 0 };
  }
  runElementwise(ctx, {
    name: `copyInto_${src.storage.dtype}_${dst.storage.dtype}`,
    inputs: [{ view: source, as: src.storage.dtype }],
    outShape: dst.shape,
    outDtype: dst.storage.dtype,
    expr: "v0",
    exprType: src.storage.dtype,
  }, dst);
  if (staged) ctx.release(staged);
}

function contiguousOf(shape: readonly number[]): number[] {
  const s: number[] = [];
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = shape[d] === 1 ? 0 : acc;
    acc *= shape[d];
  }
  return s;
}
