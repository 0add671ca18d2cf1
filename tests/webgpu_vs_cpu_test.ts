/**
 * Every kernel of the Backend interface, WebGPU against the CPU backend on identical
 * seeded inputs (tiny shapes: the only adapter in CI is a software one).
 *
 * The CPU backend is itself tested against float64 references and torch fixtures; here
 * it is the independent reference for the WGSL. Tolerances are per case: f32 maths that
 * sums in a different order gets ~1e-5 relative; exact ops (copies, indexing, integer
 * maths, uniform random bits) must match exactly. Skipped (not passed) without an adapter.
 */

import { expect, it } from "./lib/test.ts";
import type { Backend, BinaryOp, HostArray, Storage, UnaryOp, View } from "../core/backend.ts";
import { CpuBackend } from "../core/backends/cpu/mod.ts";
import {
  createWebGPUBackend,
  probeWebGPU,
  type WebGPUBackend,
} from "../core/backends/webgpu/mod.ts";
import { assertClose, randn } from "./cpu_kernels_util.ts";

const probe = await probeWebGPU();
const noGpu = !probe.available;

let gpuPromise: Promise<WebGPUBackend> | null = null;
function gpu(): Promise<WebGPUBackend> {
  gpuPromise ??= createWebGPUBackend({ allowFallbackAdapter: true });
  return gpuPromise;
}

/** Seeded host inputs shared by both backends. */
const f = (n: number, seed: number, scale = 1, shift = 0) => {
  const a = randn(n, seed);
  for (let i = 0; i < n; i++) a[i] = a[i] * scale + shift;
  return a;
};
const positive = (n: number, seed: number) => f(n, seed).map((v) => Math.abs(v) + 0.1);
const ints = (n: number, lo: number, hi: number, seed: number) => {
  const u = f(n, seed);
  return Int32Array.from(u, (v, i) => lo + ((Math.floor(Math.abs(v) * 1000) + i * 7) % (hi - lo)));
};

function contiguous(storage: Storage, shape: number[], offset = 0): View {
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  return { storage, shape, strides, offset };
}

interface Case {
  name: string;
  /** Backend methods this case exercises. */
  covers: string[];
  /** [atol, rtol]; "exact" for bitwise equality. */
  tol: [number, number] | "exact";
  run: (b: Backend) => Storage[] | Promise<Storage[]>;
}

const cases: Case[] = [];
const add = (c: Case) => cases.push(c);

// ---- memory and layout
add({
  name: "alloc/fromHost/fill/arange/cast",
  covers: ["alloc", "fromHost", "fill", "arange", "cast"],
  tol: "exact",
  run: (b) => [
    b.alloc("f32", 7),
    b.alloc("i32", 5),
    b.fill("f32", 9, 2.5),
    b.fill("i32", 6, -3),
    b.fill("f32", 4, 0),
    b.arange("f32", 11, -2, 0.5),
    b.arange("i32", 8, 5, -2),
    b.cast(b.fromHost(Float32Array.of(1.7, -2.7, 0, 3e9, -0.5)), "i32"),
    b.cast(b.fromHost(Int32Array.of(3, -4, 16777217)), "f32"),
  ],
});
add({
  name: "copy (strided, broadcast, dense)",
  covers: ["copy"],
  tol: "exact",
  run: (b) => {
    const x = b.fromHost(f(60, 1));
    const xi = b.fromHost(ints(24, -50, 50, 2));
    return [
      b.copy({ storage: x, shape: [3, 4], strides: [1, 3], offset: 5 }), // transpose
      b.copy({ storage: x, shape: [2, 3, 4], strides: [0, 4, 1], offset: 2 }), // broadcast
      b.copy({ storage: x, shape: [10], strides: [1], offset: 7 }), // dense with offset
      b.copy({ storage: xi, shape: [4, 3], strides: [1, 4], offset: 0 }),
    ];
  },
});
add({
  name: "copyInto (strided window, aliasing source)",
  covers: ["copyInto"],
  tol: "exact",
  run: (b) => {
    const dst = b.fromHost(f(30, 3));
    const src = b.fromHost(f(12, 4));
    b.copyInto(
      { storage: dst, shape: [3, 4], strides: [8, 2], offset: 1 },
      contiguous(src, [3, 4]),
    );
    const self = b.fromHost(f(16, 5));
    b.copyInto({ storage: self, shape: [8], strides: [1], offset: 0 }, {
      storage: self,
      shape: [8],
      strides: [1],
      offset: 8,
    });
    const bc = b.fromHost(new Float32Array(12));
    b.copyInto(contiguous(bc, [3, 4]), { storage: src, shape: [4], strides: [1], offset: 0 }); // right-aligned broadcast
    return [dst, self, bc];
  },
});

