/**
 * CPU backend kernels, part 2: softmax, layer/group norm, cross-entropy, pooling and
 * resizing. Forwards are checked against naive float64 loops written here and against
 * torch 1.13 (tests/fixtures/make_cpu_kernel_fixtures.py); every backward against float64
 * central differences of the naive forward (h = 1e-5) and, where torch has the op, against
 * torch's gradients. Linear ops (pooling, resizing) also pass the adjoint identity
 * <A x, dy> = <x, A^T dy>.
 */

import { expect, it } from "./lib/test.ts";
import type { Pool2dArgs, ResizeArgs, ResizeMode } from "../core/backend.ts";
import { CpuBackend } from "../core/backends/cpu/mod.ts";
import { assertClose, dot, loadFixture, numericGrad, randn } from "./cpu_kernels_util.ts";

const be = new CpuBackend();
const read = (s: Parameters<typeof be.readSync>[0]) => be.readSync(s) as Float32Array;
const up = (a: Float32Array | Int32Array) => be.fromHost(a);

// f32 kernel against float64 differences: a few f32 ulps of the largest terms.
const FD_ATOL = 3e-5;
const FD_RTOL = 1e-4;
// f32 kernel against torch's f32 kernel.
const TORCH_ATOL = 2e-5;
const TORCH_RTOL = 1e-5;

interface Fixture {
  resize: { inputs: Record<string, number[]>; cases: ResizeCase[] };
  layerNorm: NormCase & { rows: number; cols: number };
  groupNorm: NormCase & { N: number; C: number; HW: number; groups: number };
  crossEntropy: {
    rows: number;
    cols: number;
    smoothing: number;
    ignoreIndex: number;
    logits: number[];
    targets: number[];
    loss: number[];
    dloss: number[];
    dlogits: number[];
  };
  avgPool: (Pool2dArgs & { x: number[]; y: number[]; dy: number[]; dx: number[] })[];
}
interface NormCase {
  eps: number;
  x: number[];
  weight: number[];
  bias: number[];
  y: number[];
  dy: number[];
  dx: number[];
  dweight: number[];
  dbias: number[];
}
interface ResizeCase {
  name: string;
  mode: ResizeMode;
  alignCorners: boolean;
  planes: number;
  inH: number;
  inW: number;
  outH: number;
  outW: number;
  scaleH: number;
  scaleW: number;
  x: string;
  y: number[];
  dy: number[];
  dx: number[];
}

const fixture = loadFixture<Fixture>("cpu_kernels/torch_ops.json");
const f32 = (a: number[]) => Float32Array.from(a);

// ---------------------------------------------------------------- softmax

function softmaxRef(x: ArrayLike<number>, rows: number, cols: number, log: boolean): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = Array.from({ length: cols }, (_, c) => x[r * cols + c]);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    row.forEach((v, c) => (y[r * cols + c] = log ? v - lse : Math.exp(v - lse)));
  }
  return y;
}

it("softmax and log-softmax: forward vs float64, backward vs central differences", () => {
  const [rows, cols] = [3, 7];
  const x = randn(rows * cols, 20, 3);
  x[5] = 80; // large logits must not overflow
  const dy = randn(rows * cols, 21);
  for (const log of [false, true]) {
    const y = be.softmax(up(x), rows, cols, log);
    assertClose(read(y), softmaxRef(x, rows, cols, log), 1e-7, 1e-6, `softmax log=${log}`);
    const dx = read(be.softmaxBackward(y, up(dy), rows, cols, log));
    const fd = numericGrad((v) => dot(softmaxRef(v, rows, cols, log), dy), x);
    assertClose(dx, fd, FD_ATOL, FD_RTOL, `softmaxBackward log=${log}`);
  }
});

// ---------------------------------------------------------------- norms

