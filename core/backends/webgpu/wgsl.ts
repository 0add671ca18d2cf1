/**
 * WGSL snippets shared by several kernel families: index recovery for split grids,
 * workgroup reductions, and math functions whose built-in WGSL versions are either
 * missing (erf) or allowed to be inaccurate by the spec (log near 1, cos).
 */

import { type ParamField, ParamLayout } from "./kernel.ts";

export const layout = (...fields: ParamField[]) => new ParamLayout(fields);
export const u32 = (name: string): ParamField => ({ name, type: "u32" });
export const i32 = (name: string): ParamField => ({ name, type: "i32" });
export const f32 = (name: string): ParamField => ({ name, type: "f32" });
export const u32s = (name: string, len: number): ParamField => ({ name, type: "u32", len });

/** Linear index of this workgroup in a grid split over x and y (see GpuContext.grid). */
export const GROUP_INDEX = "(wid.y * nwg.x + wid.x)";

/** Linear index of this invocation for one-thread-per-element kernels of width `wg`. */
export function threadIndex(wg: number): string {
  return `(${GROUP_INDEX} * ${wg}u + lid.x)`;
}

/** Power-of-two workgroup for one-workgroup-per-row kernels: wide rows get 256 threads. */
export function rowWorkgroup(maxThreads: number, cols: number): number {
  const cap = 2 ** Math.floor(Math.log2(maxThreads));
  return Math.min(cap, cols >= 1024 ? 256 : 64);
}

/**
 * -inf, +inf and NaN as f32. WGSL has no literal for them, and a const-expression that
 * evaluates to one is a shader-creation error (WGSL spec, "Floating Point Evaluation"):
 * Chromium's Tint rejects `bitcast<f32>(0xff800000u)` ("value -inf cannot be represented
 * as 'f32'") where Deno's naga accepted it. These call functions that bitcast a local
 * `var`, a runtime value both compilers accept; assembleWgsl appends the functions a
 * kernel uses (SPECIAL_FLOAT_FNS in kernel.ts).
 */
export const NEG_INF = "digit_neg_inf()";
export const POS_INF = "digit_pos_inf()";
export const NAN = "digit_nan()";

/**
 * Workgroup tree reductions `wg_sum_<tag>(v)` / `wg_max_<tag>(v)` over a power-of-two
 * workgroup of size `wg`. They must be called from uniform control flow.
 */
export function workgroupReduce(wg: number, tag = "a"): string {
  if ((wg & (wg - 1)) !== 0) throw new Error(`workgroupReduce: size ${wg} is not a power of two`);
  return `
var<workgroup> red_${tag}: array<f32, ${wg}>;
fn wg_sum_${tag}(v: f32, l: u32) -> f32 {
  red_${tag}[l] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (l < s) { red_${tag}[l] = red_${tag}[l] + red_${tag}[l + s]; }
    workgroupBarrier();
  }
  let r = red_${tag}[0];
  workgroupBarrier();
  return r;
}
fn wg_max_${tag}(v: f32, l: u32) -> f32 {
  red_${tag}[l] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (l < s) { red_${tag}[l] = max(red_${tag}[l], red_${tag}[l + s]); }
    workgroupBarrier();
  }
  let r = red_${tag}[0];
  workgroupBarrier();
  return r;
}`;
}

/**
 * erfc with relative error below 1.2e-7 everywhere (Chebyshev fit from Numerical
 * Recipes, §6.2), and the exact-erf GELU and its derivative built on it. Writing GELU as
 * 0.5·x·erfc(-x/√2) keeps full relative accuracy in the negative tail.
 */
export const ERF_WGSL = `
fn erfc_f(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let p = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277))))))));
  let r = t * exp(p);
  return select(2.0 - r, r, x >= 0.0);
}
fn erf_f(x: f32) -> f32 { return 1.0 - erfc_f(x); }
fn gelu_f(x: f32) -> f32 { return 0.5 * x * erfc_f(-x * 0.70710678118654752); }
fn gelu_grad_f(x: f32) -> f32 {
  return 0.5 * erfc_f(-x * 0.70710678118654752) + x * exp(-0.5 * x * x) * 0.39894228040143268;
}`;

/**
 * log and cos accurate to a few ulp on any device: WGSL lets \`log\` have 2^-21 absolute
 * error near 1 and \`cos\` 2^-11, which would break Box-Muller agreement with the CPU.
 */
export const ACCURATE_MATH_WGSL = `
fn log_acc(x: f32) -> f32 {
  // x = m * 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s), s = (m-1)/(m+1).
  let fr = frexp(x);
  var m = fr.fract;
  var e = f32(fr.exp);
  if (m < 0.70710678) { m = m * 2.0; e = e - 1.0; }
  let s = (m - 1.0) / (m + 1.0);
  let s2 = s * s;
  let atanh_s = s * (1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 / 11.0)))));
  return e * 0.693147180559945 + 2.0 * atanh_s;
}
// cos(2*pi*t) for t in turns, by quadrant reduction and Taylor series on [-pi/4, pi/4].
fn cos_turns(t: f32) -> f32 {
  let q = round(4.0 * t);
  let a = 6.283185307179586 * (t - 0.25 * q);
  let a2 = a * a;
  let c = 1.0 - a2 * (0.5 - a2 * (1.0 / 24.0 - a2 * (1.0 / 720.0 - a2 * (1.0 / 40320.0 - a2 / 3628800.0))));
  let s = a * (1.0 - a2 * (1.0 / 6.0 - a2 * (1.0 / 120.0 - a2 * (1.0 / 5040.0 - a2 / 362880.0))));
  let k = i32(q) & 3;
  if (k == 0) { return c; }
  if (k == 1) { return -s; }
  if (k == 2) { return -c; }
  return s;
}`;

/** Twin of `core/random.ts`: PCG hash, uniform [0,1) with 24 bits, Box-Muller normal. */
export const RANDOM_WGSL = `
fn pcg_hash(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}
fn hash_bits(seed: u32, index: u32) -> u32 {
  return pcg_hash(pcg_hash(index) + seed * 0x9e3779b9u);
}
fn uniform_at(seed: u32, index: u32) -> f32 {
  return f32(hash_bits(seed, index) >> 8u) * (1.0 / 16777216.0);
}
fn normal_at(seed: u32, index: u32) -> f32 {
  let u1 = f32((hash_bits(seed, index) >> 8u) + 1u) * (1.0 / 16777216.0);
  let u2 = uniform_at(seed ^ 0x5bd1e995u, index);
  return sqrt(-2.0 * log_acc(u1)) * cos_turns(u2);
}`;