// ---- elementwise
const UNARY: UnaryOp[] = [
  "neg",
  "abs",
  "exp",
  "log",
  "sqrt",
  "rsqrt",
  "tanh",
  "sigmoid",
  "silu",
  "gelu",
  "relu",
  "sin",
  "cos",
  "square",
  "reciprocal",
  "floor",
  "sign",
  "gelu_grad",
  "silu_grad",
];
for (const op of UNARY) {
  const needsPositive = ["log", "sqrt", "rsqrt"].includes(op);
  add({
    name: `unary ${op}`,
    covers: ["unary"],
    tol: [2e-6, 2e-6],
    run: (b) => [b.unary(op, b.fromHost(needsPositive ? positive(37, 10) : f(37, 10, 3)))],
  });
}
add({
  name: "unary on i32 (neg abs square sign relu floor)",
  covers: ["unary"],
  tol: "exact",
  run: (b) =>
    (["neg", "abs", "square", "sign", "relu", "floor"] as UnaryOp[]).map((op) =>
      b.unary(op, b.fromHost(ints(21, -40, 40, 11)))
    ),
});
const BINARY: BinaryOp[] = [
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
for (const op of BINARY) {
  add({
    name: `binary ${op} (broadcast + strided)`,
    covers: ["binary"],
    tol: [1e-6, 2e-6],
    run: (b) => {
      const base = op === "pow" ? positive(15, 20) : f(15, 20);
      const x = b.fromHost(base);
      const yv = f(5, 21);
      if (["eq", "ne", "le", "ge"].includes(op)) yv[2] = base[7]; // an equal pair
      const y = b.fromHost(yv);
      return [
        b.binary(
          op,
          contiguous(x, [3, 5]),
          { storage: y, shape: [1, 5], strides: [0, 1], offset: 0 },
          [3, 5],
          "f32",
        ),
        b.binary(
          op,
          { storage: x, shape: [5, 3], strides: [1, 5], offset: 0 },
          { storage: y, shape: [5, 1], strides: [1, 0], offset: 0 },
          [5, 3],
          "f32",
        ),
      ];
    },
  });
}
add({
  name: "binary on i32 (add sub mul div max min lt) and f32 -> i32 out",
  covers: ["binary"],
  tol: "exact",
  run: (b) => {
    const x = b.fromHost(ints(12, -30, 30, 22));
    const y = b.fromHost(Int32Array.of(3, -2, 0, 7));
    const outs = (["add", "sub", "mul", "div", "max", "min", "lt"] as BinaryOp[]).map((op) =>
      b.binary(op, contiguous(x, [3, 4]), { storage: y, shape: [4], strides: [1], offset: 0 }, [
        3,
        4,
      ], "i32")
    );
    const xf = b.fromHost(f(6, 23));
    outs.push(
      b.binary(
        "gt",
        contiguous(xf, [6]),
        { storage: b.fromHost(Float32Array.of(0)), shape: [1], strides: [0], offset: 0 },
        [6],
        "i32",
      ),
    );
    return outs;
  },
});
add({
  name: "where (f32 and i32, broadcast cond)",
  covers: ["where"],
  tol: "exact",
  run: (b) => {
    const c = b.fromHost(Int32Array.of(1, 0, 0, 1));
    const x = b.fromHost(f(12, 30));
    const y = b.fromHost(f(12, 31));
    const xi = b.fromHost(ints(12, 0, 9, 32));
    return [
      b.where(
        { storage: c, shape: [4], strides: [1], offset: 0 },
        contiguous(x, [3, 4]),
        contiguous(y, [3, 4]),
        [3, 4],
      ),
      b.where(contiguous(b.fromHost(f(12, 33)), [3, 4]), contiguous(xi, [3, 4]), {
        storage: xi,
        shape: [1],
        strides: [0],
        offset: 5,
      }, [3, 4]),
    ];
  },
});
add({
  name: "affine / powScalar / clamp",
  covers: ["affine", "powScalar", "clamp"],
  tol: [1e-6, 2e-6],
  run: (b) => {
    const x = b.fromHost(f(19, 40, 2));
    const p = b.fromHost(positive(19, 41));
    const xi = b.fromHost(ints(19, -100, 100, 42));
    return [
      b.affine(x, 1.5, -0.25),
      b.affine(xi, 3, 7),
      b.powScalar(x, 2),
      b.powScalar(x, 3),
      b.powScalar(p, 0.5),
      b.powScalar(p, -1),
      b.powScalar(p, 1.7),
      b.powScalar(x, 1),
      b.clamp(x, -0.5, 0.7),
      b.clamp(x, -Infinity, 0),
      b.clamp(xi, -10, 20),
    ];
  },
});

// ---- reductions
add({
  name: "reduce sum/max/min/argmax/argmin (thread and workgroup paths, i32)",
  covers: ["reduce"],
  tol: [1e-5, 1e-5],
  run: (b) => {
    const x = b.fromHost(f(3 * 7 * 5, 50));
    const long = b.fromHost(f(2 * 700, 51));
    const xi = b.fromHost(ints(4 * 6, -9, 9, 52));
    const outs: Storage[] = [];
    for (const op of ["sum", "max", "min", "argmax", "argmin"] as const) {
      outs.push(b.reduce(op, x, 3, 7, 5), b.reduce(op, long, 2, 700, 1), b.reduce(op, xi, 4, 6, 1));
    }
    return outs;
  },
});
add({
  name: "sumSquares",
  covers: ["sumSquares"],
  tol: [1e-5, 1e-5],
  run: (b) => [b.sumSquares(b.fromHost(f(5000, 53))), b.sumSquares(b.fromHost(f(3, 54)))],
});

// ---- matmul
add({
  name: "matmul (all transposes, batch, stride-0 broadcast, bias, gemv, odd sizes)",
  covers: ["matmul"],
  tol: [1e-5, 1e-5],
  run: (b) => {
    const outs: Storage[] = [];
    for (const [M, N, K] of [[5, 7, 3], [33, 20, 17], [64, 64, 32], [1, 16, 8]]) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const a = b.fromHost(f(2 * M * K, M * 100 + K));
          const w = b.fromHost(f(K * N, N * 100 + K));
          const bias = b.fromHost(f(N, N));
          outs.push(
            b.matmul(a, w, { batch: 2, M, N, K, transA, transB, strideA: M * K, strideB: 0, bias }),
          );
          outs.push(
            b.matmul(a, b.fromHost(f(2 * K * N, 7)), {
              batch: 2,
              M,
              N,
              K,
              transA,
              transB,
              strideA: M * K,
              strideB: K * N,
            }),
          );
        }
      }
    }
    return outs;
  },
});