/** Group norm in float64 over (N, C, HW); layer norm is N=rows, C=1 group of `cols`... via groups=1, HW=cols. */
function groupNormRef(
  x: ArrayLike<number>,
  w: ArrayLike<number> | null,
  b: ArrayLike<number> | null,
  N: number,
  C: number,
  HW: number,
  groups: number,
  eps: number,
  channelOf: (c: number, i: number) => number,
): Float64Array {
  const y = new Float64Array(N * C * HW);
  const size = (C / groups) * HW;
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      const start = n * C * HW + g * size;
      let mean = 0;
      for (let i = 0; i < size; i++) mean += x[start + i] / size;
      let v = 0;
      for (let i = 0; i < size; i++) v += (x[start + i] - mean) ** 2 / size;
      for (let i = 0; i < size; i++) {
        const c = channelOf(g * (C / groups), i);
        y[start + i] = ((x[start + i] - mean) / Math.sqrt(v + eps)) * (w ? w[c] : 1) +
          (b ? b[c] : 0);
      }
    }
  }
  return y;
}

function layerNormRef(
  x: ArrayLike<number>,
  w: ArrayLike<number> | null,
  b: ArrayLike<number> | null,
  rows: number,
  cols: number,
  eps: number,
) {
  return groupNormRef(x, w, b, rows, 1, cols, 1, eps, (_c, i) => i);
}

it("layerNorm: forward and backward vs torch, float64 loops and central differences", () => {
  const f = fixture.layerNorm;
  const { rows, cols, eps } = f;
  const [x, w, b, dy] = [f32(f.x), f32(f.weight), f32(f.bias), f32(f.dy)];
  const r = be.layerNorm(up(x), up(w), up(b), rows, cols, eps);
  assertClose(read(r.y), f.y, TORCH_ATOL, TORCH_RTOL, "layerNorm y vs torch");
  assertClose(
    read(r.y),
    layerNormRef(x, w, b, rows, cols, eps),
    1e-5,
    1e-6,
    "layerNorm y vs float64",
  );
  const g = be.layerNormBackward(up(x), up(w), r.mean, r.rstd, up(dy), rows, cols);
  assertClose(read(g.dx), f.dx, TORCH_ATOL, TORCH_RTOL, "layerNorm dx vs torch");
  assertClose(read(g.dweight), f.dweight, TORCH_ATOL, TORCH_RTOL, "layerNorm dweight vs torch");
  assertClose(read(g.dbias), f.dbias, TORCH_ATOL, TORCH_RTOL, "layerNorm dbias vs torch");
  const loss = (xx: ArrayLike<number>, ww: ArrayLike<number>, bb: ArrayLike<number>) =>
    dot(layerNormRef(xx, ww, bb, rows, cols, eps), dy);
  assertClose(
    read(g.dx),
    numericGrad((v) => loss(v, w, b), x),
    FD_ATOL,
    FD_RTOL,
    "layerNorm dx vs FD",
  );
  assertClose(
    read(g.dweight),
    numericGrad((v) => loss(x, v, b), w),
    FD_ATOL,
    FD_RTOL,
    "layerNorm dweight vs FD",
  );
  assertClose(
    read(g.dbias),
    numericGrad((v) => loss(x, w, v), b),
    FD_ATOL,
    FD_RTOL,
    "layerNorm dbias vs FD",
  );

  // Without affine parameters: y = xhat, and dx matches differences of the bare normalisation.
  const bare = be.layerNorm(up(x), null, null, rows, cols, eps);
  assertClose(
    read(bare.y),
    layerNormRef(x, null, null, rows, cols, eps),
    1e-5,
    1e-6,
    "layerNorm bare y",
  );
  const gb = be.layerNormBackward(up(x), null, bare.mean, bare.rstd, up(dy), rows, cols);
  const fd = numericGrad((v) => dot(layerNormRef(v, null, null, rows, cols, eps), dy), x);
  assertClose(read(gb.dx), fd, FD_ATOL, FD_RTOL, "layerNorm bare dx vs FD");
  // Statistics: mean and 1/sqrt(var + eps) of each row.
  const row0 = Array.from(x.slice(0, cols));
  const mean0 = row0.reduce((s, v) => s + v, 0) / cols;
  const var0 = row0.reduce((s, v) => s + (v - mean0) ** 2, 0) / cols;
  assertClose(
    [read(r.mean)[0], read(r.rstd)[0]],
    [mean0, 1 / Math.sqrt(var0 + eps)],
    1e-7,
    1e-6,
    "layerNorm stats",
  );
});

