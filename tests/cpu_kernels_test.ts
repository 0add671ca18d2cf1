/**
 * CPU backend kernels, part 1: storage bookkeeping and errors, elementwise ops over
 * strided views, reductions, indexing, random streams and the optimiser. References are
 * closed forms and naive float64 loops written here; tolerances are stated per test
 * (f32 outputs are compared with a relative tolerance of a few f32 ulps).
 * Part 2 (norms, softmax, loss, pooling, resizing) is in cpu_kernels_nn_test.ts.
 */

import { expect, it } from "./lib/test.ts";
import type { BinaryOp, Storage, UnaryOp, View } from "../core/backend.ts";
import { CpuBackend } from "../core/backends/cpu/mod.ts";
import { erf, erfc, gelu, geluGrad } from "../core/backends/cpu/erf.ts";
import { geluGradInto, geluInto } from "../core/backends/cpu/gelu.ts";
import { normalAt, Rng, uniformAt } from "../core/random.ts";
import { assertClose, loadFixture, numericGrad, randn } from "./cpu_kernels_util.ts";

const F32_RTOL = 3e-7; // a little over 2 f32 ulps

function view(storage: Storage, shape: number[], strides: number[], offset = 0): View {
  return { storage, shape, strides, offset };
}

function contiguous(storage: Storage, shape: number[]): View {
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  return view(storage, shape, strides);
}

// ---------------------------------------------------------------- storage

it("storage: live count, read, release, and use after release", async () => {
  const be = new CpuBackend();
  expect(be.name).toBe("cpu");
  expect(be.description).toMatch(/^cpu: /);
  const host = Float32Array.of(1, 2, 3);
  const a = be.fromHost(host);
  host[0] = 99; // fromHost copies
  const b = be.alloc("i32", 4);
  expect(be.liveStorages()).toBe(2);
  expect(Array.from(be.readSync(a))).toEqual([1, 2, 3]);
  expect(Array.from(await be.read(b))).toEqual([0, 0, 0, 0]);
  expect(b.dtype).toBe("i32");
  const c = be.unary("neg", a);
  expect(be.liveStorages()).toBe(3);
  be.release(a);
  expect(be.liveStorages()).toBe(2);
  expect(() => be.unary("exp", a)).toThrow(
    /unary exp: x \(f32, 3 elements\) was used after release/,
  );
  expect(() => be.readSync(a)).toThrow(/used after release/);
  await expect(be.read(a)).rejects.toThrow(/used after release/);
  expect(() => be.release(a)).toThrow(/released twice/);
  be.release(b);
  be.release(c);
  expect(be.liveStorages()).toBe(0);
});

it("storage: foreign storages, wrong dtype and short inputs are rejected", () => {
  const be = new CpuBackend();
  const other = new CpuBackend();
  const x = other.fromHost(new Float32Array(4));
  expect(() => be.unary("neg", x)).toThrow(/belongs to another cpu backend/);
  const idx = be.fromHost(Float32Array.of(0, 1));
  const table = be.fromHost(new Float32Array(6));
  expect(() => be.gather(table, idx, 3, 2)).toThrow(/gather: idx must be i32, got f32/);
  expect(() => be.softmax(be.fromHost(new Float32Array(5)), 2, 3, false)).toThrow(
    /softmax: x has 5 elements, needs 6/,
  );
  const s = be.fromHost(new Float32Array(4));
  expect(() => be.copy(view(s, [2, 3], [3, 1]))).toThrow(
    /copy: src view .* reaches elements 0\.\.5 of a storage with 4/,
  );
});

// ---------------------------------------------------------------- elementwise

const UNARY_REFERENCE: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  abs: Math.abs,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  silu: (x) => x / (1 + Math.exp(-x)),
  gelu: (x) => 0.5 * x * erfc(-x / Math.SQRT2), // erfc form: no cancellation for x << 0
  relu: (x) => Math.max(x, 0),
  sin: Math.sin,
  cos: Math.cos,
  square: (x) => x * x,
  reciprocal: (x) => 1 / x,
  floor: Math.floor,
  sign: Math.sign,
  gelu_grad: geluGrad,
  silu_grad: (x) => {
    const s = 1 / (1 + Math.exp(-x));
    return s + x * s * (1 - s);
  },
};

