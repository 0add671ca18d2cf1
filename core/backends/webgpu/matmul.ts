/**
 * Matrix products C[b] (+)= op(A[b]) · op(B[b]) (+ bias), f32.
 *
 * Three kernels, with N, K, strides and layout baked into the WGSL:
 *  - `naive`: one thread per output, the reference the others are tested against;
 *  - `tiled`: a workgroup of 16x16 (or 8x8 for small outputs) threads computes a 64x64
 *    (32x32) tile, each thread a 4x4 block held in four vec4 accumulators; A and B tiles
 *    of depth 16 are staged in workgroup memory as [k][m] and [k][n] vec4 rows, loaded
 *    with vec4 reads along whichever axis is contiguous in memory when it is 4-aligned;
 *    edge checks are dropped when the tile divides the shape;
 *  - `gemv` for M = 1 (autoregressive decoding): one thread per 4 outputs when B is
 *    (K, N), one workgroup per output with a tree reduction when B is (N, K).
 * Offsets and the first batch index come through the uniform struct, so convolution can
 * reuse one pipeline for every group and batch chunk. The tiled kernel also takes M from
 * the uniforms when A is (M, K) and there is one matrix (every Linear layer, forward and
 * input gradient): the row count changes with the batch and, in uncached decoding, every
 * step, and a pipeline per row count would recompile at each new length.
 */

import { type MatmulArgs, ShapeError } from "../../backend.ts";
import type { GpuStorage } from "./buffers.ts";
import { type GpuContext, LimitError } from "./context.ts";
import type { BindingDecl, KernelDef } from "./kernel.ts";
import { GROUP_INDEX, layout, u32 } from "./wgsl.ts";

export type MatmulKernel = "auto" | "naive" | "tiled" | "gemv";

/** Everything a product needs, in elements; the public MatmulArgs plus internal extras. */
export interface Gemm {
  batch: number;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  strideA: number;
  strideB: number;
  /** Batch stride of C (default M*N). */
  strideC?: number;
  /** Row strides (leading dimensions) of A, B, C as stored; default dense. */
  lda?: number;
  ldb?: number;
  ldc?: number;
  offA?: number;
  offB?: number;
  offC?: number;
  bias?: GpuStorage;
  /** "col": bias[n] added to every row (MatmulArgs); "row": bias[m] (convolution). */
  biasMode?: "col" | "row";
  biasOffset?: number;
  /** C += product instead of C = product. */
  accumulate?: boolean;
}

const PARAMS = layout(
  u32("offA"),
  u32("offB"),
  u32("offC"),
  u32("offBias"),
  u32("batch0"),
  u32("M"),
);

/** Public entry: a fresh C of batch*M*N. */
export function matmul(
  ctx: GpuContext,
  a: GpuStorage,
  b: GpuStorage,
  args: MatmulArgs,
  kind: MatmulKernel = "auto",
): GpuStorage {
  const c = ctx.alloc("f32", args.batch * args.M * args.N, false, "matmul");
  gemm(ctx, a, b, c, { ...args, bias: args.bias as GpuStorage | undefined, biasMode: "col" }, kind);
  return c;
}

