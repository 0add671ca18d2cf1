/**
 * The WASM SIMD (f32x4) kernels of core/backends/cpu/vector_wasm.ts against float64
 * closed forms (Math.exp), and against the scalar TS kernels they stand beside (switched
 * with useVectorWasm). Bounds, for normal float32 results:
 *   exp(x <= 0):  <= 1 ulp from the correctly rounded value (stated bound: 2 ulp),
 *   sigmoid:      <= 2 ulp, relative error <= 2e-7,
 *   silu:         <= 3 ulp (relative error <= 2.5e-7) for x >= -87.3, where its sigmoid
 *                 factor is still normal; below, absolute error <= 1e-42,
 *   softmax rows: relative error <= 2e-7 (plus 1e-44 absolute for subnormal outputs),
 *   GELU, GELU': the TS kernel's tables in float64 lanes, so as there: relative error
 *                <= 3e-8 + 2^-24 (< 1 ulp) against the float64 erf (GELU' near its zero
 *                at -0.75: 1e-12 absolute), and equal to the TS path to 1 ulp,
 *   fast GELU:   (float32 table and arithmetic, for inference epilogues) relative error
 *                <= 3e-7 against the float64 erf (measured 2.3e-7).
 * Subnormal results are within 2 ulp (2^-148) absolutely.
 */

import { expect, it } from "./lib/test.ts";
import { attention } from "../core/backends/cpu/attention.ts";
import { gelu, geluGrad } from "../core/backends/cpu/erf.ts";
import { geluFastInto, geluGradInto, geluInto } from "../core/backends/cpu/gelu.ts";
import { unary } from "../core/backends/cpu/elementwise.ts";
import { softmax } from "../core/backends/cpu/softmax.ts";
import {
  mapWasm,
  softmaxWasm,
  useVectorWasm,
  vectorWasmActive,
  vectorWasmDescription,
} from "../core/backends/cpu/vector_wasm.ts";
import { randn } from "./cpu_kernels_util.ts";

const SUBNORMAL_MIN = 2 ** -149;

/** Runs a test with the relaxed-SIMD (fused multiply-add) module and with the plain one. */
function bothVariants(name: string, fn: () => void) {
  for (const variant of ["relaxed", "plain"] as const) {
    it(`${name} [${variant}]`, () => {
      useVectorWasm(true, variant);
      try {
        expect(vectorWasmActive()).toBeTruthy();
        if (variant === "plain") expect(vectorWasmDescription()).toBe("wasm-simd");
        fn();
      } finally {
        useVectorWasm(true, "relaxed");
      }
    });
  }
}

/**
 * The message of the first of n checks that fails, or null. One `expect` per element made the
 * 400,001-point sweeps take 17 s each under vitest, long enough to starve its worker's RPC.
 */
function firstFailure(n: number, check: (i: number) => string | null): string | null {
  for (let i = 0; i < n; i++) {
    const message = check(i);
    if (message !== null) return message;
  }
  return null;
}

/** The spacing of float32 values at |v| (2^-149 in the subnormal range). */
function ulpOf(v: number): number {
  const a = Math.abs(Math.fround(v));
  if (a < 2 ** -126) return SUBNORMAL_MIN;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  return 2 ** (e - 23);
}

/** Distance in ulps from the correctly rounded float32 value of `ref`. */
function ulps(y: number, ref: number): number {
  if (Number.isNaN(ref)) return Number.isNaN(y) ? 0 : Infinity;
  if (y === Math.fround(ref)) return 0;
  return Math.abs(y - Math.fround(ref)) / ulpOf(ref);
}

const sigmoidRef = (x: number) => x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
const siluRef = (x: number) => x * sigmoidRef(x);

const EDGES = [
  0,
  -0,
  1e-30,
  -1e-30,
  1e-45,
  -1e-45,
  -87.3,
  -87.5,
  -100,
  -103.9,
  -104.5,
  -200,
  -Infinity,
  NaN,
  1,
  -1,
  0.5,
  -0.5,
  20,
  -20,
  88,
  90,
  1e4,
  3e38,
  Infinity,
];