it("unary: every op against its closed form (rtol 3e-7 + atol 1e-30)", () => {
  const be = new CpuBackend();
  const values = Float32Array.of(-7.5, -3, -1.25, -0.5, -1e-3, 0, 2e-4, 0.3, 1, 2.5, 6, 40);
  const positive = values.map(Math.abs).map((v) => v + 0.01);
  for (const [op, ref] of Object.entries(UNARY_REFERENCE) as [UnaryOp, (x: number) => number][]) {
    const input = ["log", "sqrt", "rsqrt"].includes(op) ? positive : values;
    const y = be.readSync(be.unary(op, be.fromHost(input)));
    assertClose(y, Array.from(input, ref).map(Math.fround), 1e-30, F32_RTOL, `unary ${op}`);
  }
  // i32 keeps its dtype.
  const yi = be.readSync(be.unary("abs", be.fromHost(Int32Array.of(-3, 4))));
  expect(yi).toBeInstanceOf(Int32Array);
  expect(Array.from(yi)).toEqual([3, 4]);
});

it("erf, erfc, GELU and its derivative against mpmath (rtol 1e-13)", () => {
  const rows = loadFixture<
    { erf: { x: number; erf: number; erfc: number; gelu: number; geluGrad: number }[] }
  >(
    "cpu_kernels/torch_ops.json",
  ).erf;
  for (const r of rows) {
    assertClose(
      [erf(r.x), erfc(r.x), gelu(r.x), geluGrad(r.x)],
      [r.erf, r.erfc, r.gelu, r.geluGrad],
      0,
      1e-13,
      `erf family at x=${r.x}`,
    );
  }
  // GELU's derivative against float64 central differences of gelu itself (h 1e-5, atol 1e-9).
  const xs = [-5, -2.1, -0.7, 0.01, 0.9, 1.3, 3.7];
  for (const x of xs) {
    const fd = numericGrad((v) => gelu(v[0]), [x])[0];
    assertClose([geluGrad(x)], [fd], 1e-9, 0, `gelu_grad at ${x}`);
  }
});

// The tabulated GELU kernels (gelu.ts) are within 3e-8 relative of the exact values before
// the f32 store, which adds at most 2^-24 relative: 9e-8 in all, i.e. within one f32 ulp.
const GELU_KERNEL_RTOL = 3e-8 + 2 ** -24;

it("gelu kernels against mpmath, all branches (rtol 9e-8, atol 1e-45)", () => {
  // The f32-exact x of the fixture (17 of 30) span the slow tail (< -8), the tables and
  // the x >= 8 shortcut.
  const rows = loadFixture<{ erf: { x: number; gelu: number; geluGrad: number }[] }>(
    "cpu_kernels/torch_ops.json",
  ).erf.filter((r) => Math.fround(r.x) === r.x);
  expect(rows.length).toBe(17);
  const x = Float32Array.from(rows, (r) => r.x);
  const y = new Float32Array(x.length);
  geluInto(x, y);
  assertClose(y, rows.map((r) => r.gelu), 1e-45, GELU_KERNEL_RTOL, "geluInto vs mpmath");
  geluGradInto(x, y);
  assertClose(y, rows.map((r) => r.geluGrad), 1e-45, GELU_KERNEL_RTOL, "geluGradInto vs mpmath");
  const special = Float32Array.of(NaN, Infinity, -0);
  geluInto(special, y);
  expect(Array.from(y.subarray(0, 3))).toEqual([NaN, Infinity, -0]);
});

it("gelu kernels on a dense grid against the float64 erf (rtol 9e-8, atol 1e-45)", () => {
  // Every table interval at 41 points each, plus the tail to where GELU underflows f32.
  // The reference is the double erfc above (itself within 1e-13 of mpmath), evaluated at
  // points between the interpolation nodes, so this measures the interpolation error.
  const x = new Float32Array(2 * 14 * 8 * 41);
  for (let i = 0; i < x.length; i++) x[i] = -14 + (i + 0.3) / (8 * 41);
  const y = new Float32Array(x.length);
  geluInto(x, y);
  assertClose(y, Array.from(x, gelu), 1e-45, GELU_KERNEL_RTOL, "geluInto grid");
  geluGradInto(x, y);
  // GELU' crosses zero near x = -0.7518, where only absolute accuracy (1e-12 here) is possible.
  assertClose(y, Array.from(x, geluGrad), 1e-12, GELU_KERNEL_RTOL, "geluGradInto grid");
});

