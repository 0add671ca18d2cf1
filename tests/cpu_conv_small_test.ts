/**
 * conv2d and its two gradients on small feature maps (core/backends/cpu/conv.ts's batched
 * path: several whole images per GEMM, columns built by im2col_wasm.ts's SIMD kernels or
 * by im2col.ts), against the suite's direct float64 convolution (refConv in cpu_kernels_util.ts).
 *
 * Shapes: 8x8 and 16x16 maps and a few odd ones, batch > 1 (several images per GEMM),
 * 3x3 pad 1, 1x1, stride 2 (also only along one axis), groups 2, non-square maps and
 * kernels, odd channel counts, with and without bias; each runs with the SIMD kernels
 * (unrolled per shape, and their generic loops) and with the TS reference path.
 *
 * Tolerance: inputs, weights and dy are uniform in [-1, 1); a float32 sum of n products
 * of such values errs by about n * 2^-24 * typical size, far below the bound used here:
 * |ours - ref| <= 1e-4 * (|ref| + sqrt(n)), n the number of products per output (1e-4
 * relative, with an absolute floor at the sum's typical size sqrt(n) / 3).
 */

import { expect, it } from "./lib/test.ts";
import type { Conv2dArgs } from "../core/backend.ts";
import { conv2d, conv2dBackwardInput, conv2dBackwardWeight } from "../core/backends/cpu/conv.ts";
import { useIm2colWasm } from "../core/backends/cpu/im2col_wasm.ts";
import { convArgs, refConv } from "./cpu_kernels_util.ts";

interface Case {
  label: string;
  args: Conv2dArgs;
  bias: boolean;
}

function conv(
  label: string,
  batch: number,
  inC: number,
  outC: number,
  [inH, inW]: [number, number],
  [kH, kW]: [number, number],
  [strideH, strideW]: [number, number],
  [padH, padW]: [number, number],
  groups: number,
  bias: boolean,
): Case {
  return {
    label,
    bias,
    args: convArgs(batch, inC, inH, inW, outC, kH, kW, strideH, strideW, padH, padW, groups),
  };
}

const CASES: Case[] = [
  conv("8x8 3x3 pad 1, the demo VQGAN's", 6, 16, 12, [8, 8], [3, 3], [1, 1], [1, 1], 1, false),
  conv("8x8 3x3 pad 1, bias", 5, 8, 16, [8, 8], [3, 3], [1, 1], [1, 1], 1, true),
  conv("16x16 3x3 pad 1, odd channels", 3, 7, 5, [16, 16], [3, 3], [1, 1], [1, 1], 1, true),
  conv("8x8 1x1", 4, 9, 6, [8, 8], [1, 1], [1, 1], [0, 0], 1, true),
  conv("16x16 3x3 stride 2", 3, 6, 10, [16, 16], [3, 3], [2, 2], [1, 1], 1, false),
  conv("8x8 3x3 stride 2, bias", 4, 5, 3, [8, 8], [3, 3], [2, 2], [1, 1], 1, true),
  conv("8x8 1x1 stride 2", 3, 6, 4, [8, 8], [1, 1], [2, 2], [0, 0], 1, false),
  conv("8x8 groups 2", 3, 8, 6, [8, 8], [3, 3], [1, 1], [1, 1], 2, true),
  conv("16x16 groups 2, stride 2", 2, 6, 4, [16, 16], [3, 3], [2, 2], [1, 1], 2, false),
  conv("non-square 8x12", 3, 5, 7, [8, 12], [3, 3], [1, 1], [1, 1], 1, true),
  conv("non-square 7x5, odd width", 4, 3, 5, [7, 5], [3, 3], [1, 1], [1, 1], 1, false),
  conv("non-square kernel 1x3 pad (0, 1)", 3, 4, 5, [8, 8], [1, 3], [1, 1], [0, 1], 1, true),
  conv("5x5 pad 2 on 9x11", 2, 3, 4, [9, 11], [5, 5], [1, 1], [2, 2], 1, false),
  conv("stride 2 along the height only", 3, 4, 3, [8, 8], [3, 3], [2, 1], [1, 1], 1, true),
  conv("stride 2 along the width only", 3, 4, 3, [8, 10], [3, 3], [1, 2], [1, 1], 1, false),
  conv("stride 3 (TS path)", 3, 4, 3, [10, 10], [3, 3], [3, 3], [1, 1], 1, true),
  conv("pad 0, 3x3 on 6x6", 4, 5, 2, [6, 6], [3, 3], [1, 1], [0, 0], 1, false),
  conv("2x2 maps", 5, 3, 4, [2, 2], [3, 3], [1, 1], [1, 1], 1, true),
  // 8 images per GEMM on 16x16 maps: batch 11 runs as 8 + 3; 24x24 as 4 + 1 (one alone).
  conv("batch 11 in two GEMMs", 11, 3, 4, [16, 16], [3, 3], [1, 1], [1, 1], 1, true),
  conv("batch 5 in two GEMMs, groups 2", 5, 4, 2, [24, 24], [3, 3], [1, 1], [1, 1], 2, false),
];

