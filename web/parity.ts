/**
 * The WebGPU kernel parity suite, runnable wherever both backends exist: in a web page
 * (Chromium's Dawn/Tint) as in Deno (wgpu/naga). Each case runs the same seeded inputs on
 * the WebGPU backend and on the pure-TS CPU backend and compares every output.
 *
 * Tolerances: the kernels sum in different orders, so f32 results agree to about 1e-6
 * relative per operation; a case allows atol + rtol * |cpu| per element with the bounds
 * given beside it (the same order as tests/webgpu_vs_cpu_test.ts, which holds the CPU
 * backend to float64 references). Shapes are tiny because CI's adapter is software.
 */

import type { Backend, HostArray, ResizeArgs, Storage } from "../core/backend.ts";

export interface ParityCase {
  name: string;
  /** Per element: |gpu - cpu| <= atol + rtol * |cpu|. */
  tol: { atol: number; rtol: number };
  run: (b: Backend) => Storage[];
}

export interface ParityResult {
  name: string;
  ok: boolean;
  /** Largest |gpu - cpu| over all outputs of the case. */
  maxAbs: number;
  /** Largest |gpu - cpu| / (atol + rtol * |cpu|): the case passes while this is <= 1. */
  worstRatio: number;
  elements: number;
  detail: string;
}