function binaryReference(op: BinaryOp, a: number, b: number): number {
  switch (op) {
    case "add":
      return a + b;
    case "sub":
      return a - b;
    case "mul":
      return a * b;
    case "div":
      return a / b;
    case "pow":
      return a ** b;
    case "max":
      return Math.max(a, b);
    case "min":
      return Math.min(a, b);
    case "eq":
      return a === b ? 1 : 0;
    case "ne":
      return a !== b ? 1 : 0;
    case "lt":
      return a < b ? 1 : 0;
    case "le":
      return a <= b ? 1 : 0;
    case "gt":
      return a > b ? 1 : 0;
    case "ge":
      return a >= b ? 1 : 0;
  }
}

const BINARY_OPS: BinaryOp[] = [
  "add",
  "sub",
  "mul",
  "div",
  "pow",
  "max",
  "min",
  "eq",
  "ne",
  "lt",
  "le",
  "gt",
  "ge",
];

it("binary: strided and broadcast views against a naive index loop (rtol 3e-7)", () => {
  const be = new CpuBackend();
  // a: a (2,3,4) window with odd strides into 40 values; b: a (3,1) column whose size-1
  // axis has a nonzero stride (it must still broadcast), right-aligned against (2,3,4).
  const aData = randn(40, 1).map((v) => Math.abs(v) + 0.5);
  const bData = randn(20, 2).map((v) => Math.round(v * 2) / 2);
  aData[3] = bData[1]; // one exact tie so eq/le/ge see equality
  const A = be.fromHost(aData);
  const B = be.fromHost(bData);
  const av = view(A, [2, 3, 4], [1, 8, 2], 3);
  const bv = view(B, [3, 1], [5, 7], 1);
  const shape = [2, 3, 4];
  for (const op of BINARY_OPS) {
    const expected: number[] = [];
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 3; j++) {
        for (let k = 0; k < 4; k++) {
          expected.push(binaryReference(op, aData[3 + i + 8 * j + 2 * k], bData[1 + 5 * j]));
        }
      }
    }
    const y = be.readSync(be.binary(op, av, bv, shape, "f32"));
    assertClose(y, expected.map(Math.fround), 0, F32_RTOL, `binary ${op} strided`);
  }
});

it("binary: contiguous, scalar and row-broadcast fast paths, and i32 outputs", () => {
  const be = new CpuBackend();
  const aData = randn(30, 3);
  const rowData = randn(6, 4);
  const A = be.fromHost(aData);
  const R = be.fromHost(rowData);
  const S = be.fromHost(Float32Array.of(0.25));
  const same = be.readSync(
    be.binary("mul", contiguous(A, [5, 6]), contiguous(A, [5, 6]), [5, 6], "f32"),
  );
  assertClose(same, Array.from(aData, (v) => Math.fround(v * v)), 0, 0, "contiguous mul");
  const scalar = be.readSync(
    be.binary("sub", contiguous(A, [5, 6]), view(S, [], []), [5, 6], "f32"),
  );
  assertClose(scalar, Array.from(aData, (v) => Math.fround(v - 0.25)), 0, 0, "scalar sub");
  const row = be.readSync(
    be.binary("add", contiguous(A, [5, 6]), contiguous(R, [6]), [5, 6], "f32"),
  );
  assertClose(row, Array.from(aData, (v, i) => Math.fround(v + rowData[i % 6])), 0, 0, "row add");
  // Column broadcast: b is (5,1) against (5,6).
  const col = be.readSync(
    be.binary("max", contiguous(A, [5, 6]), view(R, [5, 1], [1, 1]), [5, 6], "f32"),
  );
  assertClose(
    col,
    Array.from(aData, (v, i) => Math.max(v, rowData[Math.floor(i / 6)])),
    0,
    0,
    "column max",
  );

  const I = be.fromHost(Int32Array.of(7, -7, 9, 2));
  const J = be.fromHost(Int32Array.of(2, 2, -4, 2));
  const q = be.readSync(be.binary("div", contiguous(I, [4]), contiguous(J, [4]), [4], "i32"));
  expect(q).toBeInstanceOf(Int32Array);
  expect(Array.from(q)).toEqual([3, -3, -2, 1]); // truncation toward zero
  const lt = be.readSync(be.binary("lt", contiguous(I, [4]), contiguous(J, [4]), [4], "i32"));
  expect(Array.from(lt)).toEqual([0, 1, 0, 0]);
  expect(() => be.binary("add", contiguous(A, [5, 6]), contiguous(R, [6]), [6, 5], "f32")).toThrow(
    /binary add: a shape \[5,6\] does not broadcast to \[6,5\]/,
  );
});