export function gemm(
  ctx: GpuContext,
  a: GpuStorage,
  b: GpuStorage,
  c: GpuStorage,
  given: Gemm,
  kind: MatmulKernel = "auto",
): void {
  const g = withDefaults(given);
  const { batch, M, N, K } = g;
  const strideC = g.strideC;
  const offA = g.offA, offB = g.offB, offC = g.offC;
  const shapeText =
    `batch ${batch}, M ${M}, N ${N}, K ${K}, transA ${g.transA}, transB ${g.transB}`;
  if (a.dtype !== "f32" || b.dtype !== "f32") {
    throw new ShapeError("matmul", `f32 only, got ${a.dtype} x ${b.dtype}`);
  }
  // Last element touched, plus one.
  const span = (
    rows: number,
    cols: number,
    ld: number,
  ) => (rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols);
  const needA = offA + (batch - 1) * g.strideA + (g.transA ? span(K, M, g.lda) : span(M, K, g.lda));
  const needB = offB + (batch - 1) * g.strideB + (g.transB ? span(N, K, g.ldb) : span(K, N, g.ldb));
  const needC = offC + (batch - 1) * strideC + span(M, N, g.ldc);
  if (needA > a.length) {
    throw new ShapeError("matmul", `A needs ${needA} elements, has ${a.length} (${shapeText})`);
  }
  if (needB > b.length) {
    throw new ShapeError("matmul", `B needs ${needB} elements, has ${b.length} (${shapeText})`);
  }
  if (needC > c.length) {
    throw new ShapeError("matmul", `C needs ${needC} elements, has ${c.length} (${shapeText})`);
  }
  if (g.bias) {
    const need = (g.biasOffset ?? 0) + (g.biasMode === "row" ? M : N);
    if (need > g.bias.length) {
      throw new ShapeError("matmul", `bias needs ${need} elements, has ${g.bias.length}`);
    }
  }
  if (batch * M * N === 0) return;
  // A batch of row-major A against one shared B is a single tall product.
  if (
    (kind === "auto" || kind === "tiled") && batch > 1 && g.strideB === 0 && !g.transA &&
    g.strideA === M * g.lda && strideC === M * g.ldc && !(g.bias && g.biasMode === "row")
  ) {
    gemm(ctx, a, b, c, { ...g, batch: 1, M: batch * M, strideA: 0, strideC: 0 }, kind);
    return;
  }
  // K = 0 gives bias (or zeros): the naive kernel's empty loop does exactly that.
  const chosen = K === 0 ? "naive" : kind === "auto" ? (M === 1 ? "gemv" : "tiled") : kind;
  if (chosen === "gemv" && M !== 1) {
    throw new ShapeError("matmul", `gemv needs M = 1 (${shapeText})`);
  }

  const maxG = ctx.limits.maxComputeWorkgroupsPerDimension;
  const storages = [a, b, c, ...(g.bias ? [g.bias] : [])];
  const params = { offA, offB, offC, offBias: g.biasOffset ?? 0, batch0: 0, M };
  let def: KernelDef;
  let gx: number, gy: number;
  if (chosen === "naive") {
    def = naiveKernel(g);
    [gx, gy] = [Math.ceil(N / 16), Math.ceil(M / 16)];
  } else if (chosen === "gemv") {
    const k = gemvKernel(ctx, g);
    def = k.def;
    [gx, gy] = k.groups;
  } else {
    const wg = M >= 64 && N >= 64 && ctx.limits.maxComputeInvocationsPerWorkgroup >= 256 ? 16 : 8;
    def = tiledKernel(g, wg);
    [gx, gy] = [Math.ceil(N / (4 * wg)), Math.ceil(M / (4 * wg))];
  }
  if (gx > maxG || gy > maxG) {
    throw new LimitError(
      `matmul ${def.name} (${shapeText})`,
      "maxComputeWorkgroupsPerDimension",
      Math.max(gx, gy),
      maxG,
    );
  }
  // The batch goes in z, in chunks when it passes the per-dimension limit.
  for (let b0 = 0; b0 < batch; b0 += maxG) {
    ctx.dispatch(def, { ...params, batch0: b0 }, storages, [gx, gy, Math.min(maxG, batch - b0)]);
  }
}

type Full = Required<Omit<Gemm, "bias">> & Pick<Gemm, "bias">;

function withDefaults(g: Gemm): Full {
  return {
    ...g,
    strideC: g.strideC ?? g.M * g.N,
    lda: g.lda ?? (g.transA ? g.M : g.K),
    ldb: g.ldb ?? (g.transB ? g.K : g.N),
    ldc: g.ldc ?? g.N,
    offA: g.offA ?? 0,
    offB: g.offB ?? 0,
    offC: g.offC ?? 0,
    biasMode: g.biasMode ?? "col",
    biasOffset: g.biasOffset ?? 0,
    accumulate: g.accumulate ?? false,
  };
}

function bindings(vecA: boolean, vecB: boolean, vecC: boolean, bias: boolean): BindingDecl[] {
  return [
    { name: vecA ? "A4" : "A", element: vecA ? "vec4<f32>" : "f32", access: "read" },
    { name: vecB ? "B4" : "B", element: vecB ? "vec4<f32>" : "f32", access: "read" },
    { name: vecC ? "C4" : "C", element: vecC ? "vec4<f32>" : "f32", access: "read_write" },
    ...(bias ? [{ name: "bias", element: "f32" as const, access: "read" as const }] : []),
  ];
}

/** WGSL for the bias term of element (m, n), or "" without bias. */
function biasTerm(g: Full, m: string, n: string): string {
  if (!g.bias) return "";
  return g.biasMode === "row" ? ` + bias[P.offBias + ${m}]` : ` + bias[P.offBias + ${n}]`;
}