function grid(lo: number, hi: number, n: number): Float32Array {
  const out = Float32Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));
  return Float32Array.from([...out, ...EDGES]);
}

function run(kind: "sigmoid" | "silu" | "exp_nonpositive", x: Float32Array): Float32Array {
  const y = new Float32Array(x.length);
  expect(mapWasm(kind, x, y), "WASM SIMD unavailable").toBeTruthy();
  return y;
}

it("vector wasm: the SIMD kernels are available and switch off and on", () => {
  expect(vectorWasmActive()).toBeTruthy();
  useVectorWasm(false);
  try {
    expect(vectorWasmActive()).toBe(false);
    expect(mapWasm("silu", new Float32Array(4), new Float32Array(4))).toBe(false);
  } finally {
    useVectorWasm(true);
  }
});

bothVariants(
  "vector wasm: exp(x <= 0) within 2 ulp of Math.exp (1 ulp measured), edges exact",
  () => {
    const x = grid(-110, 0, 400_001).filter((v) => !(v > 0));
    const y = run("exp_nonpositive", x);
    let worst = 0;
    const failure = firstFailure(x.length, (i) => {
      const u = ulps(y[i], Math.exp(x[i]));
      worst = Math.max(worst, u);
      return u <= 2 ? null : `exp(${x[i]}) = ${y[i]}, expected ${Math.fround(Math.exp(x[i]))}`;
    });
    expect(failure).toBeNull();
    expect(worst, `worst ${worst} ulp`).toBeLessThanOrEqual(1);
    const edges = run("exp_nonpositive", Float32Array.of(0, -0, -Infinity, NaN, -104.5, -200));
    expect(Array.from(edges)).toEqual([1, 1, 0, 0, 0, 0].map((v, i) => (i === 3 ? NaN : v)));
  },
);

bothVariants(
  "vector wasm: sigmoid within 2 ulp and silu within 3 ulp of float64, edges included",
  () => {
    const x = grid(-120, 120, 400_001);
    const s = run("sigmoid", x);
    const y = run("silu", x);
    const failure = firstFailure(x.length, (i) => {
      const v = x[i];
      const sRef = sigmoidRef(v);
      if (!(ulps(s[i], sRef) <= 2)) return `sigmoid(${v}) = ${s[i]}, expected ${sRef}`;
      if (Number.isFinite(sRef) && sRef >= 2 ** -126 && !(Math.abs(s[i] - sRef) <= 2e-7 * sRef)) {
        return `sigmoid(${v}) = ${s[i]}: relative error above 2e-7 of ${sRef}`;
      }
      const yRef = siluRef(v);
      if (v >= -87.3 || !Number.isFinite(v)) {
        if (!(ulps(y[i], yRef) <= 3)) return `silu(${v}) = ${y[i]}, expected ${yRef}`;
        if (
          Number.isFinite(yRef) && Math.abs(yRef) >= 2 ** -126 &&
          !(Math.abs(y[i] - yRef) <= 2.5e-7 * Math.abs(yRef))
        ) return `silu(${v}) = ${y[i]}: relative error above 2.5e-7 of ${yRef}`;
      } else if (!(Math.abs(y[i] - yRef) <= 1e-42)) {
        return `silu(${v}) = ${y[i]}, expected ${yRef}`;
      }
      return null;
    });
    expect(failure).toBeNull();
    // Large and infinite arguments: sigmoid saturates, silu is the identity; NaN stays NaN.
    const big = Float32Array.of(40, 1e4, 3e38, Infinity, -Infinity, NaN);
    expect(Array.from(run("sigmoid", big))).toEqual([1, 1, 1, 1, 0, NaN]);
    expect(Array.from(run("silu", big)).slice(0, 4)).toEqual([
      40,
      1e4,
      Math.fround(3e38),
      Infinity,
    ]);
    expect(Number.isNaN(run("silu", big)[5])).toBeTruthy();
    // -0: sigmoid 0.5, silu -0 * 0.5 = -0.
    expect(Object.is(run("silu", Float32Array.of(-0))[0], -0)).toBeTruthy();
  },
);