/** A random strided view of `shape` into a fresh storage: permuted axes, gaps, an offset, some broadcast axes. */
function randomView(
  be: CpuBackend,
  shape: number[],
  rng: Rng,
  seed: number,
  broadcast: boolean,
): { v: View; at: (index: number[]) => number } {
  const rank = shape.length;
  const vshape = shape.map((d) => (broadcast && rng.uniform() < 0.4 ? 1 : d));
  const order = rng.permutation(rank);
  const strides = new Array<number>(rank);
  let s = 1 + rng.int(2);
  for (const axis of Array.from(order).reverse()) {
    strides[axis] = s;
    s *= vshape[axis] + rng.int(2);
  }
  const offset = rng.int(5);
  // Rounded normals: plenty of exact zeros for `where` conditions.
  const data = randn(offset + s + 1, seed).map((x) => Math.round(x * 4) / 4);
  const v = view(be.fromHost(data), vshape, strides, offset);
  const at = (index: number[]) =>
    be.readSync(v.storage)[
      offset + index.reduce((acc, i, k) => acc + (vshape[k] === 1 ? 0 : i * strides[k]), 0)
    ];
  return { v, at };
}

function* indices(shape: number[]): Generator<number[]> {
  const total = shape.reduce((a, b) => a * b, 1);
  for (let flat = 0; flat < total; flat++) {
    const index = new Array<number>(shape.length);
    let rest = flat;
    for (let k = shape.length - 1; k >= 0; k--) {
      index[k] = rest % shape[k];
      rest = Math.floor(rest / shape[k]);
    }
    yield index;
  }
}

it("binary, where, copyInto: 40 random strided/broadcast layouts against index loops (exact)", () => {
  const be = new CpuBackend();
  const rng = new Rng(99);
  for (let trial = 0; trial < 40; trial++) {
    const rank = 1 + rng.int(4);
    const shape = Array.from(
      { length: rank },
      () => (rng.uniform() < 0.2 ? 17 + rng.int(30) : 1 + rng.int(4)),
    );
    const a = randomView(be, shape, rng, 1000 + trial, rng.uniform() < 0.5);
    const b = randomView(be, shape, rng, 2000 + trial, true);
    const c = randomView(be, shape, rng, 3000 + trial, true);
    const sub = be.readSync(be.binary("sub", a.v, b.v, shape, "f32"));
    const sel = be.readSync(be.where(c.v, a.v, b.v, shape));
    const dst = randomView(be, shape, rng, 4000 + trial, false);
    be.copyInto(dst.v, b.v);
    let o = 0;
    for (const index of indices(shape)) {
      expect(sub[o], `trial ${trial} sub at [${index}]`).toBe(
        Math.fround(a.at(index) - b.at(index)),
      );
      expect(sel[o], `trial ${trial} where at [${index}]`).toBe(
        c.at(index) !== 0 ? a.at(index) : b.at(index),
      );
      expect(dst.at(index), `trial ${trial} copyInto at [${index}]`).toBe(b.at(index));
      o++;
    }
  }
});

it("where: broadcast condition picks between strided views", () => {
  const be = new CpuBackend();
  const cond = be.fromHost(Float32Array.of(1, 0, 1));
  const a = be.fromHost(Float32Array.of(1, 2, 3, 4, 5, 6));
  const b = be.fromHost(Float32Array.of(-1));
  // cond (3,) broadcast over rows of (2,3); a read transposed from a (3,2) block.
  const y = be.readSync(
    be.where(contiguous(cond, [3]), view(a, [2, 3], [1, 2]), view(b, [1], [0]), [2, 3]),
  );
  expect(Array.from(y)).toEqual([1, -1, 5, 2, -1, 6]);
});