/** `rows` replaces `M<value>` for kernels that read M from the uniforms. */
function keyOf(g: Full, rows = `M${g.M}`): string {
  return `${rows}_N${g.N}_K${g.K}_${g.transA ? "T" : "N"}${
    g.transB ? "T" : "N"
  }_sa${g.strideA}_sb${g.strideB}` +
    `_sc${g.strideC}_ld${g.lda}_${g.ldb}_${g.ldc}${g.bias ? `_bias${g.biasMode}` : ""}${
      g.accumulate ? "_acc" : ""
    }`;
}

/** Index expressions of A(m, k) and B(k, n) in their stored layouts. */
function aIndex(g: Full, m: string, k: string): string {
  return g.transA ? `${k} * ${g.lda}u + ${m}` : `${m} * ${g.lda}u + ${k}`;
}
function bIndex(g: Full, k: string, n: string): string {
  return g.transB ? `${n} * ${g.ldb}u + ${k}` : `${k} * ${g.ldb}u + ${n}`;
}

const BASES = (g: Full) => `
  let bz = wid.z + P.batch0;
  let baseA = P.offA + bz * ${g.strideA}u;
  let baseB = P.offB + bz * ${g.strideB}u;
  let baseC = P.offC + bz * ${g.strideC}u;`;

function naiveKernel(g: Full): KernelDef {
  const { M, N, K } = g;
  const prior = g.accumulate ? `C[ci] + ` : "";
  return {
    name: `matmul_naive_${keyOf(g)}`,
    params: PARAMS,
    bindings: bindings(false, false, false, !!g.bias),
    workgroupSize: [16, 16],
    body: `
  let n = gid.x;
  let m = gid.y;
  if (n >= ${N}u || m >= ${M}u) { return; }${BASES(g)}
  var s = 0.0;
  for (var k = 0u; k < ${K}u; k = k + 1u) {
    s = fma(A[baseA + ${aIndex(g, "m", "k")}], B[baseB + ${bIndex(g, "k", "n")}], s);
  }
  let ci = baseC + m * ${g.ldc}u + n;
  C[ci] = ${prior}s${biasTerm(g, "m", "n")};`,
  };
}

const BK = 16;

/** A WGSL u32 expression: a literal for a baked number, else the given expression. */
const u32Of = (v: number | string) => (typeof v === "number" ? `${v}u` : v);

/**
 * One load unit of a tile: 4 consecutive elements along the operand's contiguous axis,
 * as one vec4 read when aligned, else 4 guarded scalar reads. `outer`/`inner` name the
 * coordinates along the strided and the contiguous axis.
 */
function loadUnit(
  arr: string,
  vec: boolean,
  base: string,
  ld: number,
  outer: string,
  inner: string,
  outerLimit: number | string,
  innerLimit: number | string,
  guard: boolean,
): string {
  if (vec) {
    const check = guard
      ? `if (${outer} < ${u32Of(outerLimit)} && ${inner} < ${u32Of(innerLimit)}) `
      : "";
    return `${check}{ v = ${arr}4[(${base} + ${outer} * ${ld}u + ${inner}) / 4u]; }`;
  }
  return [0, 1, 2, 3].map((c) => {
    const check = guard
      ? `if (${outer} < ${u32Of(outerLimit)} && ${inner} + ${c}u < ${u32Of(innerLimit)}) `
      : "";
    return `${check}{ v[${c}] = ${arr}[${base} + ${outer} * ${ld}u + ${inner} + ${c}u]; }`;
  }).join("\n      ");
}