/** Uniform in [-1, 1), deterministic. */
function uniform(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

function expectClose(label: string, got: Float32Array, want: Float64Array, terms: number) {
  expect(got.length, label).toBe(want.length);
  const floor = Math.sqrt(terms);
  let worst = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const excess = Math.abs(got[i] - want[i]) / (1e-4 * (Math.abs(want[i]) + floor));
    if (!(excess <= worst)) [worst, at] = [excess, i];
  }
  if (!(worst <= 1)) {
    throw new Error(`${label}: element ${at} is ${got[at]}, expected ${want[at]} (1e-4 bound)`);
  }
}

const MODES: [string, boolean, boolean][] = [
  ["SIMD columns, unrolled per shape", true, true],
  ["SIMD columns, generic loops", true, false],
  ["TS columns", false, true],
];

for (const [mode, wasm, unroll] of MODES) {
  it(
    `small-map conv2d, input and weight gradients match a direct convolution (${mode})`,
    () => {
      useIm2colWasm(wasm, unroll);
      try {
        let seed = 1;
        for (const { label, args: a, bias } of CASES) {
          const Cg = a.inC / a.groups;
          const x = uniform(a.batch * a.inC * a.inH * a.inW, seed++);
          const w = uniform(a.outC * Cg * a.kH * a.kW, seed++);
          const b = bias ? uniform(a.outC, seed++) : null;
          const dy = uniform(a.batch * a.outC * a.outH * a.outW, seed++);
          const ref = refConv(x, w, b, dy, a);
          const kk = a.kH * a.kW, Og = a.outC / a.groups;
          expectClose(`${label}: y`, conv2d(x, w, b, a), ref.y, Cg * kk + 1);
          expectClose(`${label}: dx`, conv2dBackwardInput(dy, w, a), ref.dx, Og * kk);
          expectClose(
            `${label}: dw`,
            conv2dBackwardWeight(dy, x, a),
            ref.dw,
            a.batch * a.outH * a.outW,
          );
        }
      } finally {
        useIm2colWasm(true);
      }
    },
  );
}

it("small-map conv2d and its weight gradient are exactly the same with the SIMD columns on and off", () => {
  // Same column matrix, same GEMM: the two paths must agree bit for bit. (col2im sums the
  // taps in another order, so the input gradient is only held to the bound above.)
  const { args: a } = CASES[0];
  const x = uniform(a.batch * a.inC * a.inH * a.inW, 91);
  const w = uniform(a.outC * a.inC * 9, 92);
  const dy = uniform(a.batch * a.outC * a.outH * a.outW, 93);
  const run = () => [conv2d(x, w, null, a).slice(), conv2dBackwardWeight(dy, x, a).slice()];
  const on = run();
  useIm2colWasm(false);
  let off: Float32Array[];
  try {
    off = run();
  } finally {
    useIm2colWasm(true);
  }
  for (let k = 0; k < 2; k++) expect(Array.from(on[k])).toEqual(Array.from(off[k]));
});