it("groupNorm: forward and backward vs torch, float64 loops and central differences", () => {
  const f = fixture.groupNorm;
  const { N, C, HW, groups, eps } = f;
  const [x, w, b, dy] = [f32(f.x), f32(f.weight), f32(f.bias), f32(f.dy)];
  const channelOf = (c0: number, i: number) => c0 + Math.floor(i / HW);
  const ref = (xx: ArrayLike<number>, ww: ArrayLike<number> | null, bb: ArrayLike<number> | null) =>
    groupNormRef(xx, ww, bb, N, C, HW, groups, eps, channelOf);
  const r = be.groupNorm(up(x), up(w), up(b), N, C, HW, groups, eps);
  assertClose(read(r.y), f.y, TORCH_ATOL, TORCH_RTOL, "groupNorm y vs torch");
  assertClose(read(r.y), ref(x, w, b), 1e-5, 1e-6, "groupNorm y vs float64");
  const g = be.groupNormBackward(up(x), up(w), r.mean, r.rstd, up(dy), N, C, HW, groups);
  assertClose(read(g.dx), f.dx, TORCH_ATOL, TORCH_RTOL, "groupNorm dx vs torch");
  assertClose(read(g.dweight), f.dweight, TORCH_ATOL, TORCH_RTOL, "groupNorm dweight vs torch");
  assertClose(read(g.dbias), f.dbias, TORCH_ATOL, TORCH_RTOL, "groupNorm dbias vs torch");
  const loss = (xx: ArrayLike<number>, ww: ArrayLike<number>, bb: ArrayLike<number>) =>
    dot(ref(xx, ww, bb), dy);
  assertClose(
    read(g.dx),
    numericGrad((v) => loss(v, w, b), x),
    FD_ATOL,
    FD_RTOL,
    "groupNorm dx vs FD",
  );
  assertClose(
    read(g.dweight),
    numericGrad((v) => loss(x, v, b), w),
    FD_ATOL,
    FD_RTOL,
    "groupNorm dweight vs FD",
  );
  assertClose(
    read(g.dbias),
    numericGrad((v) => loss(x, w, v), b),
    FD_ATOL,
    FD_RTOL,
    "groupNorm dbias vs FD",
  );
  expect(() => be.groupNorm(up(x), null, null, N, C, HW, 4, eps)).toThrow(
    /groupNorm: groups 4 must be a positive divisor of C=6/,
  );
});

// ---------------------------------------------------------------- cross-entropy

function crossEntropyRef(
  logits: ArrayLike<number>,
  targets: number[],
  rows: number,
  cols: number,
  eps: number,
  ignore: number,
): Float64Array {
  const logp = softmaxRef(logits, rows, cols, true);
  return Float64Array.from(targets, (t, r) => {
    if (t === ignore) return 0;
    let mean = 0;
    for (let c = 0; c < cols; c++) mean -= logp[r * cols + c] / cols;
    return (1 - eps) * -logp[r * cols + t] + eps * mean;
  });
}