it("copy and copyInto: transposed, offset and overlapping windows", () => {
  const be = new CpuBackend();
  const x = be.fromHost(Float32Array.from({ length: 12 }, (_, i) => i));
  // Transpose of the (3,4) matrix starting at offset 0, then a (2,2) window at offset 5.
  expect(Array.from(be.readSync(be.copy(view(x, [4, 3], [1, 4]))))).toEqual([
    0,
    4,
    8,
    1,
    5,
    9,
    2,
    6,
    10,
    3,
    7,
    11,
  ]);
  expect(Array.from(be.readSync(be.copy(view(x, [2, 2], [4, 1], 5))))).toEqual([5, 6, 9, 10]);
  // copyInto: write a (2,3) source into every other column of a (2,6) destination.
  const dst = be.alloc("f32", 12);
  const src = be.fromHost(Float32Array.of(1, 2, 3, 4, 5, 6));
  be.copyInto(view(dst, [2, 3], [6, 2], 1), contiguous(src, [2, 3]));
  expect(Array.from(be.readSync(dst))).toEqual([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6]);
  // Overlap: shift x[0..8) right by 2 inside the same storage (memmove semantics).
  be.copyInto(view(x, [8], [1], 2), view(x, [8], [1], 0));
  expect(Array.from(be.readSync(x))).toEqual([0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 10, 11]);
  // Broadcast source: one value into a (2,2) window.
  be.copyInto(view(dst, [2, 2], [6, 1], 0), view(be.fromHost(Float32Array.of(9)), [1], [0]));
  expect(Array.from(be.readSync(dst)).slice(0, 8)).toEqual([9, 9, 0, 2, 0, 3, 9, 9]);
});

it("cast, arange, fill, affine, powScalar, clamp: closed forms", () => {
  const be = new CpuBackend();
  const x = be.fromHost(Float32Array.of(-2.7, -0.5, 0, 1.5, 3.99, NaN));
  expect(Array.from(be.readSync(be.cast(x, "i32")))).toEqual([-2, 0, 0, 1, 3, 0]);
  expect(Array.from(be.readSync(be.cast(be.fromHost(Int32Array.of(-3, 16777217)), "f32")))).toEqual(
    [-3, 16777216],
  );
  expect(Array.from(be.readSync(be.arange("i32", 4, 5, -2)))).toEqual([5, 3, 1, -1]);
  assertClose(
    be.readSync(be.arange("f32", 3, 0.5, 0.1)),
    [0.5, 0.6, 0.7].map(Math.fround),
    0,
    0,
    "arange f32",
  );
  expect(Array.from(be.readSync(be.fill("f32", 3, 2.5)))).toEqual([2.5, 2.5, 2.5]);
  const v = Float32Array.of(-2, -0.5, 0.25, 3);
  const s = be.fromHost(v);
  assertClose(be.readSync(be.affine(s, 3, -1)), Array.from(v, (t) => t * 3 - 1), 0, 0, "affine");
  for (const p of [2, 0.5, -1, 1, 3, -0.5]) {
    const pos = be.fromHost(v.map(Math.abs));
    assertClose(
      be.readSync(be.powScalar(pos, p)),
      Array.from(v, (t) => Math.fround(Math.abs(t) ** p)),
      0,
      F32_RTOL,
      `powScalar ${p}`,
    );
  }
  const c = be.readSync(be.clamp(be.fromHost(Float32Array.of(-3, 0.1, 7, NaN)), -1, 1));
  expect(Array.from(c).slice(0, 3)).toEqual([-1, Math.fround(0.1), 1]);
  expect(Number.isNaN(c[3])).toBeTruthy();
});

// ---------------------------------------------------------------- reductions

it("reduce: sum/max/min/argmax/argmin over the middle axis, first extreme wins", () => {
  const be = new CpuBackend();
  const [outer, axis, inner] = [3, 5, 4];
  // Small integers make ties certain.
  const data = Float32Array.from(randn(outer * axis * inner, 5), (v) => Math.round(v * 1.5));
  const x = be.fromHost(data);
  const at = (o: number, a: number, i: number) => data[(o * axis + a) * inner + i];
  const want: Record<string, number[]> = { sum: [], max: [], min: [], argmax: [], argmin: [] };
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const col = Array.from({ length: axis }, (_, a) => at(o, a, i));
      want.sum.push(col.reduce((s, v) => s + v, 0));
      want.max.push(Math.max(...col));
      want.min.push(Math.min(...col));
      want.argmax.push(col.indexOf(Math.max(...col)));
      want.argmin.push(col.indexOf(Math.min(...col)));
    }
  }
  for (const op of ["sum", "max", "min", "argmax", "argmin"] as const) {
    const y = be.readSync(be.reduce(op, x, outer, axis, inner));
    expect(Array.from(y), `reduce ${op}`).toEqual(want[op]);
    if (op.startsWith("arg")) expect(y).toBeInstanceOf(Int32Array);
  }
  // inner = 1 path and NaN propagation.
  const row = be.fromHost(Float32Array.of(1, 5, 5, NaN, 2, 3, 3, 0));
  expect(Array.from(be.readSync(be.reduce("argmax", row, 2, 4, 1)))).toEqual([3, 1]);
  expect(Number.isNaN(be.readSync(be.reduce("max", row, 2, 4, 1))[0])).toBeTruthy();
  expect(Array.from(be.readSync(be.reduce("argmin", row, 2, 4, 1)))).toEqual([3, 3]);
  // Sums accumulate in float64: 1 + 1e8 - 1e8 ... keeps the 1.
  const big = be.fromHost(Float32Array.of(1, 1e8, -1e8));
  expect(be.readSync(be.reduce("sum", big, 1, 3, 1))[0]).toBe(1);
  expect(() => be.reduce("max", x, 2, 0, 3)).toThrow(/reduce: max over an empty axis/);
});

