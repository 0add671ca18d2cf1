/**
 * Fast exact (erf) GELU kernels over whole arrays: y = x Phi(x) and y = GELU'(x).
 *
 * Phi(x) and GELU'(x) = Phi(x) + x phi(x) are tabulated once, at load, as degree-6
 * polynomials on the 128 intervals of width 1/8 that tile [-8, 8), interpolated at
 * Chebyshev nodes from the double-precision erfc in erf.ts. Their worst relative error is
 * 2.9e-8 (at x near -8; under 1e-11 for x > -4), under half an f32 ulp, so the f32 results
 * are within one ulp of the exact values, the far negative tail included.
 *
 * The loop has no branch on the sign of x (a data-dependent branch cost more than all the
 * arithmetic), just an interval index and one Horner chain. For x >= 8, Phi(x) and GELU'(x)
 * round to 1 in f32; the rare x < -8 (and NaN) take the double-precision path.
 *
 * geluFastInto, for inference epilogues, reads a finer float32 table of cubics in float32
 * SIMD lanes instead: within 3e-7 relative (two to four ulp), at a little over half the cost.
 */

import type { HostArray } from "../../backend.ts";
import { erfc, gelu, geluGrad } from "./erf.ts";
import { FAST_COEFFS, FAST_INTERVALS, geluFastWasm, geluWasm } from "./vector_wasm.ts";

const INTERVALS_PER_UNIT = 8;
const RANGE = 8; // tables cover [-RANGE, RANGE)
const DEGREE = 6; // the Horner chains below are written out for this degree
const STRIDE = DEGREE + 1;

/** Monomial coefficients (in u) of the Chebyshev polynomials T_0..T_{n-1}. */
function chebyshevMonomials(n: number): number[][] {
  const rows = [[1], [0, 1]];
  for (let j = 2; j < n; j++) {
    const row = new Array(j + 1).fill(0);
    for (let k = 0; k < j; k++) row[k + 1] += 2 * rows[j - 1][k];
    for (let k = 0; k < j - 1; k++) row[k] -= rows[j - 2][k];
    rows.push(row);
  }
  return rows.slice(0, n);
}

/**
 * Per interval [a, a + h) (h = 1/perUnit, tiling [-RANGE, RANGE)), the degree + 1
 * monomial coefficients in u = (2x - 2a)/h - 1 in [-1, 1] of the polynomial interpolating
 * f at the degree + 1 Chebyshev nodes.
 */
function tabulate(
  f: (x: number) => number,
  perUnit = INTERVALS_PER_UNIT,
  degree = DEGREE,
): Float64Array {
  const n = degree + 1;
  const h = 1 / perUnit;
  const count = 2 * RANGE * perUnit;
  const monomials = chebyshevMonomials(n);
  const table = new Float64Array(count * n);
  const values = new Float64Array(n);
  for (let i = 0; i < count; i++) {
    const mid = -RANGE + (i + 0.5) * h;
    for (let k = 0; k < n; k++) values[k] = f(mid + 0.5 * h * Math.cos((Math.PI * (k + 0.5)) / n));
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += values[k] * Math.cos((Math.PI * j * (k + 0.5)) / n);
      const c = ((j === 0 ? 1 : 2) * s) / n;
      for (let k = 0; k <= j; k++) table[i * n + k] += c * monomials[j][k];
    }
  }
  return table;
}

const PHI = tabulate((x) => 0.5 * erfc(-x * Math.SQRT1_2));
const GELU_GRAD = tabulate(geluGrad);

/**
 * Phi for the float32 SIMD GELU (geluFastInto): a finer table of lower degree, evaluated
 * in float32 lanes: 1024 intervals of width 1/64, degree 3, four coefficients (one 16-byte
 * row) each. Interpolation error 8.1e-8 relative; with float32 coefficients and arithmetic
 * the GELU is within 2.3e-7 relative of the exact value (every float32 of [-8, -7.5),
 * where the tail makes it largest, checked in float64; about 2-4 ulp). Tests state 3e-7.
 */
const PHI_F32 = Float32Array.from(
  tabulate((x) => 0.5 * erfc(-x * Math.SQRT1_2), FAST_INTERVALS / (2 * RANGE), FAST_COEFFS - 1),
);

/** The tabulated polynomial at v, for -RANGE <= v < RANGE (small enough to be inlined). */
function evaluate(table: Float64Array, v: number): number {
  const s = (v + RANGE) * INTERVALS_PER_UNIT;
  const j = s | 0;
  const u = 2 * s - (2 * j + 1);
  const o = j * STRIDE;
  return (((((table[o + 6] * u + table[o + 5]) * u + table[o + 4]) * u + table[o + 3]) * u +
            table[o + 2]) * u + table[o + 1]) * u + table[o];
}

/**
 * y[i] = GELU(x[i]) = x Phi(x). For f32 arrays the same tables run in WASM SIMD float64
 * lanes (vector_wasm.ts) when available: the same float64 values up to evaluation order
 * (Estrin, fused multiply-adds), so the f32 results agree to an ulp (in practice, exactly).
 */
export function geluInto(x: HostArray, y: HostArray): void {
  if (x instanceof Float32Array && y instanceof Float32Array && geluWasm(x, y, PHI, false, gelu)) {
    return;
  }
  const table = PHI;
  const n = x.length;
  for (let i = 0; i < n; i++) {
    const v = x[i];
    if (v >= -RANGE && v < RANGE) y[i] = v * evaluate(table, v);
    else y[i] = v >= RANGE ? v : gelu(v);
  }
}

/**
 * y[i] = GELU(x[i]) through the float32 SIMD kernel of vector_wasm.ts and PHI_F32: within
 * 3e-7 relative of the exact value (geluInto: one ulp) at 1.6 instead of 2.9 ns per
 * element, measured. For inference epilogues (ops.fusedLinear); x and y may be the same
 * array. Without WASM SIMD: geluInto.
 */
export function geluFastInto(x: Float32Array, y: Float32Array): void {
  if (!geluFastWasm(x, y, PHI_F32, gelu)) geluInto(x, y);
}

/** y[i] = GELU'(x[i]) = Phi(x) + x phi(x). */
export function geluGradInto(x: HostArray, y: HostArray): void {
  if (
    x instanceof Float32Array && y instanceof Float32Array &&
    geluWasm(x, y, GELU_GRAD, true, geluGrad)
  ) return;
  const table = GELU_GRAD;
  const n = x.length;
  for (let i = 0; i < n; i++) {
    const v = x[i];
    if (v >= -RANGE && v < RANGE) y[i] = evaluate(table, v);
    else y[i] = v >= RANGE ? 1 : geluGrad(v);
  }
}