add({
  name: "matmul epilogue addend + scale * gelu(product + bias), and its parts alone",
  covers: ["matmul"],
  tol: [1e-5, 1e-5],
  run: (b) => {
    const [M, N, K] = [9, 6, 5];
    const a = b.fromHost(f(2 * M * K, 20));
    const w = b.fromHost(f(N * K, 21));
    const [bias, scale, addend] = [
      b.fromHost(f(N, 22)),
      b.fromHost(f(N, 23)),
      b.fromHost(f(2 * M * N, 24)),
    ];
    const args = { batch: 2, M, N, K, transA: false, transB: true, strideA: M * K, strideB: 0 };
    return [
      b.matmul(a, w, { ...args, bias, activation: "gelu", scale, addend }),
      b.matmul(a, w, { ...args, bias, activation: "gelu" }),
      b.matmul(a, w, { ...args, bias, scale, addend }),
      b.matmul(a, w, { ...args, scale }),
      b.matmul(a, w, { ...args, bias, addend }),
    ];
  },
});

// ---- fused rows
add({
  name: "softmax / log-softmax and backward",
  covers: ["softmax", "softmaxBackward"],
  tol: [1e-6, 1e-5],
  run: (b) => {
    const x = b.fromHost(f(4 * 9, 60, 3));
    const wide = b.fromHost(f(2 * 1500, 61, 3));
    const dy = b.fromHost(f(4 * 9, 62));
    const y = b.softmax(x, 4, 9, false);
    const ly = b.softmax(x, 4, 9, true);
    return [
      y,
      ly,
      b.softmax(wide, 2, 1500, true),
      b.softmaxBackward(y, dy, 4, 9, false),
      b.softmaxBackward(ly, dy, 4, 9, true),
    ];
  },
});
add({
  name: "layerNorm (with and without affine) and backward",
  covers: ["layerNorm", "layerNormBackward"],
  tol: [2e-5, 2e-5],
  run: (b) => {
    const rows = 70, cols = 12;
    const x = b.fromHost(f(rows * cols, 70, 2, 1));
    const w = b.fromHost(f(cols, 71));
    const bias = b.fromHost(f(cols, 72));
    const dy = b.fromHost(f(rows * cols, 73));
    const r = b.layerNorm(x, w, bias, rows, cols, 1e-5);
    const r0 = b.layerNorm(x, null, null, rows, cols, 1e-5);
    const g = b.layerNormBackward(x, w, r.mean, r.rstd, dy, rows, cols);
    const g0 = b.layerNormBackward(x, null, r0.mean, r0.rstd, dy, rows, cols);
    return [r.y, r.mean, r.rstd, r0.y, g.dx, g.dweight, g.dbias, g0.dx];
  },
});
add({
  name: "groupNorm and backward",
  covers: ["groupNorm", "groupNormBackward"],
  tol: [2e-5, 2e-5],
  run: (b) => {
    const N = 2, C = 6, HW = 10, G = 3;
    const x = b.fromHost(f(N * C * HW, 80, 2, -1));
    const w = b.fromHost(f(C, 81));
    const bias = b.fromHost(f(C, 82));
    const dy = b.fromHost(f(N * C * HW, 83));
    const r = b.groupNorm(x, w, bias, N, C, HW, G, 1e-6);
    const r0 = b.groupNorm(x, null, null, N, C, HW, G, 1e-6);
    const g = b.groupNormBackward(x, w, r.mean, r.rstd, dy, N, C, HW, G);
    const g0 = b.groupNormBackward(x, null, r0.mean, r0.rstd, dy, N, C, HW, G);
    return [r.y, r.mean, r.rstd, r0.y, g.dx, g.dweight, g.dbias, g0.dx, g0.dweight];
  },
});
add({
  name: "crossEntropy with smoothing and ignore index, and backward",
  covers: ["crossEntropy", "crossEntropyBackward"],
  tol: [2e-6, 1e-5],
  run: (b) => {
    const rows = 6, cols = 11;
    const logits = b.fromHost(f(rows * cols, 90, 3));
    const targets = b.fromHost(Int32Array.of(3, -100, 0, 10, 5, -100));
    const dloss = b.fromHost(f(rows, 91));
    const r = b.crossEntropy(logits, targets, rows, cols, 0.1, -100);
    const r0 = b.crossEntropy(logits, targets, rows, cols, 0, -100);
    return [
      r.loss,
      r.logp,
      r0.loss,
      b.crossEntropyBackward(r.logp, targets, dloss, rows, cols, 0.1, -100),
    ];
  },
});