function tiledKernel(given: Full, wg: number): KernelDef {
  const BM = 4 * wg, BN = 4 * wg, threads = wg * wg;
  // One (M, K) matrix: M only bounds rows, so it can come from the uniforms (batch
  // strides are unused with one matrix; zero them so they do not split the cache).
  const dynamicM = given.batch === 1 && !given.transA;
  const g: Full = dynamicM ? { ...given, strideA: 0, strideC: 0 } : given;
  const { N, K } = g;
  const M: number | string = dynamicM ? "P.M" : g.M;
  const aligned = (off: number, stride: number, ld: number) =>
    off % 4 === 0 && ld % 4 === 0 && (g.batch === 1 || stride % 4 === 0);
  // vec4 reads run along the contiguous axis: k for A (M,K) and B (N,K), m or n otherwise.
  const vecA = (g.transA ? g.M % 4 === 0 : K % 4 === 0) && aligned(g.offA, g.strideA, g.lda);
  const vecB = (g.transB ? K % 4 === 0 : N % 4 === 0) && aligned(g.offB, g.strideB, g.ldb);
  const vecC = N % 4 === 0 && aligned(g.offC, g.strideC, g.ldc);
  const guardM = g.M % BM !== 0, guardN = N % BN !== 0, guardK = K % BK !== 0;

  // A tile -> As[k][m] (vec4 over m); B tile -> Bs[k][n] (vec4 over n).
  const loadA: string[] = [];
  for (let u = 0; u < (BM * BK) / (4 * threads); u++) {
    const f = `lindex + ${u * threads}u`;
    if (!g.transA) {
      loadA.push(`{
      let f = ${f}; let r = f / ${BK / 4}u; let kq = f % ${BK / 4}u;
      let gm = m0 + r; let gk = k0 + kq * 4u;
      var v = vec4<f32>();
      ${loadUnit("A", vecA, "baseA", g.lda, "gm", "gk", M, K, guardM || guardK)}
      for (var c = 0u; c < 4u; c = c + 1u) { As[(kq * 4u + c) * ${
        BM / 4
      }u + r / 4u][r % 4u] = v[c]; }
    }`);
    } else {
      loadA.push(`{
      let f = ${f}; let kk = f / ${BM / 4}u; let mq = f % ${BM / 4}u;
      let gm = m0 + mq * 4u; let gk = k0 + kk;
      var v = vec4<f32>();
      ${loadUnit("A", vecA, "baseA", g.lda, "gk", "gm", K, M, guardM || guardK)}
      As[kk * ${BM / 4}u + mq] = v;
    }`);
    }
  }
  const loadB: string[] = [];
  for (let u = 0; u < (BN * BK) / (4 * threads); u++) {
    const f = `lindex + ${u * threads}u`;
    if (!g.transB) {
      loadB.push(`{
      let f = ${f}; let kk = f / ${BN / 4}u; let nq = f % ${BN / 4}u;
      let gn = n0 + nq * 4u; let gk = k0 + kk;
      var v = vec4<f32>();
      ${loadUnit("B", vecB, "baseB", g.ldb, "gk", "gn", K, N, guardN || guardK)}
      Bs[kk * ${BN / 4}u + nq] = v;
    }`);
    } else {
      loadB.push(`{
      let f = ${f}; let r = f / ${BK / 4}u; let kq = f % ${BK / 4}u;
      let gn = n0 + r; let gk = k0 + kq * 4u;
      var v = vec4<f32>();
      ${loadUnit("B", vecB, "baseB", g.ldb, "gn", "gk", N, K, guardN || guardK)}
      for (var c = 0u; c < 4u; c = c + 1u) { Bs[(kq * 4u + c) * ${
        BN / 4
      }u + r / 4u][r % 4u] = v[c]; }
    }`);
    }
  }

  const store: string[] = [];
  for (let i = 0; i < 4; i++) {
    const m = `(m0 + ty * 4u + ${i}u)`;
    if (vecC) {
      let biasV = "";
      if (g.bias) {
        biasV = g.biasMode === "row"
          ? ` + vec4<f32>(bias[P.offBias + ${m}])`
          : ` + vec4<f32>(bias[P.offBias + n], bias[P.offBias + n + 1u], bias[P.offBias + n + 2u], bias[P.offBias + n + 3u])`;
      }
      const idx = `(baseC + ${m} * ${g.ldc}u + n) / 4u`;
      const guard = guardM || guardN ? `if (${m} < ${u32Of(M)} && n < ${N}u) ` : "";
      store.push(`${guard}{ C4[${idx}] = ${g.accumulate ? `C4[${idx}] + ` : ""}acc${i}${biasV}; }`);
    } else {
      for (let j = 0; j < 4; j++) {
        const idx = `baseC + ${m} * ${g.ldc}u + n + ${j}u`;
        const guard = guardM || guardN ? `if (${m} < ${u32Of(M)} && n + ${j}u < ${N}u) ` : "";
        store.push(
          `${guard}{ C[${idx}] = ${g.accumulate ? `C[${idx}] + ` : ""}acc${i}[${j}]${
            biasTerm(g, m, `n + ${j}u`)
          }; }`,
        );
      }
    }
  }

  // The dynamic-M key keeps whether rows need a guard (M % BM), not M itself.
  const rows = dynamicM ? `Mdyn${guardM ? "g" : "f"}` : `M${g.M}`;
  return {
    name: `matmul_tiled${wg}_${keyOf(g, rows)}_${vecA ? "va" : "sa"}${vecB ? "vb" : "sb"}${
      vecC ? "vc" : "sc"
    }`,
    params: PARAMS,
    bindings: bindings(vecA, vecB, vecC, !!g.bias),
    workgroupSize: [wg, wg],
    workgroupBytes: 2 * BK * BM * 4,
    helpers: `var<workgroup> As: array<vec4<f32>, ${
      (BK * BM) / 4
    }>;\nvar<workgroup> Bs: array<vec4<f32>, ${(BK * BN) / 4}>;`,
    body: `
  let tx = lid.x;
  let ty = lid.y;
  let n0 = wid.x * ${BN}u;
  let m0 = wid.y * ${BM}u;${BASES(g)}
  var acc0 = vec4<f32>();
  var acc1 = vec4<f32>();
  var acc2 = vec4<f32>();
  var acc3 = vec4<f32>();
  for (var k0 = 0u; k0 < ${K}u; k0 = k0 + ${BK}u) {
    ${loadA.join("\n    ")}
    ${loadB.join("\n    ")}
    workgroupBarrier();
    for (var k = 0u; k < ${BK}u; k = k + 1u) {
      let a = As[k * ${BM / 4}u + ty];
      let b = Bs[k * ${BN / 4}u + tx];
      acc0 = fma(vec4<f32>(a.x), b, acc0);
      acc1 = fma(vec4<f32>(a.y), b, acc1);
      acc2 = fma(vec4<f32>(a.z), b, acc2);
      acc3 = fma(vec4<f32>(a.w), b, acc3);
    }
    workgroupBarrier();
  }
  let n = n0 + tx * 4u;
  ${store.join("\n  ")}`,
  };
}