// ---------------------------------------------------------------- indexing

it("gather, scatterAdd, gatherCols against naive loops; bad indices throw", () => {
  const be = new CpuBackend();
  const [rows, cols] = [4, 3];
  const tableData = randn(rows * cols, 6);
  const table = be.fromHost(tableData);
  const idxData = Int32Array.of(3, 0, 3, 1, 3);
  const idx = be.fromHost(idxData);
  const g = be.readSync(be.gather(table, idx, rows, cols));
  expect(Array.from(g)).toEqual(
    Array.from(idxData).flatMap((r) => Array.from(tableData.slice(r * cols, r * cols + cols))),
  );

  const srcData = randn(idxData.length * cols, 7);
  const s = be.readSync(be.scatterAdd(be.fromHost(srcData), idx, rows, cols));
  const want = new Float64Array(rows * cols);
  idxData.forEach((r, i) => {
    for (let c = 0; c < cols; c++) want[r * cols + c] += srcData[i * cols + c];
  });
  assertClose(s, want, 1e-6, 1e-6, "scatterAdd");

  const colIdx = be.fromHost(Int32Array.of(2, 0, 1, 2));
  const gc = be.readSync(be.gatherCols(table, colIdx, rows, cols));
  expect(Array.from(gc)).toEqual([tableData[2], tableData[3], tableData[7], tableData[11]]);

  const bad = be.fromHost(Int32Array.of(0, 4));
  expect(() => be.gather(table, bad, rows, cols)).toThrow(
    /gather: index 4 at position 1 is out of range \[0, 4\)/,
  );
  expect(() => be.scatterAdd(be.fromHost(new Float32Array(6)), bad, rows, cols)).toThrow(
    /scatterAdd: index 4 at position 1 is out of range \[0, 4\)/,
  );
  expect(() => be.gatherCols(table, be.fromHost(Int32Array.of(0, -1, 0, 0)), rows, cols)).toThrow(
    /gatherCols: index -1 at position 1 is out of range \[0, 3\)/,
  );
});

// ---------------------------------------------------------------- randomness

it("uniform/normal: element i is the shared hash at (seed, offset+i)", () => {
  const be = new CpuBackend();
  const u = be.readSync(be.uniform(64, 123, 1000));
  const n = be.readSync(be.normal(64, 123, 1000));
  for (let i = 0; i < 64; i++) {
    expect(u[i]).toBe(uniformAt(123, 1000 + i));
    expect(n[i]).toBe(Math.fround(normalAt(123, 1000 + i)));
  }
  // Draws depend only on the counter: a later window matches the tail of an earlier one.
  expect(Array.from(be.readSync(be.uniform(8, 123, 1056)))).toEqual(Array.from(u.slice(56)));
  // Moments of a large sample (standard errors: 0.0058 for the uniform mean, 0.0071 for the normal).
  const big = Float64Array.from(be.readSync(be.normal(20000, 7, 0)));
  const mean = big.reduce((s, v) => s + v, 0) / big.length;
  const variance = big.reduce((s, v) => s + (v - mean) ** 2, 0) / big.length;
  expect(
    Math.abs(mean) < 0.03 && Math.abs(variance - 1) < 0.05,
    `normal mean ${mean}, var ${variance}`,
  ).toBeTruthy();
  const uu = Float64Array.from(be.readSync(be.uniform(5000, 8, 0)));
  const umean = uu.reduce((s, v) => s + v, 0) / uu.length;
  expect(
    Math.abs(umean - 0.5) < 0.025 && Math.min(...uu) >= 0 && Math.max(...uu) < 1,
    `uniform mean ${umean}`,
  ).toBeTruthy();
});