// ---- indexing
add({
  name: "gather / scatterAdd / gatherCols (f32 and i32)",
  covers: ["gather", "scatterAdd", "gatherCols"],
  tol: [1e-6, 1e-6],
  run: (b) => {
    const table = b.fromHost(f(5 * 3, 100));
    const itable = b.fromHost(ints(5 * 3, -5, 5, 101));
    const idx = b.fromHost(Int32Array.of(4, 0, 4, 2, 4, 1));
    const src = b.fromHost(f(6 * 3, 102));
    return [
      b.gather(table, idx, 5, 3),
      b.gather(itable, idx, 5, 3),
      b.scatterAdd(src, idx, 5, 3),
      b.scatterAdd(b.fromHost(ints(18, -3, 3, 103)), idx, 5, 3),
      b.gatherCols(b.fromHost(f(6 * 5, 104)), b.fromHost(Int32Array.of(0, 4, 2, 2, 1, 3)), 6, 5),
    ];
  },
});

// ---- conv, pool, resize
for (
  const conv of [
    {
      batch: 2,
      inC: 3,
      inH: 6,
      inW: 5,
      outC: 4,
      kH: 3,
      kW: 3,
      strideH: 1,
      strideW: 1,
      padH: 1,
      padW: 1,
      groups: 1,
    },
    {
      batch: 1,
      inC: 4,
      inH: 7,
      inW: 7,
      outC: 6,
      kH: 3,
      kW: 2,
      strideH: 2,
      strideW: 1,
      padH: 0,
      padW: 1,
      groups: 2,
    },
    {
      batch: 2,
      inC: 4,
      inH: 3,
      inW: 4,
      outC: 8,
      kH: 1,
      kW: 1,
      strideH: 1,
      strideW: 1,
      padH: 0,
      padW: 0,
      groups: 1,
    },
  ]
) {
  const args = {
    ...conv,
    outH: Math.floor((conv.inH + 2 * conv.padH - conv.kH) / conv.strideH) + 1,
    outW: Math.floor((conv.inW + 2 * conv.padW - conv.kW) / conv.strideW) + 1,
  };
  add({
    name: `conv2d forward/backward ${conv.kH}x${conv.kW} s${conv.strideH} g${conv.groups}`,
    covers: ["conv2d", "conv2dBackwardInput", "conv2dBackwardWeight"],
    tol: [1e-5, 1e-5],
    run: (b) => {
      const x = b.fromHost(f(args.batch * args.inC * args.inH * args.inW, 110));
      const w = b.fromHost(f(args.outC * (args.inC / args.groups) * args.kH * args.kW, 111));
      const bias = b.fromHost(f(args.outC, 112));
      const dy = b.fromHost(f(args.batch * args.outC * args.outH * args.outW, 113));
      return [
        b.conv2d(x, w, bias, args),
        b.conv2d(x, w, null, args),
        b.conv2dBackwardInput(dy, w, args),
        b.conv2dBackwardWeight(dy, x, args),
      ];
    },
  });
}
for (
  const pool of [
    { kH: 2, kW: 2, strideH: 2, strideW: 2, padH: 0, padW: 0, countIncludePad: true },
    { kH: 3, kW: 3, strideH: 2, strideW: 1, padH: 1, padW: 1, countIncludePad: false },
    { kH: 3, kW: 2, strideH: 1, strideW: 2, padH: 1, padW: 1, countIncludePad: true },
  ]
) {
  const args = {
    batch: 2,
    channels: 2,
    inH: 7,
    inW: 6,
    ...pool,
    outH: Math.floor((7 + 2 * pool.padH - pool.kH) / pool.strideH) + 1,
    outW: Math.floor((6 + 2 * pool.padW - pool.kW) / pool.strideW) + 1,
  };
  add({
    name:
      `pool2d k${pool.kH}x${pool.kW} s${pool.strideH}${pool.strideW} p${pool.padH} incl=${pool.countIncludePad}`,
    covers: ["avgPool2d", "avgPool2dBackward", "maxPool2d", "maxPool2dBackward"],
    tol: [1e-6, 1e-6],
    run: (b) => {
      const x = b.fromHost(f(2 * 2 * 7 * 6, 120));
      const dy = b.fromHost(f(2 * 2 * args.outH * args.outW, 121));
      const mp = b.maxPool2d(x, args);
      return [
        b.avgPool2d(x, args),
        b.avgPool2dBackward(dy, args),
        mp.y,
        mp.argmax,
        b.maxPool2dBackward(dy, mp.argmax, args),
      ];
    },
  });
}
for (const mode of ["nearest", "bilinear", "bicubic"] as const) {
  for (const alignCorners of mode === "nearest" ? [false] : [false, true]) {
    for (const [inH, inW, outH, outW] of [[5, 4, 9, 7], [6, 8, 3, 5], [4, 4, 8, 4]]) {
      const args = {
        planes: 3,
        inH,
        inW,
        outH,
        outW,
        mode,
        alignCorners,
        scaleH: inH / outH,
        scaleW: inW / outW,
        cubicA: -0.75,
      };
      add({
        name: `resize ${mode} align=${alignCorners} ${inH}x${inW}->${outH}x${outW}`,
        covers: ["resize", "resizeBackward"],
        tol: [2e-6, 2e-6],
        run: (b) => [
          b.resize(b.fromHost(f(3 * inH * inW, 130)), args),
          b.resizeBackward(b.fromHost(f(3 * outH * outW, 131)), args),
        ],
      });
    }
  }
}