/** Deterministic standard-normal-ish inputs (mulberry32 + Box-Muller), same on every host. */
export function seeded(n: number, seed: number, scale = 1): Float32Array {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(next(), 1e-12), v = next();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

/** Inputs made by the case now running, released once its outputs are read. */
let scratch: Storage[] = [];
const F = (b: Backend, n: number, seed: number, scale = 1) => {
  const s = b.fromHost(seeded(n, seed, scale));
  scratch.push(s);
  return s;
};

/** Runs a case on one backend and returns its outputs on the host, freeing everything. */
async function runOn(c: ParityCase, b: Backend): Promise<HostArray[]> {
  scratch = [];
  try {
    const outs = c.run(b);
    b.flush?.();
    const values: HostArray[] = [];
    for (const s of outs) values.push(await b.read(s));
    for (const s of outs) b.release(s);
    return values;
  } finally {
    for (const s of scratch) b.release(s);
    scratch = [];
  }
}
const TIGHT = { atol: 1e-5, rtol: 1e-5 };
/** Long sums (K or window of 100+ terms) and exp/erf approximations. */
const SUMS = { atol: 3e-5, rtol: 3e-5 };

function resizeCase(mode: ResizeArgs["mode"], alignCorners: boolean, up: boolean): ParityCase {
  const inH = up ? 5 : 11, inW = up ? 4 : 9, outH = up ? 9 : 4, outW = up ? 7 : 5;
  const args: ResizeArgs = {
    planes: 6,
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
  return {
    name: `resize ${mode}${alignCorners ? " align_corners" : ""} ${inH}x${inW}->${outH}x${outW}`,
    tol: TIGHT,
    run: (b) => [b.resize(F(b, 6 * inH * inW, 71), args)],
  };
}

/** The suite: the kernels stage 1, stage 2 and the VQGAN decoder run, plus resize. */
export function parityCases(): ParityCase[] {
  const cases: ParityCase[] = [];
  const mm = (name: string, batch: number, M: number, N: number, K: number, extra: {
    transA?: boolean;
    transB?: boolean;
    bias?: boolean;
    gelu?: boolean;
    broadcastB?: boolean;
  } = {}) =>
    cases.push({
      name: `matmul ${name} (${batch}x${M}x${N}x${K})`,
      tol: K > 64 ? SUMS : TIGHT,
      run: (b) => [
        b.matmul(F(b, batch * M * K, 1), F(b, (extra.broadcastB ? 1 : batch) * K * N, 2), {
          batch,
          M,
          N,
          K,
          transA: extra.transA ?? false,
          transB: extra.transB ?? false,
          strideA: M * K,
          strideB: extra.broadcastB ? 0 : K * N,
          bias: extra.bias ? F(b, N, 3) : undefined,
          activation: extra.gelu ? "gelu" : undefined,
        }),
      ],
    });
  mm("plain", 1, 7, 9, 5);
  mm("tiled edges", 1, 33, 65, 70);
  mm("transA transB", 1, 17, 13, 19, { transA: true, transB: true });
  mm("batched, broadcast B, transB", 3, 5, 6, 8, { transB: true, broadcastB: true });
  mm("bias + gelu epilogue", 2, 9, 130, 64, { bias: true, gelu: true });

  // Attention: a KV-cached decode step (Tq < Tk, queryOffset = Tk - Tq) as stage 1 and the
  // AR stage 2 run it, a causal prefill, and the fused-qkv strided form with token-major
  // output that MultiheadAttention uses.
  const att = (
    name: string,
    B: number,
    H: number,
    Tq: number,
    Tk: number,
    D: number,
    causal: boolean,
  ) =>
    cases.push({
      name: `attention ${name} (B${B} H${H} Tq${Tq} Tk${Tk} D${D})`,
      tol: TIGHT,
      run: (b) => {
        const r = b.attention(
          F(b, B * H * Tq * D, 11),
          F(b, B * H * Tk * D, 12),
          F(b, B * H * Tk * D, 13),
          {
            batch: B,
            heads: H,
            Tq,
            Tk,
            headDim: D,
            scale: 1 / Math.sqrt(D),
            causal,
            queryOffset: Tk - Tq,
          },
        );
        return [r.out, r.lse];
      },
    });
  att("KV cache, one new token", 2, 4, 1, 13, 16, true);
  att("KV cache, 3 new tokens", 2, 2, 3, 21, 8, true);
  att("causal prefill", 1, 4, 17, 17, 16, true);
  att("bidirectional (MaskGIT)", 2, 2, 12, 12, 8, false);
  cases.push({
    name: "attention fused qkv rows, token-major out, KV cache (B2 H4 Tq2 Tk9 D8)",
    tol: TIGHT,
    run: (b) => {
      const B = 2, H = 4, Tq = 2, Tk = 9, D = 8, C = H * D;
      // q comes from a (B, Tq, 3C) projection, k and v from (B, Tk, C) cache rows.
      const qkv = F(b, B * Tq * 3 * C, 21);
      const kc = F(b, B * Tk * C, 22), vc = F(b, B * Tk * C, 23);
      const r = b.attention(qkv, kc, vc, {
        batch: B,
        heads: H,
        Tq,
        Tk,
        headDim: D,
        scale: 1 / Math.sqrt(D),
        causal: true,
        queryOffset: Tk - Tq,
        inputs: {
          q: { offset: 0, batch: Tq * 3 * C, head: D, row: 3 * C },
          k: { offset: 0, batch: Tk * C, head: D, row: C },
          v: { offset: 0, batch: Tk * C, head: D, row: C },
        },
        tokenMajorOut: true,
      });
      return [r.out, r.lse];
    },
  });

  for (const [rows, cols] of [[5, 7], [3, 300], [2, 1029]]) {
    for (const log of [false, true]) {
      cases.push({
        name: `${log ? "log-" : ""}softmax (${rows}x${cols})`,
        tol: TIGHT,
        run: (b) => [b.softmax(F(b, rows * cols, 31, 3), rows, cols, log)],
      });
    }
  }
  for (const [rows, cols] of [[6, 64], [3, 257]]) {
    cases.push({
      name: `layer norm (${rows}x${cols})`,
      tol: TIGHT,
      run: (b) => {
        const r = b.layerNorm(
          F(b, rows * cols, 41, 2),
          F(b, cols, 42),
          F(b, cols, 43),
          rows,
          cols,
          1e-5,
        );
        return [r.y, r.mean, r.rstd];
      },
    });
  }
  for (const [N, C, HW, G] of [[2, 16, 64, 8], [1, 32, 100, 8], [1, 8, 9, 2]]) {
    cases.push({
      name: `group norm (N${N} C${C} HW${HW} G${G})`,
      tol: TIGHT,
      run: (b) => {
        const r = b.groupNorm(F(b, N * C * HW, 51, 2), F(b, C, 52), F(b, C, 53), N, C, HW, G, 1e-6);
        return [r.y, r.mean, r.rstd];
      },
    });
  }
  const conv = (name: string, a: {
    batch: number;
    inC: number;
    inH: number;
    inW: number;
    outC: number;
    k: number;
    stride: number;
    pad: number;
    groups?: number;
    bias?: boolean;
  }) => {
    const groups = a.groups ?? 1;
    const outH = Math.floor((a.inH + 2 * a.pad - a.k) / a.stride) + 1;
    const outW = Math.floor((a.inW + 2 * a.pad - a.k) / a.stride) + 1;
    cases.push({
      name: `conv2d ${name}`,
      tol: a.inC * a.k * a.k > 64 ? SUMS : TIGHT,
      run: (b) => [
        b.conv2d(
          F(b, a.batch * a.inC * a.inH * a.inW, 61),
          F(b, a.outC * (a.inC / groups) * a.k * a.k, 62, 0.3),
          a.bias === false ? null : F(b, a.outC, 63),
          {
            batch: a.batch,
            inC: a.inC,
            inH: a.inH,
            inW: a.inW,
            outC: a.outC,
            kH: a.k,
            kW: a.k,
            strideH: a.stride,
            strideW: a.stride,
            padH: a.pad,
            padW: a.pad,
            groups,
            outH,
            outW,
          },
        ),
      ],
    });
  };
  conv("3x3 pad 1 (VQGAN block)", {
    batch: 2,
    inC: 16,
    inH: 8,
    inW: 8,
    outC: 16,
    k: 3,
    stride: 1,
    pad: 1,
  });
  conv("3x3 stride 2", { batch: 1, inC: 3, inH: 9, inW: 7, outC: 5, k: 3, stride: 2, pad: 1 });
  conv("1x1 no bias", {
    batch: 2,
    inC: 8,
    inH: 5,
    inW: 5,
    outC: 12,
    k: 1,
    stride: 1,
    pad: 0,
    bias: false,
  });
  conv("grouped 3x3", {
    batch: 1,
    inC: 8,
    inH: 6,
    inW: 6,
    outC: 8,
    k: 3,
    stride: 1,
    pad: 1,
    groups: 4,
  });

  for (const mode of ["nearest", "bilinear", "bicubic"] as const) {
    cases.push(resizeCase(mode, false, true));
    cases.push(resizeCase(mode, false, false));
  }
  cases.push(resizeCase("bilinear", true, true));
  cases.push(resizeCase("bicubic", true, false));
  return cases;
}

function compare(
  name: string,
  tol: ParityCase["tol"],
  cpu: HostArray[],
  gpu: HostArray[],
): ParityResult {
  let maxAbs = 0, worstRatio = 0, elements = 0, detail = "";
  if (cpu.length !== gpu.length) {
    return {
      name,
      ok: false,
      maxAbs: NaN,
      worstRatio: Infinity,
      elements: 0,
      detail: `${gpu.length} outputs, expected ${cpu.length}`,
    };
  }
  for (let o = 0; o < cpu.length; o++) {
    const c = cpu[o], g = gpu[o];
    if (c.length !== g.length) {
      return {
        name,
        ok: false,
        maxAbs: NaN,
        worstRatio: Infinity,
        elements,
        detail: `output ${o}: ${g.length} elements, expected ${c.length}`,
      };
    }
    for (let i = 0; i < c.length; i++) {
      const diff = Math.abs(g[i] - c[i]);
      // NaN on either side, or a NaN/Inf mismatch, fails outright.
      const ratio = Number.isFinite(diff)
        ? diff / (tol.atol + tol.rtol * Math.abs(c[i]))
        : (Object.is(g[i], c[i]) ? 0 : Infinity);
      if (Number.isFinite(diff)) maxAbs = Math.max(maxAbs, diff);
      if (ratio > worstRatio || Number.isNaN(ratio)) {
        worstRatio = Number.isNaN(ratio) ? Infinity : ratio;
        detail = `output ${o}[${i}]: webgpu ${g[i]}, cpu ${c[i]}`;
      }
    }
    elements += c.length;
  }
  return { name, ok: worstRatio <= 1, maxAbs, worstRatio, elements, detail };
}

/** Runs every case on both backends; never throws for a case (its error becomes a failure). */
export async function runParity(
  gpu: Backend,
  cpu: Backend,
  onResult?: (r: ParityResult) => void,
  cases: ParityCase[] = parityCases(),
): Promise<ParityResult[]> {
  const results: ParityResult[] = [];
  for (const c of cases) {
    let r: ParityResult;
    try {
      r = compare(c.name, c.tol, await runOn(c, cpu), await runOn(c, gpu));
    } catch (e) {
      r = {
        name: c.name,
        ok: false,
        maxAbs: NaN,
        worstRatio: Infinity,
        elements: 0,
        detail: `threw: ${(e as Error).message}`,
      };
    }
    results.push(r);
    onResult?.(r);
  }
  return results;
}