it("vector wasm: unary sigmoid/silu agree with the TS path at every length 1..37", () => {
  for (let n = 1; n <= 37; n++) {
    const x = randn(n, 100 + n, 6);
    x[n - 1] = n % 2 ? -90 : 50; // the tail lane sees an edge value too
    for (const op of ["sigmoid", "silu"] as const) {
      const fast = unary(op, x) as Float32Array;
      useVectorWasm(false);
      const slow = unary(op, x) as Float32Array;
      useVectorWasm(true);
      for (let i = 0; i < n; i++) {
        const tol = x[i] < -87.3 ? 1e-42 : 3 * ulpOf(slow[i]);
        expect(Math.abs(fast[i] - slow[i]), `${op} n=${n} i=${i}: ${fast[i]} vs ${slow[i]}`)
          .toBeLessThanOrEqual(tol);
      }
    }
  }
});

function softmaxRef(x: ArrayLike<number>, off: number, n: number, log: boolean): number[] {
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, x[off + i]);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(x[off + i] - max);
  return Array.from(
    { length: n },
    (_, i) => log ? x[off + i] - max - Math.log(sum) : Math.exp(x[off + i] - max) / sum,
  );
}

bothVariants(
  "vector wasm: softmax and log-softmax rows (n = 1..37, 261) vs float64 (rtol 2e-7)",
  () => {
    for (const cols of [...Array.from({ length: 37 }, (_, i) => i + 1), 261]) {
      const rows = 5;
      const x = randn(rows * cols, cols, 8);
      if (cols > 2) {
        x[1] = -Infinity; // a masked entry in row 0
        x[cols + 2] = -1e30; // far below the max in row 1
        x[2 * cols] = 1e-45; // a subnormal input in row 2
      }
      for (const log of [false, true]) {
        const y = new Float32Array(rows * cols);
        expect(softmaxWasm(x, y, rows, cols, log)).toBeTruthy();
        for (let r = 0; r < rows; r++) {
          const ref = softmaxRef(x, r * cols, cols, log);
          for (let i = 0; i < cols; i++) {
            const got = y[r * cols + i];
            const tol = log ? 2e-7 * Math.abs(ref[i]) + 1e-6 : 2e-7 * Math.abs(ref[i]) + 1e-44;
            expect(
              got === ref[i] || Math.abs(got - ref[i]) <= tol,
              `softmax log=${log} cols=${cols} row ${r} col ${i}: ${got} vs ${ref[i]}`,
            ).toBeTruthy();
          }
        }
        const viaOp = softmax(x, rows, cols, log);
        useVectorWasm(false);
        const ts = softmax(x, rows, cols, log);
        useVectorWasm(true);
        for (let i = 0; i < ts.length; i++) {
          expect(
            viaOp[i] === ts[i] || Math.abs(viaOp[i] - ts[i]) <= 3e-7 * Math.abs(ts[i]) + 1e-44 +
                  (log ? 1e-6 : 0),
            `softmax op vs TS log=${log} cols=${cols} i=${i}: ${viaOp[i]} vs ${ts[i]}`,
          ).toBeTruthy();
        }
      }
    }
    // A row with NaN gives NaN everywhere, as the TS path does; an all -Infinity row too.
    const y = new Float32Array(8);
    softmaxWasm(
      Float32Array.of(1, NaN, 2, 3, -Infinity, -Infinity, -Infinity, -Infinity),
      y,
      2,
      4,
      false,
    );
    expect(y.every(Number.isNaN)).toBeTruthy();
  },
);