it("crossEntropy: label smoothing and ignore_index vs torch, float64 and central differences", () => {
  const f = fixture.crossEntropy;
  const { rows, cols, smoothing, ignoreIndex } = f;
  const logits = f32(f.logits);
  const targets = be.fromHost(Int32Array.from(f.targets));
  const dloss = f32(f.dloss);
  const r = be.crossEntropy(up(logits), targets, rows, cols, smoothing, ignoreIndex);
  assertClose(read(r.loss), f.loss, TORCH_ATOL, TORCH_RTOL, "crossEntropy loss vs torch");
  const ref = (v: ArrayLike<number>) =>
    crossEntropyRef(v, f.targets, rows, cols, smoothing, ignoreIndex);
  assertClose(read(r.loss), ref(logits), 1e-6, 1e-6, "crossEntropy loss vs float64");
  assertClose(read(r.logp), softmaxRef(logits, rows, cols, true), 1e-6, 1e-6, "crossEntropy logp");
  const dx = read(
    be.crossEntropyBackward(r.logp, targets, up(dloss), rows, cols, smoothing, ignoreIndex),
  );
  assertClose(dx, f.dlogits, TORCH_ATOL, TORCH_RTOL, "crossEntropy dlogits vs torch");
  assertClose(
    dx,
    numericGrad((v) => dot(ref(v), dloss), logits),
    FD_ATOL,
    FD_RTOL,
    "crossEntropy dlogits vs FD",
  );
  const ignored = f.targets.indexOf(ignoreIndex);
  expect(read(r.loss)[ignored]).toBe(0);
  expect(Array.from(dx.slice(ignored * cols, ignored * cols + cols))).toEqual(
    new Array(cols).fill(0),
  );
  expect(() =>
    be.crossEntropy(
      up(logits),
      be.fromHost(Int32Array.from([0, 1, 5, 0, 0, 0])),
      rows,
      cols,
      0,
      -100,
    )
  ).toThrow(/crossEntropy: target 5 in row 2 is out of range \[0, 5\)/);
});

// ---------------------------------------------------------------- pooling

function poolRef(x: ArrayLike<number>, a: Pool2dArgs, kind: "avg" | "max"): Float64Array {
  const y = new Float64Array(a.batch * a.channels * a.outH * a.outW);
  let o = 0;
  for (let p = 0; p < a.batch * a.channels; p++) {
    for (let oh = 0; oh < a.outH; oh++) {
      for (let ow = 0; ow < a.outW; ow++) {
        let sum = 0;
        let count = 0;
        let best = -Infinity;
        // Walk the padded window; padded cells count toward the divisor when countIncludePad.
        for (let kh = 0; kh < a.kH; kh++) {
          for (let kw = 0; kw < a.kW; kw++) {
            const h = oh * a.strideH - a.padH + kh;
            const w = ow * a.strideW - a.padW + kw;
            const inside = h >= 0 && h < a.inH && w >= 0 && w < a.inW;
            const inPadded = h < a.inH + a.padH && w < a.inW + a.padW;
            if (inside) {
              const v = x[(p * a.inH + h) * a.inW + w];
              sum += v;
              best = Math.max(best, v);
            }
            if (inside || (a.countIncludePad && inPadded)) count++;
          }
        }
        y[o++] = kind === "avg" ? sum / count : best;
      }
    }
  }
  return y;
}

it("avgPool2d: count_include_pad both ways vs torch, float64 loops and the adjoint", () => {
  for (const f of fixture.avgPool) {
    const label = `avgPool countIncludePad=${f.countIncludePad}`;
    const x = f32(f.x);
    const y = read(be.avgPool2d(up(x), f));
    assertClose(y, f.y, TORCH_ATOL, TORCH_RTOL, `${label} y vs torch`);
    assertClose(y, poolRef(x, f, "avg"), 1e-6, 1e-6, `${label} y vs float64`);
    const dx = read(be.avgPool2dBackward(up(f32(f.dy)), f));
    assertClose(dx, f.dx, TORCH_ATOL, TORCH_RTOL, `${label} dx vs torch`);
    assertClose([dot(x, dx)], [dot(y, f.dy)], 1e-5, 1e-5, `${label} adjoint`);
  }
});