function gemvKernel(ctx: GpuContext, g: Full): { def: KernelDef; groups: [number, number] } {
  const { N, K } = g;
  const prior = (idx: string) => (g.accumulate ? `C[${idx}] + ` : "");
  // With M = 1, A is a contiguous run of K values in either layout.
  if (!g.transB) {
    // B is (K, N): thread t owns outputs 4t..4t+3 and walks k; reads of B coalesce over n.
    const vec = N % 4 === 0 && g.offB % 4 === 0 && g.ldb % 4 === 0 &&
      (g.batch === 1 || g.strideB % 4 === 0);
    const wg = Math.min(64, ctx.wg1d);
    const threads = Math.ceil(N / 4);
    const load = vec
      ? `B4[(baseB + k * ${g.ldb}u + n) / 4u]`
      : `vec4<f32>(${
        [0, 1, 2, 3].map((j) => `B[baseB + k * ${g.ldb}u + min(n + ${j}u, ${N - 1}u)]`).join(", ")
      })`;
    const stores = [0, 1, 2, 3].map((j) => {
      const idx = `baseC + n + ${j}u`;
      return `if (n + ${j}u < ${N}u) { C[${idx}] = ${prior(idx)}acc[${j}]${
        biasTerm(g, "0u", `n + ${j}u`)
      }; }`;
    });
    return {
      def: {
        name: `matmul_gemv_${keyOf(g)}_${vec ? "v" : "s"}`,
        params: PARAMS,
        bindings: bindings(false, vec, false, !!g.bias),
        workgroupSize: [wg],
        body: `
  let t = wid.x * ${wg}u + lid.x;
  if (t >= ${threads}u) { return; }
  let n = t * 4u;${BASES(g)}
  var acc = vec4<f32>();
  for (var k = 0u; k < ${K}u; k = k + 1u) {
    acc = fma(vec4<f32>(A[baseA + k]), ${load}, acc);
  }
  ${stores.join("\n  ")}`,
      },
      groups: [Math.ceil(threads / wg), 1],
    };
  }
  // B is (N, K): a dot product of two contiguous rows per output; one workgroup each.
  const wg = Math.min(64, ctx.wg1d);
  const [gx, gy] = ctx.grid(N, "matmul gemv");
  return {
    def: {
      name: `matmul_gemvT_${keyOf(g)}`,
      params: PARAMS,
      bindings: bindings(false, false, false, !!g.bias),
      workgroupSize: [wg],
      workgroupBytes: wg * 4,
      helpers: `var<workgroup> part: array<f32, ${wg}>;`,
      body: `
  let n = ${GROUP_INDEX};
  if (n >= ${N}u) { return; }${BASES(g)}
  let row = baseB + n * ${g.ldb}u;
  var s = 0.0;
  for (var k = lindex; k < ${K}u; k = k + ${wg}u) { s = fma(A[baseA + k], B[row + k], s); }
  part[lindex] = s;
  workgroupBarrier();
  for (var h = ${wg / 2}u; h > 0u; h = h >> 1u) {
    if (lindex < h) { part[lindex] = part[lindex] + part[lindex + h]; }
    workgroupBarrier();
  }
  if (lindex == 0u) {
    let ci = baseC + n;
    C[ci] = ${prior("ci")}part[0]${biasTerm(g, "0u", "n")};
  }`,
    },
    groups: [gx, gy],
  };
}