it("vector wasm: attention forward (causal and not, Tk = 1..37, 261) matches the TS path", () => {
  for (const Tk of [1, 2, 3, 5, 7, 13, 37, 261]) {
    for (const causal of [false, true]) {
      const args = {
        batch: 1,
        heads: 2,
        Tq: Math.min(Tk, 9),
        Tk,
        headDim: 8,
        scale: 0.35,
        causal,
        queryOffset: causal ? Tk - Math.min(Tk, 9) - 1 : 0,
      };
      const BH = 2;
      const q = randn(BH * args.Tq * 8, Tk, 2);
      const k = randn(BH * Tk * 8, Tk + 1, 2);
      const v = randn(BH * Tk * 8, Tk + 2);
      const fast = attention(q, k, v, args);
      useVectorWasm(false);
      const slow = attention(q, k, v, args);
      useVectorWasm(true);
      for (let i = 0; i < slow.lse.length; i++) {
        expect(
          fast.lse[i] === slow.lse[i] || Math.abs(fast.lse[i] - slow.lse[i]) <= 1e-6,
          `lse Tk=${Tk} causal=${causal} ${i}: ${fast.lse[i]} vs ${slow.lse[i]}`,
        ).toBeTruthy();
      }
      for (let i = 0; i < slow.out.length; i++) {
        expect(
          Math.abs(fast.out[i] - slow.out[i]),
          `out Tk=${Tk} causal=${causal} ${i}: ${fast.out[i]} vs ${slow.out[i]}`,
        ).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(slow.out[i])));
      }
    }
  }
});

bothVariants(
  "vector wasm: GELU and GELU' vs the float64 erf (rtol 9e-8) and vs the TS path",
  () => {
    const rtol = 3e-8 + 2 ** -24;
    const x = Float32Array.from([
      ...grid(-14, 40, 200_001),
      -8,
      -8.000001,
      -7.999999,
      7.999999,
      8,
      8.5,
      -9,
      -1e-40,
      1e-40,
    ]);
    const y = new Float32Array(x.length);
    const g = new Float32Array(x.length);
    expect(vectorWasmActive()).toBeTruthy();
    geluInto(x, y);
    geluGradInto(x, g);
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      const ref = gelu(v);
      const gref = geluGrad(v);
      if (!Number.isFinite(v)) continue; // checked against the TS kernel below
      expect(
        y[i] === ref || Math.abs(y[i] - ref) <= 1e-45 + rtol * Math.abs(ref),
        `gelu(${v}) = ${y[i]}, expected ${ref}`,
      ).toBeTruthy();
      expect(
        g[i] === gref || Math.abs(g[i] - gref) <= 1e-12 + rtol * Math.abs(gref),
        `gelu'(${v}) = ${g[i]}, expected ${gref}`,
      ).toBeTruthy();
    }
    const special = Float32Array.of(-0, Infinity, -Infinity, NaN, 3e38);
    const ys = new Float32Array(5);
    geluInto(special, ys);
    expect(Object.is(ys[0], -0)).toBeTruthy();
    expect(ys[1]).toBe(Infinity);
    expect(ys[4]).toBe(Math.fround(3e38));
    // The non-finite inputs give what the TS kernel gives (x >= 8: x and 1; -Inf, NaN: NaN).
    for (const f of [geluInto, geluGradInto]) {
      const fast = new Float32Array(5);
      const slow = new Float32Array(5);
      f(special, fast);
      useVectorWasm(false);
      f(special, slow);
      useVectorWasm(true);
      expect(Array.from(fast)).toEqual(Array.from(slow));
    }
    // Every length 1..37 (the f32x4 tail), with a slow-path value in some: equal to TS to 1 ulp.
    for (let n = 1; n <= 37; n++) {
      const xs = randn(n, 500 + n, 4);
      if (n % 3 === 0) xs[n - 1] = -9.5;
      for (const [f, name] of [[geluInto, "gelu"], [geluGradInto, "geluGrad"]] as const) {
        const fast = new Float32Array(n);
        const slow = new Float32Array(n);
        f(xs, fast);
        useVectorWasm(false);
        f(xs, slow);
        useVectorWasm(true);
        for (let i = 0; i < n; i++) {
          expect(Math.abs(fast[i] - slow[i]), `${name} n=${n} i=${i}: ${fast[i]} vs ${slow[i]}`)
            .toBeLessThanOrEqual(ulpOf(slow[i]));
        }
      }
    }
  },
);

