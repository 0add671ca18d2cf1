/**
 * WebGPU kernels against independent float64 references written here: closed forms and
 * plain loops for forwards, and central differences of those float64 forwards for every
 * backward (so the backward formulas in the WGSL are checked against calculus, not
 * against a second copy of themselves). Tiny shapes; the CI adapter is a software one.
 *
 * Tolerances: f32 forwards 2e-6 relative (+ a small absolute term for values near 0);
 * backwards compared with central differences (h = 1e-4 on float64) at 2e-4 abs/rel,
 * dominated by the f32 rounding of the GPU result.
 */

import { expect, it } from "./lib/test.ts";
import type { Storage, UnaryOp } from "../core/backend.ts";
import {
  createWebGPUBackend,
  probeWebGPU,
  type WebGPUBackend,
} from "../core/backends/webgpu/mod.ts";
import { assertClose, numericGrad, randn } from "./cpu_kernels_util.ts";

const probe = await probeWebGPU();
// The device and its pools outlive single tests (node:test's `it` has no sanitizers).
let shared: Promise<WebGPUBackend> | null = null;
const gpu = () => (shared ??= createWebGPUBackend({ allowFallbackAdapter: true }));

const FWD: [number, number] = [1e-6, 2e-6];
const BWD: [number, number] = [2e-4, 2e-4];

