/**
 * Shared helpers for the CPU kernel tests: a seeded input maker, tolerance checks with
 * readable failures, and float64 central differences.
 */

import assert from "node:assert/strict";
import { Generator } from "../core/random.ts";

/** Seeded N(0, std) values, rounded to f32 so f32 kernels and f64 references see the same input. */
export function randn(n: number, seed: number, std = 1, mean = 0): Float32Array {
  return new Generator(seed).fillNormal(new Float32Array(n), mean, std);
}

/** Asserts |actual - expected| <= atol + rtol*|expected| elementwise, reporting the worst index. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol: number,
  label: string,
) {
  assert.equal(
    actual.length,
    expected.length,
    `${label}: length ${actual.length} vs ${expected.length}`,
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
    assert.fail(
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
  return JSON.parse(Deno.readTextFileSync(url)) as T;
}