/** Every float32 from lo up to hi (exclusive), for lo < hi <= 0. */
function everyNegativeFloat(lo: number, hi: number): Float32Array {
  const out: number[] = [];
  const f = new Float32Array(1), bits = new Int32Array(f.buffer);
  for (f[0] = lo; f[0] < hi; bits[0]--) out.push(f[0]); // down in magnitude
  return Float32Array.from(out);
}

bothVariants(
  "vector wasm: fast GELU vs the float64 erf (rtol 3e-7), in place, tails, specials",
  () => {
    const rtol = 3e-7;
    const check = (x: Float32Array, y: Float32Array, label: string) => {
      for (let i = 0; i < x.length; i++) {
        const ref = gelu(x[i]);
        if (!Number.isFinite(x[i])) continue; // below
        expect(
          y[i] === ref || Math.abs(y[i] - ref) <= 1e-45 + rtol * Math.abs(ref),
          `${label}: geluFast(${x[i]}) = ${y[i]}, expected ${ref}`,
        ).toBeTruthy();
      }
    };
    // A grid over the table, the slow tail below -8 and the x >= 8 shortcut, and every
    // float32 where the table's error peaks (its far negative end).
    const x = Float32Array.from([
      ...grid(-14, 40, 200_001),
      ...everyNegativeFloat(-8, -7.97),
      -8,
      -8.000001,
      -7.999999,
      7.99,
      7.999999,
      8,
      -9,
      -1e-40,
      1e-40,
    ]);
    expect(vectorWasmActive()).toBeTruthy();
    const y = new Float32Array(x.length);
    geluFastInto(x, y);
    check(x, y, "grid");
    // In place (the epilogue's use), slow-path lanes included: the same values.
    const inPlace = x.slice();
    geluFastInto(inPlace, inPlace);
    for (let i = 0; i < x.length; i++) {
      expect(Object.is(inPlace[i], y[i]), `in place at ${x[i]}: ${inPlace[i]} vs ${y[i]}`)
        .toBeTruthy();
    }
    // Non-finite and signed zero: as the exact kernel (x >= 8: x; -Inf, NaN: NaN).
    const special = Float32Array.of(-0, Infinity, -Infinity, NaN, 3e38, -3e38);
    const [fast, exact] = [new Float32Array(6), new Float32Array(6)];
    geluFastInto(special, fast);
    geluInto(special, exact);
    expect(Object.is(fast[0], -0)).toBeTruthy();
    expect(Array.from(fast)).toEqual(Array.from(exact));
    // Every length 1..37 (the f32x4 tail), with a slow-path value in some.
    for (let n = 1; n <= 37; n++) {
      const xs = randn(n, 600 + n, 4);
      if (n % 3 === 0) xs[n - 1] = -9.5;
      const ys = new Float32Array(n);
      geluFastInto(xs, ys);
      check(xs, ys, `n=${n}`);
    }
    // Without SIMD it is the exact kernel.
    useVectorWasm(false);
    try {
      const [off, ref] = [new Float32Array(x.length), new Float32Array(x.length)];
      geluFastInto(x, off);
      geluInto(x, ref);
      expect(Array.from(off)).toEqual(Array.from(ref)); // as numbers: NaN's sign bit may differ
    } finally {
      useVectorWasm(true);
    }
  },
);

bothVariants("vector wasm: GELU and GELU' in place redo the slow lanes from the input", () => {
  const x = randn(100, 7, 6);
  x[3] = -9.5;
  x[50] = NaN;
  x[99] = -30;
  for (const f of [geluInto, geluGradInto]) {
    const y = new Float32Array(100);
    f(x, y);
    const a = x.slice();
    f(a, a);
    expect(Array.from(a)).toEqual(Array.from(y));
  }
});