async function rd(g: WebGPUBackend, s: Storage): Promise<Float64Array> {
  return Float64Array.from(await g.read(s));
}
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/** erf by its Taylor series: float64-accurate for |x| < 3. */
function erf(x: number): number {
  let term = x, sum = x;
  for (let n = 1; n < 80; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

it.skipIf(!probe.available)("webgpu kernels: unary ops against closed forms", async () => {
  const g = await gpu();
  const x = randn(41, 1).map((v) => v * 1.8); // |x| < ~4.5
  const pos = x.map((v) => Math.abs(v) + 0.05);
  const phi = (v: number) => 0.5 * (1 + erf(v / Math.SQRT2));
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  const ref: Record<UnaryOp, (v: number) => number> = {
    neg: (v) => -v,
    abs: Math.abs,
    exp: Math.exp,
    log: Math.log,
    sqrt: Math.sqrt,
    rsqrt: (v) => 1 / Math.sqrt(v),
    tanh: Math.tanh,
    sigmoid: sig,
    silu: (v) => v * sig(v),
    gelu: (v) => v * phi(v),
    relu: (v) => Math.max(v, 0),
    sin: Math.sin,
    cos: Math.cos,
    square: (v) => v * v,
    reciprocal: (v) => 1 / v,
    floor: Math.floor,
    sign: Math.sign,
    gelu_grad: (v) => phi(v) + v * Math.exp(-v * v / 2) / Math.sqrt(2 * Math.PI),
    silu_grad: (v) => sig(v) * (1 + v * (1 - sig(v))),
  };
  for (const op of Object.keys(ref) as UnaryOp[]) {
    const input = ["log", "sqrt", "rsqrt", "reciprocal"].includes(op) ? pos : x;
    const got = await rd(g, g.unary(op, g.fromHost(input)));
    assertClose(got, Array.from(input, ref[op]), 2e-6, 2e-6, `unary ${op}`);
  }
});

it.skipIf(!probe.available)(
  "webgpu kernels: broadcast binary, where and reductions against loops",
  async () => {
    const g = await gpu();
    const A = randn(2 * 3 * 4, 2), B = randn(3 * 1, 3);
    const a = g.fromHost(A), b = g.fromHost(B);
    const va = { storage: a, shape: [2, 3, 4], strides: [12, 4, 1], offset: 0 };
    const vb = { storage: b, shape: [3, 1], strides: [1, 0], offset: 0 };
    const want = (f: (x: number, y: number) => number) =>
      Array.from({ length: 24 }, (_, i) => f(A[i], B[Math.floor(i / 4) % 3]));
    assertClose(
      await rd(g, g.binary("sub", va, vb, [2, 3, 4], "f32")),
      want((x, y) => x - y),
      ...FWD,
      "sub",
    );
    assertClose(
      await rd(g, g.binary("div", va, vb, [2, 3, 4], "f32")),
      want((x, y) => x / y),
      ...FWD,
      "div",
    );
    assertClose(
      await rd(g, g.binary("gt", va, vb, [2, 3, 4], "f32")),
      want((x, y) => +(x > y)),
      0,
      0,
      "gt",
    );
    const w = await rd(
      g,
      g.where(vb, va, { storage: a, shape: [1], strides: [0], offset: 3 }, [2, 3, 4]),
    );
    assertClose(w, want((x, y) => (y !== 0 ? x : A[3])), 0, 0, "where");

    // (outer 2, axis 3, inner 4)
    const sum = await rd(g, g.reduce("sum", a, 2, 3, 4));
    const amax = await g.read(g.reduce("argmax", a, 2, 3, 4));
    for (let o = 0; o < 2; o++) {
      for (let j = 0; j < 4; j++) {
        const col = [0, 1, 2].map((t) => A[(o * 3 + t) * 4 + j]);
        assertClose([sum[o * 4 + j]], [col[0] + col[1] + col[2]], ...FWD, "sum");
        expect(amax[o * 4 + j], "argmax").toBe(col.indexOf(Math.max(...col)));
      }
    }
    const long = randn(3000, 4);
    assertClose(
      await rd(g, g.sumSquares(g.fromHost(long))),
      [dot(long, long)],
      1e-5,
      1e-6,
      "sumSquares",
    );
  },
);

it.skipIf(!probe.available)(
  "webgpu kernels: softmax and log-softmax with their backward",
  async () => {
    const g = await gpu();
    const rows = 3, cols = 7;
    const X = randn(rows * cols, 5).map((v) => v * 2), DY = randn(rows * cols, 6);
    for (const log of [false, true]) {
      const fwd = (x: ArrayLike<number>) => {
        const y = new Float64Array(rows * cols);
        for (let r = 0; r < rows; r++) {
          const row = Array.from({ length: cols }, (_, c) => x[r * cols + c]);
          const m = Math.max(...row);
          const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
          row.forEach((
            v,
            c,
          ) => (y[r * cols + c] = log ? v - m - Math.log(z) : Math.exp(v - m) / z));
        }
        return y;
      };
      const y = g.softmax(g.fromHost(X), rows, cols, log);
      assertClose(await rd(g, y), fwd(X), ...FWD, `softmax log=${log}`);
      const dx = await rd(g, g.softmaxBackward(y, g.fromHost(DY), rows, cols, log));
      assertClose(
        dx,
        numericGrad((x) => dot(fwd(x), DY), X, 1e-4),
        ...BWD,
        `softmaxBackward log=${log}`,
      );
    }
  },
);

it.skipIf(!probe.available)(
  "webgpu kernels: layer norm and group norm, backward by finite differences",
  async () => {
    const g = await gpu();
    // Layer norm over (rows, cols).
    const rows = 3, cols = 6, eps = 1e-5;
    const X = randn(rows * cols, 7).map((v) => v + 0.5),
      W = randn(cols, 8),
      Bv = randn(cols, 9),
      DY = randn(rows * cols, 10);
    const ln = (x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>) => {
      const y = new Float64Array(rows * cols);
      for (let r = 0; r < rows; r++) {
        const row = Array.from({ length: cols }, (_, c) => x[r * cols + c]);
        const mu = row.reduce((s, v) => s + v, 0) / cols;
        const vr = row.reduce((s, v) => s + (v - mu) ** 2, 0) / cols;
        row.forEach((v, c) => (y[r * cols + c] = ((v - mu) / Math.sqrt(vr + eps)) * w[c] + b[c]));
      }
      return y;
    };
    const x = g.fromHost(X), w = g.fromHost(W), b = g.fromHost(Bv);
    const r = g.layerNorm(x, w, b, rows, cols, eps);
    assertClose(await rd(g, r.y), ln(X, W, Bv), 2e-6, 2e-6, "layerNorm y");
    const gr = g.layerNormBackward(x, w, r.mean, r.rstd, g.fromHost(DY), rows, cols);
    assertClose(
      await rd(g, gr.dx),
      numericGrad((v) => dot(ln(v, W, Bv), DY), X, 1e-4),
      ...BWD,
      "layerNorm dx",
    );
    assertClose(
      await rd(g, gr.dweight),
      numericGrad((v) => dot(ln(X, v, Bv), DY), W, 1e-4),
      ...BWD,
      "layerNorm dweight",
    );
    assertClose(
      await rd(g, gr.dbias),
      numericGrad((v) => dot(ln(X, W, v), DY), Bv, 1e-4),
      ...BWD,
      "layerNorm dbias",
    );

    // Group norm over (N, C, HW) with 2 groups.
    const N = 2, C = 4, HW = 3, G = 2, cpg = C / G;
    const GX = randn(N * C * HW, 11),
      GW = randn(C, 12),
      GB = randn(C, 13),
      GDY = randn(N * C * HW, 14);
    const gn = (x: ArrayLike<number>, w: ArrayLike<number>, bb: ArrayLike<number>) => {
      const y = new Float64Array(N * C * HW);
      for (let n = 0; n < N; n++) {
        for (let gi = 0; gi < G; gi++) {
          const start = (n * C + gi * cpg) * HW, len = cpg * HW;
          const seg = Array.from({ length: len }, (_, i) => x[start + i]);
          const mu = seg.reduce((s, v) => s + v, 0) / len;
          const vr = seg.reduce((s, v) => s + (v - mu) ** 2, 0) / len;
          seg.forEach((v, i) => {
            const c = gi * cpg + Math.floor(i / HW);
            y[start + i] = ((v - mu) / Math.sqrt(vr + eps)) * w[c] + bb[c];
          });
        }
      }
      return y;
    };
    const gx = g.fromHost(GX), gw = g.fromHost(GW);
    const gr2 = g.groupNorm(gx, gw, g.fromHost(GB), N, C, HW, G, eps);
    assertClose(await rd(g, gr2.y), gn(GX, GW, GB), 2e-6, 2e-6, "groupNorm y");
    const gb = g.groupNormBackward(gx, gw, gr2.mean, gr2.rstd, g.fromHost(GDY), N, C, HW, G);
    assertClose(
      await rd(g, gb.dx),
      numericGrad((v) => dot(gn(v, GW, GB), GDY), GX, 1e-4),
      ...BWD,
      "groupNorm dx",
    );
    assertClose(
      await rd(g, gb.dweight),
      numericGrad((v) => dot(gn(GX, v, GB), GDY), GW, 1e-4),
      ...BWD,
      "groupNorm dweight",
    );
    assertClose(
      await rd(g, gb.dbias),
      numericGrad((v) => dot(gn(GX, GW, v), GDY), GB, 1e-4),
      ...BWD,
      "groupNorm dbias",
    );
  },
);

it.skipIf(!probe.available)(
  "webgpu kernels: cross-entropy with label smoothing and ignore index",
  async () => {
    const g = await gpu();
    const rows = 4, cols = 5, eps = 0.2, ignore = -1;
    const X = randn(rows * cols, 15).map((v) => v * 2),
      T = Int32Array.of(2, -1, 0, 4),
      DL = randn(rows, 16);
    const losses = (x: ArrayLike<number>) =>
      Array.from({ length: rows }, (_, r) => {
        if (T[r] === ignore) return 0;
        const row = Array.from({ length: cols }, (_, c) => x[r * cols + c]);
        const m = Math.max(...row);
        const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
        const logp = row.map((v) => v - lse);
        return -(1 - eps) * logp[T[r]] - (eps / cols) * logp.reduce((s, v) => s + v, 0);
      });
    const t = g.fromHost(T);
    const r = g.crossEntropy(g.fromHost(X), t, rows, cols, eps, ignore);
    assertClose(await rd(g, r.loss), losses(X), ...FWD, "loss");
    const dx = await rd(
      g,
      g.crossEntropyBackward(r.logp, t, g.fromHost(DL), rows, cols, eps, ignore),
    );
    assertClose(dx, numericGrad((x) => dot(losses(x), DL), X, 1e-4), ...BWD, "dlogits");
  },
);

it.skipIf(!probe.available)(
  "webgpu kernels: gather, scatterAdd, gatherCols against loops",
  async () => {
    const g = await gpu();
    const rows = 4, cols = 3, T = randn(rows * cols, 17), idx = Int32Array.of(3, 1, 3, 0, 3);
    const got = await rd(g, g.gather(g.fromHost(T), g.fromHost(idx), rows, cols));
    assertClose(
      got,
      Array.from(
        { length: idx.length * cols },
        (_, i) => T[idx[Math.floor(i / cols)] * cols + (i % cols)],
      ),
      0,
      0,
      "gather",
    );
    const S = randn(idx.length * cols, 18);
    const want = new Float64Array(rows * cols);
    idx.forEach((r, i) => {
      for (let c = 0; c < cols; c++) want[r * cols + c] += S[i * cols + c];
    });
    assertClose(
      await rd(g, g.scatterAdd(g.fromHost(S), g.fromHost(idx), rows, cols)),
      want,
      1e-6,
      1e-6,
      "scatterAdd",
    );
    const pick = Int32Array.of(2, 0, 1, 2);
    assertClose(
      await rd(g, g.gatherCols(g.fromHost(T), g.fromHost(pick), rows, cols)),
      Array.from(pick, (c, r) => T[r * cols + c]),
      0,
      0,
      "gatherCols",
    );
  },
);

it.skipIf(!probe.available)(
  "webgpu kernels: conv2d against a direct loop, backward by finite differences",
  async () => {
    const g = await gpu();
    const a = {
      batch: 2,
      inC: 4,
      inH: 5,
      inW: 4,
      outC: 4,
      kH: 3,
      kW: 2,
      strideH: 2,
      strideW: 1,
      padH: 1,
      padW: 1,
      groups: 2,
      outH: 3,
      outW: 5,
    };
    const Cg = a.inC / a.groups, Og = a.outC / a.groups;
    const X = randn(a.batch * a.inC * a.inH * a.inW, 19),
      W = randn(a.outC * Cg * a.kH * a.kW, 20),
      Bv = randn(a.outC, 21);
    const DY = randn(a.batch * a.outC * a.outH * a.outW, 22);
    const conv = (x: ArrayLike<number>, w: ArrayLike<number>) => {
      const y = new Float64Array(a.batch * a.outC * a.outH * a.outW);
      for (let n = 0; n < a.batch; n++) {
        for (let o = 0; o < a.outC; o++) {
          for (let oh = 0; oh < a.outH; oh++) {
            for (let ow = 0; ow < a.outW; ow++) {
              const gi = Math.floor(o / Og);
              let s = Bv[o];
              for (let c = 0; c < Cg; c++) {
                for (let kh = 0; kh < a.kH; kh++) {
                  for (let kw = 0; kw < a.kW; kw++) {
                    const ih = oh * a.strideH - a.padH + kh, iw = ow * a.strideW - a.padW + kw;
                    if (ih < 0 || ih >= a.inH || iw < 0 || iw >= a.inW) continue;
                    s += x[((n * a.inC + gi * Cg + c) * a.inH + ih) * a.inW + iw] *
                      w[((o * Cg + c) * a.kH + kh) * a.kW + kw];
                  }
                }
              }
              y[((n * a.outC + o) * a.outH + oh) * a.outW + ow] = s;
            }
          }
        }
      }
      return y;
    };
    const x = g.fromHost(X), w = g.fromHost(W), dy = g.fromHost(DY);
    assertClose(await rd(g, g.conv2d(x, w, g.fromHost(Bv), a)), conv(X, W), 1e-5, 1e-5, "conv2d");
    assertClose(
      await rd(g, g.conv2dBackwardInput(dy, w, a)),
      numericGrad((v) => dot(conv(v, W), DY), X, 1e-4),
      ...BWD,
      "conv2d dx",
    );
    assertClose(
      await rd(g, g.conv2dBackwardWeight(dy, x, a)),
      numericGrad((v) => dot(conv(X, v), DY), W, 1e-4),
      ...BWD,
      "conv2d dw",
    );
  },
);

it.skipIf(!probe.available)(
  "webgpu kernels: pooling against loops, backward by finite differences",
  async () => {
    const g = await gpu();
    const a = {
      batch: 1,
      channels: 2,
      inH: 5,
      inW: 5,
      kH: 3,
      kW: 3,
      strideH: 2,
      strideW: 2,
      padH: 1,
      padW: 1,
      outH: 3,
      outW: 3,
      countIncludePad: false,
    };
    const X = randn(2 * 25, 23), DY = randn(2 * 9, 24);
    const pool = (x: ArrayLike<number>, kind: "avg" | "max") => {
      const y = new Float64Array(2 * 9);
      for (let p = 0; p < 2; p++) {
        for (let oh = 0; oh < 3; oh++) {
          for (let ow = 0; ow < 3; ow++) {
            const vals: number[] = [];
            for (let kh = 0; kh < 3; kh++) {
              for (let kw = 0; kw < 3; kw++) {
                const ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
                if (ih >= 0 && ih < 5 && iw >= 0 && iw < 5) vals.push(x[p * 25 + ih * 5 + iw]);
              }
            }
            y[p * 9 + oh * 3 + ow] = kind === "max"
              ? Math.max(...vals)
              : vals.reduce((s, v) => s + v, 0) / vals.length;
          }
        }
      }
      return y;
    };
    const x = g.fromHost(X), dy = g.fromHost(DY);
    assertClose(await rd(g, g.avgPool2d(x, a)), pool(X, "avg"), ...FWD, "avgPool2d");
    assertClose(
      await rd(g, g.avgPool2dBackward(dy, a)),
      numericGrad((v) => dot(pool(v, "avg"), DY), X, 1e-4),
      ...BWD,
      "avgPool2d dx",
    );
    const mp = g.maxPool2d(x, a);
    assertClose(await rd(g, mp.y), pool(X, "max"), 0, 0, "maxPool2d");
    assertClose(
      await rd(g, g.maxPool2dBackward(dy, mp.argmax, a)),
      numericGrad((v) => dot(pool(v, "max"), DY), X, 1e-4),
      ...BWD,
      "maxPool2d dx",
    );
  },
);

it.skipIf(!probe.available)(
  "webgpu kernels: resize (align-corners bilinear closed form; backward is the adjoint)",
  async () => {
    const g = await gpu();
    const inH = 3, inW = 4, outH = 5, outW = 7;
    const X = randn(inH * inW, 25);
    const args = {
      planes: 1,
      inH,
      inW,
      outH,
      outW,
      mode: "bilinear" as const,
      alignCorners: true,
      scaleH: 0,
      scaleW: 0,
      cubicA: -0.75,
    };
    const want = new Float64Array(outH * outW);
    for (let oh = 0; oh < outH; oh++) {
      for (let ow = 0; ow < outW; ow++) {
        const sh = (oh * (inH - 1)) / (outH - 1), sw = (ow * (inW - 1)) / (outW - 1);
        const h0 = Math.min(Math.floor(sh), inH - 2), w0 = Math.min(Math.floor(sw), inW - 2);
        const th = sh - h0, tw = sw - w0;
        const at = (h: number, w: number) => X[h * inW + w];
        want[oh * outW + ow] = (1 - th) * ((1 - tw) * at(h0, w0) + tw * at(h0, w0 + 1)) +
          th * ((1 - tw) * at(h0 + 1, w0) + tw * at(h0 + 1, w0 + 1));
      }
    }
    assertClose(
      await rd(g, g.resize(g.fromHost(X), args)),
      want,
      1e-6,
      1e-6,
      "bilinear align_corners",
    );
    // <resize(x), dy> = <x, resizeBackward(dy)> for every mode.
    for (const mode of ["nearest", "bilinear", "bicubic"] as const) {
      const m = { ...args, mode, alignCorners: false, scaleH: inH / outH, scaleW: inW / outW };
      const DY = randn(outH * outW, 26);
      const lhs = dot(await rd(g, g.resize(g.fromHost(X), m)), DY);
      const rhs = dot(X, await rd(g, g.resizeBackward(g.fromHost(DY), m)));
      expect(Math.abs(lhs - rhs), `${mode} adjoint: ${lhs} vs ${rhs}`).toBeLessThanOrEqual(
        1e-5 * (1 + Math.abs(lhs)),
      );
    }
  },
);

it.skipIf(!probe.available)(
  "webgpu kernels: attention with causal mask and query offset, backward by finite differences",
  async () => {
    const g = await gpu();
    for (const [Tq, Tk, causal] of [[3, 5, true], [4, 4, false]] as const) {
      const D = 4,
        args = { batch: 1, heads: 2, Tq, Tk, headDim: D, scale: 0.5, causal, queryOffset: Tk - Tq };
      const BH = 2;
      const Q = randn(BH * Tq * D, 27),
        K = randn(BH * Tk * D, 28),
        V = randn(BH * Tk * D, 29),
        DO = randn(BH * Tq * D, 30);
      const attn = (q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>) => {
        const out = new Float64Array(BH * Tq * D);
        for (let bh = 0; bh < BH; bh++) {
          for (let i = 0; i < Tq; i++) {
            const vis = causal ? Math.min(Tk, i + args.queryOffset + 1) : Tk;
            const s = Array.from({ length: vis }, (_, j) => {
              let d = 0;
              for (let c = 0; c < D; c++) d += q[(bh * Tq + i) * D + c] * k[(bh * Tk + j) * D + c];
              return d * args.scale;
            });
            const m = Math.max(...s);
            const p = s.map((v) => Math.exp(v - m));
            const z = p.reduce((a, b) => a + b, 0);
            for (let c = 0; c < D; c++) {
              out[(bh * Tq + i) * D + c] = p.reduce(
                (acc, pj, j) => acc + (pj / z) * v[(bh * Tk + j) * D + c],
                0,
              );
            }
          }
        }
        return out;
      };
      const q = g.fromHost(Q), k = g.fromHost(K), v = g.fromHost(V);
      const r = g.attention(q, k, v, args);
      assertClose(await rd(g, r.out), attn(Q, K, V), 1e-6, 1e-5, `attention out Tq${Tq} Tk${Tk}`);
      const gr = g.attentionBackward(q, k, v, r.out, r.lse, g.fromHost(DO), args);
      const L = (qq: ArrayLike<number>, kk: ArrayLike<number>, vv: ArrayLike<number>) =>
        dot(attn(qq, kk, vv), DO);
      assertClose(
        await rd(g, gr.dq),
        numericGrad((x) => L(x, K, V), Q, 1e-4),
        ...BWD,
        "attention dq",
      );
      assertClose(
        await rd(g, gr.dk),
        numericGrad((x) => L(Q, x, V), K, 1e-4),
        ...BWD,
        "attention dk",
      );
      assertClose(
        await rd(g, gr.dv),
        numericGrad((x) => L(Q, K, x), V, 1e-4),
        ...BWD,
        "attention dv",
      );
    }
  },
);

it.skipIf(!probe.available)(
  "webgpu kernels: AdamW in place against PyTorch's update rule in float64",
  async () => {
    const g = await gpu();
    const n = 50,
      a = {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weightDecay: 0.1,
        step: 0,
        gradScale: 0.25,
      };
    const P0 = randn(n, 31),
      p = Float64Array.from(P0),
      m = new Float64Array(n),
      v = new Float64Array(n);
    const ps = g.fromHost(P0),
      ms = g.fromHost(new Float32Array(n)),
      vs = g.fromHost(new Float32Array(n));
    for (let step = 1; step <= 3; step++) {
      const G = randn(n, 31 + step);
      g.adamw(ps, g.fromHost(G), ms, vs, { ...a, step });
      for (let i = 0; i < n; i++) {
        const gi = G[i] * a.gradScale;
        p[i] *= 1 - a.lr * a.weightDecay;
        m[i] = a.beta1 * m[i] + (1 - a.beta1) * gi;
        v[i] = a.beta2 * v[i] + (1 - a.beta2) * gi * gi;
        const mhat = m[i] / (1 - a.beta1 ** step), vhat = v[i] / (1 - a.beta2 ** step);
        p[i] -= (a.lr * mhat) / (Math.sqrt(vhat) + a.eps);
      }
    }
    assertClose(await rd(g, ps), p, 1e-6, 1e-5, "param");
    assertClose(await rd(g, ms), m, 1e-7, 1e-5, "m");
    assertClose(await rd(g, vs), v, 1e-8, 1e-5, "v");
  },
);
