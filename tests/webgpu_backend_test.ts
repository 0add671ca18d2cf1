/**
 * WebGPU backend machinery: adapter facts, storage bookkeeping (live count, deferred
 * release, pool reuse), device limits (over-limit errors, split dispatch grids), the
 * pipeline cache and readable compile errors, the counter-based random streams against
 * `core/random.ts`, and the matrix-product kernels against float64 loops.
 * Skipped (not passed) where navigator.gpu gives no adapter.
 */

import { expect, it } from "./lib/test.ts";
import { rejected, thrown } from "./lib/errors.ts";
import { ShapeError } from "../core/backend.ts";
import {
  createWebGPUBackend,
  LimitError,
  probeWebGPU,
  type WebGPUBackend,
} from "../core/backends/webgpu/mod.ts";
import type { GpuStorage } from "../core/backends/webgpu/buffers.ts";
import { layout, u32 } from "../core/backends/webgpu/wgsl.ts";
import { normalAt, uniformAt } from "../core/random.ts";
import { assertClose, randn } from "./cpu_kernels_util.ts";

const probe = await probeWebGPU();
const noGpu = !probe.available;
// The device and its pools outlive single tests (node:test's `it` has no sanitizers).

let shared: Promise<WebGPUBackend> | null = null;
const gpu = () => (shared ??= createWebGPUBackend({ allowFallbackAdapter: true }));

it.skipIf(noGpu)("webgpu: adapter description and fallback flag", async () => {
  console.log(`adapter: ${probe.description}; isFallbackAdapter=${probe.isFallback}`);
  const g = await gpu();
  expect(g.name).toBe("webgpu");
  expect(g.isFallbackAdapter).toBe(probe.isFallback);
  expect(g.description.includes(probe.description), g.description).toBeTruthy();
  if (probe.isFallback) {
    await expect(createWebGPUBackend()).rejects.toThrow(
      /only a software adapter.*allowFallbackAdapter/,
    );
  }
  const l = g.ctx.limits;
  console.log(`limits: ${JSON.stringify(l)}`);
  expect(l.maxStorageBuffersPerShaderStage >= 8 && l.maxComputeWorkgroupsPerDimension >= 65535)
    .toBeTruthy();
});

it.skipIf(noGpu)("webgpu: liveStorages returns to its start after ops and releases", async () => {
  const g = await gpu();
  const start = g.liveStorages();
  const x = g.fromHost(Float32Array.of(1, 2, 3, 4));
  const y = g.unary("exp", x);
  const s = g.softmax(y, 2, 2, false);
  const ln = g.layerNorm(s, null, null, 2, 2, 1e-5);
  const ce = g.crossEntropy(ln.y, g.fromHost(Int32Array.of(1, 0)), 2, 2, 0.1, -100);
  const sq = g.sumSquares(ce.logp);
  expect(g.liveStorages()).toBe(start + 10);
  const v = await g.read(sq);
  expect(Number.isFinite(v[0])).toBeTruthy();
  for (const t of [x, y, s, ln.y, ln.mean, ln.rstd, ce.loss, ce.logp, sq]) g.release(t);
  expect(g.liveStorages()).toBe(start + 1); // the targets storage
  expect(() => g.release(x)).toThrow(/already released/);
  expect(() => g.unary("neg", x)).toThrow(/was released/);
  await expect(g.read(x)).rejects.toThrow(/was released/);
});

it.skipIf(noGpu)(
  "webgpu: release is deferred until after the submit, then buffers are reused by size",
  async () => {
    const g = await gpu();
    g.flush();
    const a = g.alloc("f32", 1000) as GpuStorage;
    g.release(a);
    const b = g.alloc("f32", 1000) as GpuStorage; // same bucket, but the release is not submitted yet
    expect(b.buffer).not.toBe(a.buffer);
    g.flush();
    const c = g.alloc("f32", 990) as GpuStorage; // same 4 KiB bucket, now reusable
    expect(c.buffer).toBe(a.buffer);
    // Reused buffers are zeroed by alloc.
    const d = g.fromHost(new Float32Array(1000).fill(7)) as GpuStorage;
    g.release(d);
    g.flush();
    const e = g.alloc("f32", 1000) as GpuStorage;
    expect(e.buffer).toBe(d.buffer);
    expect(Array.from(await g.read(e)).slice(0, 4)).toEqual([0, 0, 0, 0]);
    for (const s of [b, c, e]) g.release(s);
  },
);