it("maxPool2d: values and argmax vs float64 loops, backward vs central differences", () => {
  const a: Pool2dArgs = {
    batch: 2,
    channels: 1,
    inH: 6,
    inW: 5,
    kH: 3,
    kW: 2,
    strideH: 2,
    strideW: 1,
    padH: 1,
    padW: 1,
    outH: 3,
    outW: 6,
    countIncludePad: false,
  };
  const x = randn(2 * 6 * 5, 30);
  const { y, argmax } = be.maxPool2d(up(x), a);
  assertClose(read(y), poolRef(x, a, "max"), 0, 0, "maxPool y");
  const idx = be.readSync(argmax);
  read(y).forEach((v, o) => {
    const plane = Math.floor(o / (a.outH * a.outW));
    expect(x[plane * 30 + idx[o]], `argmax ${o}`).toBe(v);
  });
  const dy = randn(read(y).length, 31);
  const dx = read(be.maxPool2dBackward(up(dy), argmax, a));
  assertClose(
    dx,
    numericGrad((v) => dot(poolRef(v, a, "max"), dy), x),
    FD_ATOL,
    FD_RTOL,
    "maxPool dx vs FD",
  );
});

function poolArgs(
  batch: number,
  channels: number,
  inH: number,
  inW: number,
  kH: number,
  kW: number,
  strideH: number,
  strideW: number,
  padH: number,
  padW: number,
  countIncludePad = false,
): Pool2dArgs {
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
    countIncludePad,
    outH: Math.floor((inH + 2 * padH - kH) / strideH) + 1,
    outW: Math.floor((inW + 2 * padW - kW) / strideW) + 1,
  };
}

/** Each output's dy over its divisor, added to every input cell of its window (float64). */
function avgPoolBackwardRef(dy: ArrayLike<number>, a: Pool2dArgs): Float64Array {
  const dx = new Float64Array(a.batch * a.channels * a.inH * a.inW);
  let o = 0;
  for (let p = 0; p < a.batch * a.channels; p++) {
    for (let oh = 0; oh < a.outH; oh++) {
      for (let ow = 0; ow < a.outW; ow++, o++) {
        // The same cells and divisor as poolRef.
        const cells: number[] = [];
        let count = 0;
        for (let kh = 0; kh < a.kH; kh++) {
          for (let kw = 0; kw < a.kW; kw++) {
            const h = oh * a.strideH - a.padH + kh, w = ow * a.strideW - a.padW + kw;
            const inside = h >= 0 && h < a.inH && w >= 0 && w < a.inW;
            if (inside) cells.push((p * a.inH + h) * a.inW + w);
            if (inside || (a.countIncludePad && h < a.inH + a.padH && w < a.inW + a.padW)) count++;
          }
        }
        for (const i of cells) dx[i] += dy[o] / count;
      }
    }
  }
  return dx;
}

const POOL_SHAPES: [string, Pool2dArgs][] = [
  ["3x3 s1 p1 (Inception)", poolArgs(2, 3, 7, 6, 3, 3, 1, 1, 1, 1)],
  ["3x3 s1 p1 count pad", poolArgs(1, 2, 5, 8, 3, 3, 1, 1, 1, 1, true)],
  ["3x3 s2 p0 (reduction)", poolArgs(2, 2, 9, 8, 3, 3, 2, 2, 0, 0)],
  ["2x2 s2 (disjoint windows)", poolArgs(1, 3, 6, 7, 2, 2, 2, 2, 0, 0, true)],
  ["2x3 s(1,2) p(1,1)", poolArgs(1, 2, 5, 7, 2, 3, 1, 2, 1, 1)],
  ["4x4 s1 p2 count pad", poolArgs(1, 2, 5, 6, 4, 4, 1, 1, 2, 2, true)],
  ["3x3 s1 p1 on 1x1", poolArgs(1, 2, 1, 1, 3, 3, 1, 1, 1, 1, true)],
];