it("dropout: keep iff uniform >= p, kept values scaled by 1/(1-p)", () => {
  const be = new CpuBackend();
  const xData = randn(4000, 9);
  const p = 0.3;
  const { y, mask } = be.dropout(be.fromHost(xData), p, 42, 77);
  const yd = be.readSync(y);
  const md = be.readSync(mask);
  let kept = 0;
  for (let i = 0; i < xData.length; i++) {
    const keep = uniformAt(42, 77 + i) >= p;
    kept += keep ? 1 : 0;
    expect(md[i]).toBe(keep ? 1 : 0);
    expect(yd[i]).toBe(keep ? Math.fround(xData[i] / (1 - p)) : 0);
  }
  expect(Math.abs(kept / xData.length - 0.7), `kept fraction ${kept / xData.length}`).toBeLessThan(
    0.03,
  );
  expect(Array.from(be.readSync(be.dropout(be.fromHost(xData.slice(0, 3)), 1, 1, 0).y))).toEqual([
    0,
    0,
    0,
  ]);
});

// ---------------------------------------------------------------- optimiser

it("adamw: three in-place steps against PyTorch's update order in float64 (rtol 1e-6)", () => {
  const be = new CpuBackend();
  const n = 50;
  const p0 = randn(n, 10);
  const grads = [randn(n, 11), randn(n, 12, 3), randn(n, 13, 0.01)];
  const param = be.fromHost(p0);
  const m = be.alloc("f32", n);
  const v = be.alloc("f32", n);
  const ref = { p: Float64Array.from(p0), m: new Float64Array(n), v: new Float64Array(n) };
  const base = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.05, gradScale: 0.5 };
  for (let step = 1; step <= 3; step++) {
    const grad = be.fromHost(grads[step - 1]);
    be.adamw(param, grad, m, v, { ...base, step });
    for (let i = 0; i < n; i++) {
      const g = grads[step - 1][i] * base.gradScale;
      ref.p[i] *= 1 - base.lr * base.weightDecay;
      ref.m[i] = base.beta1 * ref.m[i] + (1 - base.beta1) * g;
      ref.v[i] = base.beta2 * ref.v[i] + (1 - base.beta2) * g * g;
      const mhat = ref.m[i] / (1 - base.beta1 ** step);
      const vhat = ref.v[i] / (1 - base.beta2 ** step);
      ref.p[i] -= (base.lr * mhat) / (Math.sqrt(vhat) + base.eps);
    }
  }
  assertClose(be.readSync(param), ref.p, 1e-7, 1e-6, "adamw param");
  assertClose(be.readSync(m), ref.m, 1e-9, 1e-6, "adamw m");
  assertClose(be.readSync(v), ref.v, 1e-12, 1e-6, "adamw v");
  expect(() => be.adamw(param, be.alloc("f32", 3), m, v, { ...base, step: 4 })).toThrow(
    /adamw: grad has 3 elements, param has 50/,
  );
});

it("sumSquares: float64 accumulation", () => {
  const be = new CpuBackend();
  const data = randn(1000, 14, 100);
  const want = data.reduce((s, x) => s + x * x, 0);
  assertClose(be.readSync(be.sumSquares(be.fromHost(data))), [want], 0, F32_RTOL, "sumSquares");
});

// ---------------------------------------------------------------- linear algebra wiring

it("matmul through the backend: bias epilogue and transposes reach the kernel", () => {
  const be = new CpuBackend();
  const [M, N, K] = [3, 4, 5];
  const a = randn(K * M, 15); // stored (K, M): transA
  const b = randn(K * N, 16);
  const bias = randn(N, 17);
  const y = be.readSync(be.matmul(be.fromHost(a), be.fromHost(b), {
    batch: 1,
    M,
    N,
    K,
    transA: true,
    transB: false,
    strideA: 0,
    strideB: 0,
    bias: be.fromHost(bias),
  }));
  const want: number[] = [];
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = bias[j];
      for (let k = 0; k < K; k++) s += a[k * M + i] * b[k * N + j];
      want.push(s);
    }
  }
  assertClose(y, want, 1e-5, 1e-5, "matmul");
});