it.skipIf(noGpu)(
  "webgpu: buffers over the device limits are rejected with the numbers",
  async () => {
    const g = await gpu();
    const { maxStorageBufferBindingSize: binding } = g.ctx.limits;
    const tooMany = binding / 4 + 1;
    const tooBig = thrown(() => g.alloc("f32", tooMany));
    expect(tooBig).toBeInstanceOf(LimitError);
    expect(tooBig.message).toContain("maxStorageBufferBindingSize");
    expect(tooBig.message).toContain(String(binding));
    const small = await createWebGPUBackend({
      allowFallbackAdapter: true,
      limits: { maxBufferSize: 1024 },
    });
    try {
      expect(() => small.fill("f32", 300, 1)).toThrow(
        /fill_f32 \(300 x f32\): needs maxBufferSize >= 1200, but this device allows 1024/,
      );
      expect(() => small.fromHost(new Float32Array(257))).toThrow(/maxBufferSize >= 1028/);
      small.release(small.fill("f32", 256, 1));
    } finally {
      small.destroy();
    }
  },
);

it.skipIf(noGpu)(
  "webgpu: grids beyond maxComputeWorkgroupsPerDimension are split over y (or rejected)",
  async () => {
    const g = await createWebGPUBackend({
      allowFallbackAdapter: true,
      limits: { maxComputeWorkgroupsPerDimension: 4 },
    });
    try {
      // 3000 elements / 256 = 12 workgroups > 4: laid out 4 x 3.
      const host = randn(3000, 1);
      const y = await g.read(g.affine(g.fromHost(host), 2, 1));
      assertClose(y, host.map((v) => 2 * v + 1), 0, 1.2e-7, "affine over a split grid");
      // One workgroup per row: 10 rows > 4.
      const rows = 10, cols = 3;
      const x = randn(rows * cols, 2);
      const sm = await g.read(g.softmax(g.fromHost(x), rows, cols, false));
      for (let r = 0; r < rows; r++) {
        const e = [0, 1, 2].map((c) => Math.exp(x[r * cols + c]));
        const z = e[0] + e[1] + e[2];
        assertClose(
          sm.subarray(r * cols, r * cols + cols),
          e.map((v) => v / z),
          1e-7,
          1e-6,
          `softmax row ${r}`,
        );
      }
      // Matmul tiles are not split: 600 columns need 19 tiles of 32 in x, more than 4.
      const a = g.fromHost(randn(8 * 4, 3));
      const b = g.fromHost(randn(4 * 600, 4));
      const tooWide = thrown(() =>
        g.matmul(a, b, {
          batch: 1,
          M: 8,
          N: 600,
          K: 4,
          transA: false,
          transB: false,
          strideA: 0,
          strideB: 0,
        })
      );
      expect(tooWide).toBeInstanceOf(LimitError);
      expect(tooWide.message).toMatch(
        /maxComputeWorkgroupsPerDimension >= \d+, but this device allows 4/,
      );
      // Batches past the limit go in chunks of z.
      const batch = 9, M = 2, N = 3, K = 2;
      const A = randn(batch * M * K, 5), B = randn(batch * K * N, 6);
      const C = await g.read(
        g.matmul(g.fromHost(A), g.fromHost(B), {
          batch,
          M,
          N,
          K,
          transA: false,
          transB: false,
          strideA: M * K,
          strideB: K * N,
        }),
      );
      assertClose(
        C,
        refMatmul(A, B, batch, M, N, K, false, false, M * K, K * N),
        1e-6,
        1e-6,
        "batched matmul in z chunks",
      );
    } finally {
      g.destroy();
    }
  },
);

it.skipIf(noGpu)(
  "webgpu: pipelines are cached by WGSL text; compile errors are reported with line numbers",
  async () => {
    const g = await gpu();
    const x = g.fromHost(Float32Array.of(1, 2, 3));
    g.release(g.unary("sin", x));
    const before = g.ctx.pipelineCount;
    g.release(g.unary("sin", x));
    g.release(g.unary("sin", g.fromHost(new Float32Array(1000))));
    expect(g.ctx.pipelineCount, "same op, same shader: no new pipeline").toBe(before);
    g.release(g.unary("cos", x));
    expect(g.ctx.pipelineCount).toBe(before + 1);

    const out = g.alloc("f32", 4) as GpuStorage;
    g.ctx.dispatch(
      {
        name: "deliberately_broken",
        params: layout(u32("n")),
        bindings: [{ name: "out", element: "f32", access: "read_write" }],
        workgroupSize: [4],
        body: "  let v: f32 = 1u;\n  out[lindex] = v;",
      },
      { n: 4 },
      [out],
      [1],
    );
    const e = await rejected(g.read(out));
    expect(e.message).toMatch(/kernel 'deliberately_broken' failed to compile/);
    expect(e.message).toMatch(/line \d+:\d+/);
    expect(e.message).toMatch(/--- source ---/);
    // The device keeps working afterwards.
    expect(Array.from(await g.read(g.fill("f32", 2, 3)))).toEqual([3, 3]);
  },
);