// ---- attention
for (
  const at of [
    { batch: 1, heads: 2, Tq: 5, Tk: 5, headDim: 8, causal: false, queryOffset: 0 },
    { batch: 2, heads: 1, Tq: 7, Tk: 7, headDim: 4, causal: true, queryOffset: 0 },
    { batch: 1, heads: 2, Tq: 3, Tk: 40, headDim: 8, causal: true, queryOffset: 37 },
    { batch: 1, heads: 1, Tq: 70, Tk: 70, headDim: 4, causal: true, queryOffset: 0 },
  ]
) {
  const args = { ...at, scale: 1 / Math.sqrt(at.headDim) };
  const BH = at.batch * at.heads;
  add({
    name:
      `attention fwd/bwd Tq${at.Tq} Tk${at.Tk} D${at.headDim} causal=${at.causal} offset=${at.queryOffset}`,
    covers: ["attention", "attentionBackward"],
    tol: [2e-6, 2e-5],
    run: (b) => {
      const q = b.fromHost(f(BH * at.Tq * at.headDim, 140));
      const k = b.fromHost(f(BH * at.Tk * at.headDim, 141));
      const v = b.fromHost(f(BH * at.Tk * at.headDim, 142));
      const dout = b.fromHost(f(BH * at.Tq * at.headDim, 143));
      const r = b.attention(q, k, v, args);
      const g = b.attentionBackward(q, k, v, r.out, r.lse, dout, args);
      return [r.out, r.lse, g.dq, g.dk, g.dv];
    },
  });
}

