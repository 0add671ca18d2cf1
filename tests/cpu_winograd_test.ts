/**
 * Winograd convolution (core/backends/cpu/winograd.ts, winograd_wasm.ts) against a direct
 * float64 loop, the filter-transform cache, and conv2d's choice between it and im2col.
 *
 * Tolerances, on N(0, 1) inputs and weights (outputs of size ~sqrt(9C)):
 *   F(2x2, 3x3): its transforms only add and halve, so the error is that of a float32 sum:
 *     2e-5 * sqrt(9C) absolute + 1e-5 relative, the bound the im2col tests use;
 *   F(4x4, 3x3): its transforms scale by up to 8 and 5, and it measures 10-15x F(2, 3)'s
 *     error (8e-4 at C = 128, 3e-3 at C = 512): 2e-4 * sqrt(9C) + 1e-5 relative, i.e.
 *     about 2e-4 of the output's typical size.
 */

import { expect, it } from "./lib/test.ts";
import type { Conv2dArgs } from "../core/backend.ts";
import { conv2d, useWinograd } from "../core/backends/cpu/conv.ts";
import { sgemm, sgemmNaive } from "../core/backends/cpu/gemm.ts";
import {
  conv2dWinograd,
  F2X3,
  F4X3,
  filterTransform,
  tsPasses,
  winogradApplies,
  type WinogradPasses,
  winogradPlan,
} from "../core/backends/cpu/winograd.ts";
import { winogradWasmPasses } from "../core/backends/cpu/winograd_wasm.ts";
import { assertClose, convArgs, randn, refConv } from "./cpu_kernels_util.ts";

const CASES: [string, Conv2dArgs][] = [
  ["3x3 pad 1, even", convArgs(1, 4, 8, 8, 3, 3, 3, 1, 1, 1, 1, 1)],
  ["pad 0, odd output rows and columns", convArgs(2, 5, 9, 7, 3, 3, 3, 1, 1, 0, 0, 1)],
  ["pad 2, odd sizes", convArgs(1, 3, 5, 6, 4, 3, 3, 1, 1, 2, 2, 1)],
  ["pad (1, 0)", convArgs(1, 3, 6, 7, 2, 3, 3, 1, 1, 1, 0, 1)],
  ["1x1 image", convArgs(2, 3, 1, 1, 2, 3, 3, 1, 1, 1, 1, 1)],
  // 20 tiles per row and 51 tile rows per band: bands span images and split image 2.
  ["bands across images", convArgs(3, 6, 40, 40, 5, 3, 3, 1, 1, 1, 1, 1)],
  // Tiles per row not a multiple of 4, tall map: several bands inside one image.
  ["tall, 9 tiles per row", convArgs(1, 4, 300, 17, 3, 3, 3, 1, 1, 1, 1, 1)],
  ["more channels", convArgs(1, 40, 12, 16, 24, 3, 3, 1, 1, 1, 1, 1)],
];

const wasm = winogradWasmPasses();
const PASSES: [string, WinogradPasses][] = [
  ["F(2x2,3x3), TS transforms", tsPasses(F2X3)],
  ["F(4x4,3x3), TS transforms", tsPasses(F4X3)],
];
if (wasm) PASSES.push(["F(4x4,3x3), WASM SIMD transforms", wasm]);
const tolerance = (p: WinogradPasses, C: number) =>
  (p.transform === F2X3 ? 2e-5 : 2e-4) * Math.sqrt(9 * C);

for (const [name, passes] of PASSES) {
  it(`Winograd conv2d with ${name} matches a direct float64 loop`, () => {
    let seed = 700;
    for (const [label, a] of CASES) {
      expect(winogradApplies(a), label).toBeTruthy();
      const x = randn(a.batch * a.inC * a.inH * a.inW, seed++);
      const w = randn(a.outC * a.inC * 9, seed++);
      const bias = seed % 2 ? randn(a.outC, seed++) : null;
      const ref = refConv(x, w, bias, new Float32Array(a.batch * a.outC * a.outH * a.outW), a);
      const tol = tolerance(passes, a.inC);
      assertClose(conv2dWinograd(x, w, bias, a, sgemm, passes), ref.y, tol, 1e-5, `${label}`);
      // The naive GEMM takes the same offsets and strides: the layout is not BLAS-specific.
      assertClose(
        conv2dWinograd(x, w, bias, a, sgemmNaive, passes),
        ref.y,
        tol,
        1e-5,
        `${label} (naive GEMM)`,
      );
    }
  });
}

it("Winograd filter transform: U = G g G^T, checked on a one-hot filter per tap", () => {
  for (const t of [F2X3, F4X3]) {
    const alpha = t.m + 2;
    for (let tap = 0; tap < 9; tap++) {
      const w = new Float32Array(9);
      w[tap] = 1;
      const U = filterTransform(w, 1, 1, t);
      const [u, v] = [Math.floor(tap / 3), tap % 3];
      for (let i = 0; i < alpha; i++) {
        for (let j = 0; j < alpha; j++) {
          const expected = Math.fround(t.G[i][u] * t.G[j][v]);
          // === (not Object.is): a -0 tap equals an expected 0
          expect(
            U[alpha * i + j] === expected,
            `${t.name} tap ${tap} U[${i}][${j}] = ${U[alpha * i + j]}, expected ${expected}`,
          ).toBe(true);
        }
      }
    }
  }
});

it("Winograd reuses a filter transform only while the weights are bit-identical", () => {
  const a = convArgs(1, 16, 12, 12, 8, 3, 3, 1, 1, 1, 1, 1);
  const x = randn(16 * 144, 11), w = randn(8 * 16 * 9, 12);
  const passes = wasm ?? tsPasses(F4X3);
  const check = (label: string) => {
    const ref = refConv(x, w, null, new Float32Array(8 * 144), a).y;
    assertClose(
      conv2dWinograd(x, w, null, a, sgemm, passes),
      ref,
      tolerance(passes, 16),
      1e-5,
      label,
    );
  };
  check("first call");
  check("cached");
  w[5] += 0.5; // an optimiser step, in place
  check("after one weight changed in place");
  w.fill(0.25, 100, 300);
  check("after a block changed in place");
});

it("conv2d takes Winograd for 3x3 stride-1 convolutions on maps from 32x32, im2col otherwise", () => {
  const big = convArgs(1, 32, 64, 64, 16, 3, 3, 1, 1, 1, 1, 1);
  expect(winogradApplies(big) && winogradPlan(big, F4X3).tileCols === 16).toBeTruthy();
  for (
    const a of [
      convArgs(1, 32, 8, 8, 4, 3, 3, 2, 2, 1, 1, 1),
      convArgs(1, 4, 8, 8, 4, 3, 3, 1, 1, 1, 1, 2),
    ]
  ) {
    expect(winogradApplies(a), "stride 2 and groups take im2col").toBeFalsy();
  }
  const x = randn(32 * 64 * 64, 1), w = randn(16 * 32 * 9, 2), b = randn(16, 3);
  const ref = refConv(x, w, b, new Float32Array(16 * 64 * 64), big).y;
  try {
    const results = (["off", "ts", "wasm"] as const).map((
      mode,
    ) => (useWinograd(mode), conv2d(x, w, b, big)));
    for (const y of results) assertClose(y, ref, 2e-4 * Math.sqrt(9 * 32), 1e-5, "conv2d");
    // Different summation orders: the paths agree closely but are not bit-identical.
    expect(results[0]).not.toEqual(results[1]);
  } finally {
    useWinograd("wasm");
  }
});
