/**
 * Shared helpers for the CPU kernel tests: a seeded input maker, tolerance checks with
 * readable failures, and float64 central differences.
 */

import { readFileSync } from "node:fs";
import { expect } from "./lib/test.ts";
import type { Conv2dArgs } from "../core/backend.ts";
import { Rng } from "../core/random.ts";

/** Seeded N(0, std) values, rounded to f32 so f32 kernels and f64 references see the same input. */
export function randn(n: number, seed: number, std = 1, mean = 0): Float32Array {
  return new Rng(seed).fillNormal(new Float32Array(n), mean, std);
}

/** Asserts |actual - expected| <= atol + rtol*|expected| elementwise, reporting the worst index. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol: number,
  label: string,
) {
  expect(actual.length, `${label}: length ${actual.length} vs ${expected.length}`).toBe(
    expected.length,
  );
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (a === e) continue;
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    expect.unreachable(
      `${label}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} ` +
        `(atol ${atol}, rtol ${rtol})`,
    );
  }
}

/** Central-difference gradient of a float64 scalar function, step h. */
export function numericGrad(
  f: (x: Float64Array) => number,
  x0: ArrayLike<number>,
  h = 1e-5,
): Float64Array {
  const x = Float64Array.from(x0);
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i];
    x[i] = keep + h;
    const up = f(x);
    x[i] = keep - h;
    const down = f(x);
    x[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

/** sum(a * b) in float64. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Reads a JSON fixture relative to tests/fixtures/. */
export function loadFixture<T>(name: string): T {
  const url = new URL(`./fixtures/${name}`, import.meta.url);
  return JSON.parse(readFileSync(url, "utf8")) as T;
}

// ---- convolution ---------------------------------------------------------------------

export function convArgs(
  batch: number,
  inC: number,
  inH: number,
  inW: number,
  outC: number,
  kH: number,
  kW: number,
  strideH: number,
  strideW: number,
  padH: number,
  padW: number,
  groups: number,
): Conv2dArgs {
  return {
    batch,
    inC,
    inH,
    inW,
    outC,
    kH,
    kW,
    strideH,
    strideW,
    padH,
    padW,
    groups,
    outH: Math.floor((inH + 2 * padH - kH) / strideH) + 1,
    outW: Math.floor((inW + 2 * padW - kW) / strideW) + 1,
  };
}

/**
 * Direct float64 convolution and its two adjoints, looping over every (output, tap)
 * pair: y[n,o,oh,ow] = b[o] + sum w[o,c,ki,kj] x[n, g*Cg+c, oh*s-p+ki, ow*s-p+kj].
 */
export function refConv(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | null,
  dy: Float32Array,
  a: Conv2dArgs,
) {
  const Cg = a.inC / a.groups, Og = a.outC / a.groups;
  const y = new Float64Array(a.batch * a.outC * a.outH * a.outW);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  for (let n = 0; n < a.batch; n++) {
    for (let o = 0; o < a.outC; o++) {
      const g = Math.floor(o / Og);
      for (let oh = 0; oh < a.outH; oh++) {
        for (let ow = 0; ow < a.outW; ow++) {
          const yi = ((n * a.outC + o) * a.outH + oh) * a.outW + ow;
          let s = bias ? bias[o] : 0;
          for (let c = 0; c < Cg; c++) {
            for (let ki = 0; ki < a.kH; ki++) {
              const ih = oh * a.strideH - a.padH + ki;
              if (ih < 0 || ih >= a.inH) continue;
              for (let kj = 0; kj < a.kW; kj++) {
                const iw = ow * a.strideW - a.padW + kj;
                if (iw < 0 || iw >= a.inW) continue;
                const xi = ((n * a.inC + g * Cg + c) * a.inH + ih) * a.inW + iw;
                const wi = ((o * Cg + c) * a.kH + ki) * a.kW + kj;
                s += w[wi] * x[xi];
                dx[xi] += w[wi] * dy[yi];
                dw[wi] += x[xi] * dy[yi];
              }
            }
          }
          y[yi] = s;
        }
      }
    }
  }
  return { y, dx, dw };
}