add({
  name: "attention on strided q/k/v (one fused qkv buffer), token-major output",
  covers: ["attention"],
  tol: [2e-6, 2e-5],
  run: (b) => {
    const [B, H, T, D] = [2, 3, 5, 4];
    const qkv = b.fromHost(f(B * T * 3 * H * D, 144));
    const rows = (i: number) => ({
      offset: i * H * D,
      batch: T * 3 * H * D,
      head: D,
      row: 3 * H * D,
    });
    const args = {
      batch: B,
      heads: H,
      Tq: T,
      Tk: T,
      headDim: D,
      scale: 0.5,
      causal: true,
      queryOffset: 0,
      inputs: { q: rows(0), k: rows(1), v: rows(2) },
      tokenMajorOut: true,
    };
    const r = b.attention(qkv, qkv, qkv, args);
    return [r.out, r.lse];
  },
});

// ---- random and optimiser
add({
  name: "uniform and dropout mask (exact bits)",
  covers: ["uniform", "dropout"],
  tol: "exact",
  run: (b) => {
    const d = b.dropout(b.fromHost(f(300, 150)), 0.3, 77, 4000000000);
    return [
      b.uniform(257, 12345, 0),
      b.uniform(10, 0xdeadbeef, 0xfffffffa),
      d.mask,
      b.dropout(b.fromHost(f(5, 1)), 1, 3, 0).y,
    ];
  },
});
add({
  // x/(1-p) is rounded once from f64 on the CPU and from an f32 product here: 1 ulp apart.
  name: "dropout output",
  covers: ["dropout"],
  tol: [0, 1.2e-7],
  run: (b) => [b.dropout(b.fromHost(f(300, 150)), 0.3, 77, 4000000000).y],
});
add({
  name: "normal (Box-Muller in f32)",
  covers: ["normal"],
  tol: [2e-6, 2e-6],
  run: (b) => [b.normal(1000, 99, 17)],
});
add({
  name: "adamw (in place, three steps)",
  covers: ["adamw"],
  tol: [1e-6, 1e-5],
  run: (b) => {
    const n = 301;
    const p = b.fromHost(f(n, 160));
    const m = b.fromHost(new Float32Array(n));
    const v = b.fromHost(new Float32Array(n));
    for (let step = 1; step <= 3; step++) {
      const g = b.fromHost(f(n, 160 + step));
      b.adamw(p, g, m, v, {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weightDecay: 0.05,
        step,
        gradScale: 0.5,
      });
    }
    return [p, m, v];
  },
});