it.skipIf(noGpu)("webgpu: shape errors name the op and the shapes", async () => {
  const g = await gpu();
  const a = g.fromHost(new Float32Array(6));
  const short = thrown(() =>
    g.matmul(a, a, {
      batch: 1,
      M: 2,
      N: 3,
      K: 4,
      transA: false,
      transB: false,
      strideA: 0,
      strideB: 0,
    })
  );
  expect(short).toBeInstanceOf(ShapeError);
  expect(short.message).toMatch(/matmul: A needs 8 elements, has 6/);
  expect(() =>
    g.binary(
      "add",
      { storage: a, shape: [2, 3], strides: [3, 1], offset: 0 },
      { storage: a, shape: [4], strides: [1], offset: 0 },
      [2, 3],
      "f32",
    )
  ).toThrow(/binary_add.*does not broadcast/);
  expect(() => g.copy({ storage: a, shape: [3, 3], strides: [3, 1], offset: 0 })).toThrow(
    /copy: src .*reaches element 8 of a storage of 6/,
  );
  expect(() => g.gather(a, a, 3, 2)).toThrow(/gather: idx must be i32, got f32/);
});

it.skipIf(noGpu)("webgpu: uniform, normal and dropout reproduce core/random.ts", async () => {
  const g = await gpu();
  for (const [seed, offset] of [[0, 0], [12345, 77], [0xffffffff, 0xfffffff0]]) {
    const n = 300;
    const u = await g.read(g.uniform(n, seed, offset));
    const nrm = await g.read(g.normal(n, seed, offset));
    for (let i = 0; i < n; i++) {
      const idx = (offset + i) % 2 ** 32;
      expect(u[i], `uniform seed ${seed} index ${idx}`).toBe(uniformAt(seed, idx));
      const ref = normalAt(seed, idx);
      expect(Math.abs(nrm[i] - ref), `normal seed ${seed} index ${idx}: ${nrm[i]} vs ${ref}`)
        .toBeLessThanOrEqual(2e-6 * (1 + Math.abs(ref)));
    }
  }
  const x = randn(500, 9);
  for (const p of [0, 0.1, 0.5, 0.999]) {
    const d = g.dropout(g.fromHost(x), p, 42, 1000);
    const y = await g.read(d.y), mask = await g.read(d.mask);
    for (let i = 0; i < x.length; i++) {
      const keep = uniformAt(42, 1000 + i) >= p;
      expect(mask[i], `dropout p=${p} mask ${i}`).toBe(keep ? 1 : 0);
      const want = keep ? x[i] / (1 - p) : 0;
      expect(Math.abs(y[i] - want), `dropout p=${p} y ${i}: ${y[i]} vs ${want}`)
        .toBeLessThanOrEqual(1.2e-7 * Math.abs(want));
    }
  }
});

/** float64 reference for MatmulArgs semantics. */
function refMatmul(
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  batch: number,
  M: number,
  N: number,
  K: number,
  tA: boolean,
  tB: boolean,
  sA: number,
  sB: number,
  bias?: ArrayLike<number>,
): Float64Array {
  const C = new Float64Array(batch * M * N);
  for (let b = 0; b < batch; b++) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = bias ? bias[n] : 0;
        for (let k = 0; k < K; k++) {
          s += A[b * sA + (tA ? k * M + m : m * K + k)] * B[b * sB + (tB ? n * K + k : k * N + n)];
        }
        C[(b * M + m) * N + n] = s;
      }
    }
  }
  return C;
}

it.skipIf(noGpu)("webgpu: matmul kernels (naive, tiled, gemv) against float64 loops", async () => {
  const g = await gpu();
  // Shapes: aligned 64-tiles, ragged edges, vec4-unaligned K and N, tiny, M = 1 for gemv.
  const shapes = [[64, 64, 64], [70, 45, 33], [8, 12, 20], [1, 40, 24], [1, 37, 11]];
  for (const [M, N, K] of shapes) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        const batch = 2;
        const A = randn(batch * M * K, M + N), B = randn(K * N, K), bias = randn(N, 3);
        const args = { batch, M, N, K, transA: tA, transB: tB, strideA: M * K, strideB: 0 };
        const want = refMatmul(A, B, batch, M, N, K, tA, tB, M * K, 0, bias);
        const a = g.fromHost(A), b = g.fromHost(B), bs = g.fromHost(bias);
        const kinds = M === 1
          ? (["naive", "tiled", "gemv"] as const)
          : (["naive", "tiled"] as const);
        for (const kind of kinds) {
          const c = g.matmulWith(kind, a, b, { ...args, bias: bs });
          // f32 accumulation over K terms of size ~1: a few 1e-7 * sqrt(K) * |terms|.
          assertClose(
            await g.read(c),
            want,
            2e-6 * Math.sqrt(K),
            1e-6,
            `${kind} M${M} N${N} K${K} tA=${tA} tB=${tB}`,
          );
          g.release(c);
        }
        for (const s of [a, b, bs]) g.release(s);
      }
    }
  }
});