it("avgPool2d fast paths: forward and backward vs float64 loops, and the adjoint", () => {
  let seed = 60;
  for (const [label, a] of POOL_SHAPES) {
    for (const countIncludePad of [false, true]) {
      const args = { ...a, countIncludePad };
      const x = randn(args.batch * args.channels * args.inH * args.inW, seed++);
      const dy = randn(args.batch * args.channels * args.outH * args.outW, seed++);
      const name = `${label} countIncludePad=${countIncludePad}`;
      const y = read(be.avgPool2d(up(x), args));
      assertClose(y, poolRef(x, args, "avg"), 1e-6, 1e-6, `${name} y`);
      const dx = read(be.avgPool2dBackward(up(dy), args));
      assertClose(dx, avgPoolBackwardRef(dy, args), 1e-6, 1e-6, `${name} dx`);
      assertClose([dot(x, dx)], [dot(y, dy)], 1e-5, 1e-5, `${name} adjoint`);
    }
  }
});

/** Row-major scan of each window: the first maximum wins, a NaN beats any number. */
function maxPoolRef(x: ArrayLike<number>, a: Pool2dArgs) {
  const y: number[] = [], argmax: number[] = [];
  for (let p = 0; p < a.batch * a.channels; p++) {
    for (let oh = 0; oh < a.outH; oh++) {
      for (let ow = 0; ow < a.outW; ow++) {
        let best = -Infinity, index = -1;
        for (let kh = 0; kh < a.kH; kh++) {
          for (let kw = 0; kw < a.kW; kw++) {
            const h = oh * a.strideH - a.padH + kh, w = ow * a.strideW - a.padW + kw;
            if (h < 0 || h >= a.inH || w < 0 || w >= a.inW) continue;
            const v = x[(p * a.inH + h) * a.inW + w];
            if (index < 0 || v > best || (Number.isNaN(v) && !Number.isNaN(best))) {
              best = v;
              index = h * a.inW + w;
            }
          }
        }
        y.push(best);
        argmax.push(index);
      }
    }
  }
  return { y, argmax };
}

it("maxPool2d fast paths: ties, signed zeros, NaN and -inf vs a row-major scan", () => {
  let seed = 90;
  for (const [label, a] of POOL_SHAPES) {
    // Few distinct values so windows hold ties; then plant NaNs, -inf and -0.
    const x = randn(a.batch * a.channels * a.inH * a.inW, seed++).map((v) => Math.round(v));
    for (let i = 0; i < x.length; i += 7) x[i] = -0;
    for (let i = 3; i < x.length; i += 11) x[i] = -Infinity;
    if (x.length > 4) x[x.length - 2] = NaN;
    if (x.length > 8) x[5] = NaN;
    const { y, argmax } = be.maxPool2d(up(x), a);
    const ref = maxPoolRef(x, a);
    const got = read(y), idx = be.readSync(argmax);
    ref.y.forEach((v, o) => {
      expect(Object.is(got[o], Math.fround(v)), `${label}: y[${o}] is ${got[o]}, expected ${v}`)
        .toBeTruthy();
      expect(idx[o], `${label}: argmax[${o}]`).toBe(ref.argmax[o]);
    });
  }
});

// ---------------------------------------------------------------- resizing

function resizeArgs(c: ResizeCase): ResizeArgs {
  return {
    planes: c.planes,
    inH: c.inH,
    inW: c.inW,
    outH: c.outH,
    outW: c.outW,
    mode: c.mode,
    alignCorners: c.alignCorners,
    scaleH: c.scaleH,
    scaleW: c.scaleW,
    cubicA: -0.75,
  };
}