async function readAll(b: Backend, outs: Storage[]): Promise<HostArray[]> {
  const res: HostArray[] = [];
  for (const s of outs) res.push(await b.read(s));
  return res;
}

function compare(name: string, gpuOut: HostArray[], cpuOut: HostArray[], tol: Case["tol"]): void {
  expect(gpuOut.length, `${name}: output count`).toBe(cpuOut.length);
  gpuOut.forEach((g, k) => {
    const c = cpuOut[k];
    const label = `${name} output ${k}`;
    expect(g.constructor.name, `${label}: dtype`).toBe(c.constructor.name);
    if (tol === "exact") {
      expect(g.length, `${label}: length`).toBe(c.length);
      for (let i = 0; i < g.length; i++) {
        if (!Object.is(g[i], c[i]) && !(g[i] === 0 && c[i] === 0)) {
          expect.unreachable(
            `${label}: element ${i} is ${g[i]}, cpu ${c[i]} (exact match required)`,
          );
        }
      }
    } else {
      assertClose(g, c, tol[0], tol[1], label);
    }
  });
}

it.skipIf(noGpu)("webgpu vs cpu: the table covers every Backend method", () => {
  const covered = new Set(cases.flatMap((c) => c.covers));
  for (const m of ["read", "release", "liveStorages", "flush"]) covered.add(m); // exercised by the runner
  const methods = Object.getOwnPropertyNames(CpuBackend.prototype).filter((m) =>
    m !== "constructor" && m !== "description" && m !== "readSync"
  );
  const missing = methods.filter((m) => !covered.has(m));
  expect(missing, `methods without a comparison case: ${missing.join(", ")}`).toEqual([]);
});

for (const c of cases) {
  it.skipIf(noGpu)(`webgpu vs cpu: ${c.name}`, async () => {
    const cpu = new CpuBackend();
    const g = await gpu();
    const cpuOut = await readAll(cpu, await c.run(cpu));
    const outs = await c.run(g);
    g.flush();
    const gpuOut = await readAll(g, outs);
    compare(c.name, gpuOut, cpuOut, c.tol);
  });
}

it.skipIf(noGpu)("webgpu vs cpu: adapter", async () => {
  const g = await gpu();
  console.log(
    `adapter: ${probe.description}; isFallbackAdapter=${probe.isFallback}; backend: ${g.description}`,
  );
  expect(g.description).toMatch(/^webgpu: /);
});