// resize.ts follows torch's float32 arithmetic step by step: every nearest and bicubic case
// and the bilinear cases on the (1, 2, 37, 37) input are bit-exact. The (2, 1, 5, 7) input
// has one channel, so torch sends it through its channels-last bilinear kernel, which sums
// the four products in another order: 1 ulp (1.2e-7) there. Hence 1.2e-7 abs + 1.2e-7 rel.
const RESIZE_TOL = 2 ** -23;

it("resize: nearest/bilinear/bicubic, align_corners both ways, sizes and scale factors vs torch", () => {
  for (const c of fixture.resize.cases) {
    const args = resizeArgs(c);
    const x = f32(fixture.resize.inputs[c.x]);
    const y = read(be.resize(up(x), args));
    assertClose(y, f32(c.y), RESIZE_TOL, RESIZE_TOL, `resize ${c.name} y vs torch`);
    if (c.mode === "bicubic") expect(y, `resize ${c.name}: bit-exact`).toEqual(f32(c.y));
    const dx = read(be.resizeBackward(up(f32(c.dy)), args));
    assertClose(dx, c.dx, TORCH_ATOL, TORCH_RTOL, `resize ${c.name} dx vs torch`);
    assertClose([dot(x, dx)], [dot(y, c.dy)], 1e-4, 1e-5, `resize ${c.name} adjoint`);
  }
});

it("resize: closed forms (align_corners bilinear keeps a ramp, bicubic keeps constants)", () => {
  const [inH, inW, outH, outW] = [4, 5, 7, 9];
  const ramp = Float32Array.from(
    { length: inH * inW },
    (_, i) => Math.floor(i / inW) * 2 + (i % inW),
  );
  const base = {
    planes: 1,
    inH,
    inW,
    outH,
    outW,
    scaleH: inH / outH,
    scaleW: inW / outW,
    cubicA: -0.75,
  };
  const y = read(be.resize(up(ramp), { ...base, mode: "bilinear", alignCorners: true }));
  const want = Array.from({ length: outH * outW }, (_, o) => {
    const sh = (Math.floor(o / outW) * (inH - 1)) / (outH - 1);
    const sw = ((o % outW) * (inW - 1)) / (outW - 1);
    return sh * 2 + sw;
  });
  assertClose(y, want, 1e-5, 1e-6, "bilinear align_corners ramp");
  for (const alignCorners of [false, true]) {
    const flat = read(
      be.resize(up(new Float32Array(inH * inW).fill(3.5)), {
        ...base,
        mode: "bicubic",
        alignCorners,
      }),
    );
    assertClose(
      flat,
      new Array(outH * outW).fill(3.5),
      1e-5,
      0,
      `bicubic constant ac=${alignCorners}`,
    );
  }
});

it("expNonPositive (softmax's exp) matches Math.exp to 1e-11 relative over [-690, 0], edges and underflow included", async () => {
  const { expNonPositive } = await import("../core/backends/cpu/exp.ts");
  let worst = 0;
  const check = (x: number) => {
    const want = Math.exp(x), got = expNonPositive(x);
    // Below 1e-300 (float32 holds nothing under 1.4e-45) only closeness in absolute terms counts.
    if (want < 1e-300) {
      expect(Math.abs(got - want), `exp(${x}) = ${got}, want ${want}`).toBeLessThanOrEqual(1e-300);
    } else worst = Math.max(worst, Math.abs(got - want) / want);
  };
  for (let i = 0; i <= 200_000; i++) check(-745 * (i / 200_000) ** 2); // dense near 0
  for (
    const x of [
      0,
      -0,
      -1e-30,
      -1e-8,
      -Math.LN2,
      -1,
      -87.3,
      -103.9,
      -708,
      -744.9,
      -745.1,
      -746,
      -1e6,
    ]
  ) check(x);
  expect(worst, `max relative error ${worst}`).toBeLessThanOrEqual(1e-11);
  expect(expNonPositive(-Infinity)).toBe(0);
  expect(Number.isNaN(expNonPositive(NaN))).toBeTruthy();
});
