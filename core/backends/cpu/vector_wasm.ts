/**
 * WebAssembly SIMD kernels for the CPU backend's transcendental elementwise work: f32x4
 * sigmoid and SiLU, softmax rows (max, exp(x - max), float64 sum, scale), GELU and its
 * derivative in float64x2 lanes from gelu.ts's tables (SiLU's gradient stays in TS: near its
 * zero at x = -1.28 it cancels, and f32 exp cannot keep the 3e-7 relative error there),
 * and a float32 GELU from a finer table (3e-7 relative, for inference epilogues).
 * The scalar TS kernels stay the reference and the fallback: every entry point here
 * returns false (and touches nothing) where WASM SIMD is missing or `useVectorWasm(false)`
 * switched it off, and the caller then runs its TS loop.
 *
 * Data lives in JS Float32Arrays, so the helpers copy blocks into the module's memory
 * (grown on demand), run in place, and copy back: about 0.3 ns/element in all, measured.
 * Attention's scores skip the copies: its GEMM writes them there (wasmScratch).
 *
 * exp(x) for x <= 0 (NaN stays NaN, -Infinity and x < -103.97 give 0), as in Cephes expf:
 *   n = round(x log2 e),  r = x - n C1 - n C2   (C1 + C2 = ln 2; n C1 is exact),
 *   e^r = 1 + r + r^2 P(r)                       (P of degree 5, |r| <= ln2 / 2),
 *   2^n = 2^(n >> 1) 2^(n - (n >> 1))            (two normal scale factors, so results in
 *                                                 the subnormal range round gradually).
 * Measured against float64 Math.exp: <= 1 f32 ulp for normal results (tests state 2).
 */

import {
  codeBuilder,
  EMPTY,
  F64,
  HEADER,
  I32,
  memarg,
  op,
  section,
  simd,
  str,
  uleb,
  V128,
  vec,
} from "../../wasm/assembler.ts";
import { growTo, instantiateFirst } from "../../wasm/instance.ts";

let enabled = true;
let variants = [true, false];

/**
 * Switches the SIMD kernels on or off (off: every caller takes its TS path). `variant`
 * (for tests) rebuilds the module: "relaxed" (relaxed-SIMD multiply-adds, the default
 * where available, with "plain" as fallback) or "plain" only.
 */
export function useVectorWasm(on: boolean, variant?: "relaxed" | "plain"): void {
  enabled = on;
  if (variant) {
    variants = variant === "relaxed" ? [true, false] : [false];
    cached = undefined;
  }
}

/** Whether callers will get the SIMD kernels (switched on and available). */
export function vectorWasmActive(): boolean {
  return enabled && kernels() !== null;
}

/** "wasm-simd", "wasm-simd relaxed-fma", or null when the TS kernels run. */
export function vectorWasmDescription(): string | null {
  const k = enabled ? kernels() : null;
  return k ? `wasm-simd${k.relaxed ? " relaxed-fma" : ""}` : null;
}

/** Kinds of the in-place elementwise maps, in the module's function order. */
const MAPS = ["sigmoid", "silu", "exp_nonpositive"] as const;
export type WasmMap = typeof MAPS[number];

/** The GELU coefficient tables: 2 x 128 intervals x 8 float64, from this byte address. */
const TABLE_BYTES = 64;
const TABLE_SIZE = 128 * 8 * 8;
/** geluFast's float32 table (gelu.ts fills it): intervals over [-8, 8), coefficients each. */
export const FAST_INTERVALS = 1024, FAST_COEFFS = 4; // the kernel is written for 4
const FAST_BYTES = TABLE_BYTES + 2 * TABLE_SIZE;
/** One row of FAST_COEFFS = 4 floats per interval: a lane's row is at table + (j << 4). */
const FAST_SIZE = 16 * FAST_INTERVALS;
/**
 * Byte address where data starts; below it the softmax row max (f32 at 0), the GELU
 * tables and geluFast's table.
 */
const BASE_BYTES = FAST_BYTES + FAST_SIZE;
const BASE = BASE_BYTES / 4;
/** Floats per block of elementwise work. */
const CHUNK = 16384;

/** 1.5 * 2^23 and its bits: (v + MAGIC) - MAGIC rounds v to an integer, |v| < 2^22. */
const MAGIC = 12582912, MAGIC_BITS = 0x4b400000;

const f32x4 = (v: number) => [...new Uint8Array(new Float32Array([v, v, v, v]).buffer)];
const i32x4 = (a: number, b = a, c = a, d = a) => [
  ...new Uint8Array(new Int32Array([a, b, c, d]).buffer),
];

/**
 * v128 constants held in locals: V8 materialises each v128.const with several
 * instructions, so a body reads them from locals set once in a prologue (prepended when
 * the body is done, as the pool only then knows what it holds).
 */
function constPool(code: ReturnType<typeof codeBuilder>, firstLocal: number) {
  const slots = new Map<string, number>();
  const bytesOf = new Map<string, number[]>();
  const use = (bytes: number[]) => {
    const key = bytes.join(",");
    let slot = slots.get(key);
    if (slot === undefined) {
      slot = firstLocal + slots.size;
      slots.set(key, slot);
      bytesOf.set(key, bytes);
    }
    code.get(slot);
  };
  return {
    f: (v: number) => use(f32x4(v)),
    raw: (bytes: number[]) => use(bytes),
    i: (a: number, b = a, c = a, d = a) => use(i32x4(a, b, c, d)),
    get count() {
      return slots.size;
    },
    prologue(): number[] {
      const out = codeBuilder();
      for (const [key, slot] of slots) out.simdOp(simd.const, ...bytesOf.get(key)!), out.set(slot);
      return out.bytes;
    },
  };
}

function assemble(relaxed: boolean): Uint8Array<ArrayBuffer> {
  // Each body gets a fresh builder; v128 scratch locals for exp come after the params.
  function expBody(
    code: ReturnType<typeof codeBuilder>,
    P: ReturnType<typeof constPool>,
    t: number,
    fn: number,
    r: number,
    ni: number,
    err = -1,
  ) {
    // Input v128 on the stack; exp of it (times e^err, err a tiny correction) on the stack.
    const { get, set, tee, i32, simdOp } = code;
    const c = P.f;
    // pmax(x, -104) = x < -104 ? -104 : x keeps NaN (one maxps; f32x4.max is a sequence).
    c(-104), simdOp(simd.f32x4Pmax), tee(t);
    // Round to nearest by adding 1.5 * 2^23; the sum's low mantissa bits hold n.
    c(Math.LOG2E), simdOp(simd.f32x4Mul), c(MAGIC), simdOp(simd.f32x4Add), tee(fn);
    P.i(MAGIC_BITS), simdOp(simd.i32x4Sub), set(ni);
    get(fn), c(MAGIC), simdOp(simd.f32x4Sub), set(fn);
    // a b -> a * b + (what push leaves): one fused (or not) relaxed madd, or mul then add.
    const mulAdd = (push: () => void) => {
      if (relaxed) push(), simdOp(simd.relaxedMadd);
      else simdOp(simd.f32x4Mul), push(), simdOp(simd.f32x4Add);
    };
    get(fn), c(-0.693359375), mulAdd(() => get(t)), set(r);
    get(fn), c(2.12194440e-4), mulAdd(() => get(r));
    if (err >= 0) get(err), simdOp(simd.f32x4Add);
    set(r);
    c(1.9875691500e-4);
    for (
      const p of [
        1.3981999507e-3,
        8.3334519073e-3,
        4.1665795894e-2,
        1.6666665459e-1,
        5.0000001201e-1,
      ]
    ) {
      get(r), mulAdd(() => c(p));
    }
    get(r), get(r), simdOp(simd.f32x4Mul), mulAdd(() => get(r));
    c(1), simdOp(simd.f32x4Add);
    // * 2^(n >> 1) * 2^(n - (n >> 1)), each built in the exponent bits.
    get(ni), i32(1), simdOp(simd.i32x4ShrS), tee(t);
    P.i(127), simdOp(simd.i32x4Add), i32(23), simdOp(simd.i32x4Shl);
    simdOp(simd.f32x4Mul);
    get(ni), get(t), simdOp(simd.i32x4Sub);
    P.i(127), simdOp(simd.i32x4Add), i32(23), simdOp(simd.i32x4Shl);
    simdOp(simd.f32x4Mul);
  }

  /** map(ptr, n): in place over ceil(n/4) vectors. */
  function mapBody(kind: WasmMap): number[] {
    const code = codeBuilder();
    const { emit, get, set, tee, i32, simdOp } = code;
    const [ptr, n, end] = [0, 1, 2];
    const [x, e, t, fn, r, ni] = [3, 4, 5, 6, 7, 8];
    const P = constPool(code, 9);
    const c = P.f;
    const finish = () => [
      ...vec([[...uleb(1), I32], [...uleb(6 + P.count), V128]]),
      ...P.prologue(),
      ...code.bytes,
    ];
    get(ptr),
      get(n),
      i32(2),
      emit(op.i32Shl),
      i32(15),
      emit(op.i32Add),
      i32(-16),
      emit(op.i32And),
      emit(op.i32Add),
      set(end);
    emit(op.loop, EMPTY);
    get(ptr), simdOp(simd.load, ...memarg(4, 0)), tee(x);
    if (kind === "exp_nonpositive") {
      // exp(x) itself (x <= 0 or NaN; for tests and callers with such arguments).
      set(t), get(ptr), get(x);
      expBody(code, P, t, fn, r, ni);
      simdOp(simd.store, ...memarg(4, 0));
      get(ptr), i32(16), emit(op.i32Add), tee(ptr), get(end), emit(op.i32LtU), emit(op.brIf, 0);
      emit(op.end);
      emit(op.end);
      return finish();
    }
    simdOp(simd.f32x4Abs), simdOp(simd.f32x4Neg);
    expBody(code, P, t, fn, r, ni);
    set(e);
    // sigmoid = (x >= 0 ? 1 : e) / (1 + e),  silu = (x >= 0 ? x : x e) / (1 + e):
    // one division, no cancellation, no branch.
    get(ptr);
    if (kind === "sigmoid") c(1), get(e);
    else get(x), get(x), get(e), simdOp(simd.f32x4Mul);
    get(x), c(0), simdOp(simd.f32x4Ge), simdOp(simd.v128Bitselect);
    get(e), c(1), simdOp(simd.f32x4Add), simdOp(simd.f32x4Div);
    simdOp(simd.store, ...memarg(4, 0));
    get(ptr), i32(16), emit(op.i32Add), tee(ptr), get(end), emit(op.i32LtU), emit(op.brIf, 0);
    emit(op.end);
    emit(op.end);
    return finish();
  }

  /**
   * softmaxRow(ptr, n) -> sum: the max of the n floats at ptr is stored (f32) at address 0,
   * the sum of exp(x - max) is accumulated in float64 and returned, and (write) the row
   * becomes exp(x - max) * f32(1 / sum). rowExpSum (no write) only gives max and sum.
   * Whole vectors run unmasked; the last n % 4 lanes run masked (lanes past n are neither
   * counted nor changed, so rows may sit back to back).
   */
  function softmaxBody(write: boolean): number[] {
    const code = codeBuilder();
    const { emit, get, set, tee, i32, simdOp } = code;
    const [ptr, n] = [0, 1];
    const [q, fullEnd] = [2, 3];
    const [m, v, vmax, acc0, acc1, e, t, fn, r, ni, d, err, inv] = [
      4,
      5,
      6,
      7,
      8,
      9,
      10,
      11,
      12,
      13,
      14,
      15,
      16,
    ];
    const V128_LOCALS = 13;
    const P = constPool(code, 17);
    const c = P.f;
    /** Runs body(false) over the whole vectors, then body(true) once for a partial one. */
    const rowLoop = (body: (masked: boolean) => void) => {
      get(ptr), set(q);
      get(q), get(fullEnd), emit(op.i32LtU), emit(op.if, EMPTY);
      emit(op.loop, EMPTY);
      body(false);
      get(q), i32(16), emit(op.i32Add), tee(q), get(fullEnd), emit(op.i32LtU), emit(op.brIf, 0);
      emit(op.end);
      emit(op.end);
      get(n), i32(3), emit(op.i32And), emit(op.if, EMPTY);
      body(true);
      emit(op.end);
    };
    const load = () => (get(q), simdOp(simd.load, ...memarg(4, 0)));
    get(ptr), get(n), i32(2), emit(op.i32Shl), i32(-16), emit(op.i32And), emit(op.i32Add);
    set(fullEnd);
    P.i(0, 1, 2, 3), get(n), i32(3), emit(op.i32And), simdOp(simd.i32x4Splat);
    simdOp(simd.i32x4LtS), set(m);
    // Pass 1: max (pmax(vmax, x) = vmax < x ? x : vmax skips NaN, as `x > max` does).
    c(-Infinity), set(vmax);
    rowLoop((masked) => {
      get(vmax), load();
      if (masked) c(-Infinity), get(m), simdOp(simd.v128Bitselect);
      simdOp(simd.f32x4Pmax), set(vmax);
    });
    i32(0);
    get(vmax), simdOp(simd.f32x4ExtractLane, 0), get(vmax), simdOp(simd.f32x4ExtractLane, 1);
    emit(op.f32Max);
    get(vmax), simdOp(simd.f32x4ExtractLane, 2), get(vmax), simdOp(simd.f32x4ExtractLane, 3);
    emit(op.f32Max), emit(op.f32Max);
    simdOp(simd.f32x4Splat), tee(vmax), simdOp(simd.f32x4ExtractLane, 0);
    emit(op.f32Store, ...memarg(2, 0));
    // Pass 2: e = exp(x - max), summed in two f64x2 accumulators.
    P.i(0), tee(acc0), set(acc1);
    rowLoop((masked) => {
      // d + err = x - max exactly (TwoSum with b = -max); err clamped for the far tail, and
      // pmax/pmin (operands in this order) turn a NaN err (d infinite) into -1e-3.
      load(), tee(v), get(vmax), simdOp(simd.f32x4Sub), tee(d);
      get(v), simdOp(simd.f32x4Sub), set(t); // bb = d - x
      c(1e-3), c(-1e-3);
      get(v), get(d), get(t), simdOp(simd.f32x4Sub), simdOp(simd.f32x4Sub); // x - (d - bb)
      get(vmax), simdOp(simd.f32x4Neg), get(t), simdOp(simd.f32x4Sub), simdOp(simd.f32x4Add);
      simdOp(simd.f32x4Pmax), simdOp(simd.f32x4Pmin), set(err);
      get(d);
      expBody(code, P, t, fn, r, ni, err);
      if (masked) get(m), simdOp(simd.v128And);
      tee(e);
      simdOp(simd.f64x2PromoteLowF32x4), get(acc0), simdOp(simd.f64x2Add), set(acc0);
      get(e),
        get(e),
        simdOp(simd.i8x16Shuffle, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
      simdOp(simd.f64x2PromoteLowF32x4), get(acc1), simdOp(simd.f64x2Add), set(acc1);
      if (write) {
        get(q), get(e);
        if (masked) get(v), get(m), simdOp(simd.v128Bitselect);
        simdOp(simd.store, ...memarg(4, 0));
      }
    });
    get(acc0), get(acc1), simdOp(simd.f64x2Add), set(acc0);
    if (write) {
      // Pass 3: scale by f32(1 / sum).
      emit(0x44, ...new Uint8Array(new Float64Array([1]).buffer)); // f64.const 1
      get(acc0), simdOp(simd.f64x2ExtractLane, 0), get(acc0), simdOp(simd.f64x2ExtractLane, 1);
      emit(op.f64Add), emit(op.f64Div), emit(op.f32DemoteF64), simdOp(simd.f32x4Splat), set(inv);
      rowLoop((masked) => {
        get(q), load();
        if (masked) tee(v);
        get(inv), simdOp(simd.f32x4Mul);
        if (masked) get(v), get(m), simdOp(simd.v128Bitselect);
        simdOp(simd.store, ...memarg(4, 0));
      });
    }
    get(acc0), simdOp(simd.f64x2ExtractLane, 0), get(acc0), simdOp(simd.f64x2ExtractLane, 1);
    emit(op.f64Add);
    emit(op.end);
    return [
      ...vec([[...uleb(2), I32], [...uleb(V128_LOCALS + P.count), V128]]),
      ...P.prologue(),
      ...code.bytes,
    ];
  }

  /**
   * gelu(ptr, n, table) / geluGrad(...) -> any: in place over ceil(n/8) pairs of vectors, in f64
   * lanes, the tabulated polynomials of gelu.ts (128 intervals of width 1/8 over [-8, 8),
   * 8 float64 coefficients each at `table`): y = x p(u) (gelu) or p(u) (grad), rounded to
   * f32 once, as the TS kernel does. x >= 8 gives x (gelu) or 1 (grad); the return value is
   * nonzero when some x < -8 or NaN was seen, which the caller redoes in TS.
   */
  function geluBody(grad: boolean): number[] {
    const code = codeBuilder();
    const { emit, get, set, tee, i32, simdOp } = code;
    const [ptr, n, table] = [0, 1, 2];
    const [end, a0, a1] = [3, 4, 5];
    const [xv, xd, s, u, p, bad, half0, va, vb, u2] = [6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    const ce = 16, co = 20; // even and odd coefficients, by lane
    const V128_LOCALS = 17;
    const P = constPool(code, 6 + V128_LOCALS);
    const d = (val: number) => {
      const key = [...new Uint8Array(new Float64Array([val, val]).buffer)];
      P.raw(key);
    };
    get(ptr),
      get(n),
      i32(2),
      emit(op.i32Shl),
      i32(31),
      emit(op.i32Add),
      i32(-32),
      emit(op.i32And),
      emit(op.i32Add),
      set(end);
    P.i(0), set(bad);
    emit(op.loop, EMPTY);
    for (const w of [0, 1]) { // two vectors per iteration, for more independent work
      get(ptr), simdOp(simd.load, ...memarg(4, 16 * w)), tee(xv);
      // Lanes below -8 or NaN: flagged for the TS path.
      P.f(-8), simdOp(simd.f32x4Ge), simdOp(simd.v128Not), get(bad), simdOp(simd.v128Or);
      set(bad);
      for (const h of [0, 1]) {
        get(xv);
        if (h) {
          get(xv),
            simdOp(simd.i8x16Shuffle, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
        }
        simdOp(simd.f64x2PromoteLowF32x4), tee(xd);
        // s = (clamp(x, -8, 8 - 2^-40) + 8) * 8 in [0, 128), j = floor(s) (NaN: 0),
        // u = 2 (s - j) - 1. At x >= 8 the last interval's value at its end, Phi(8) or
        // GELU'(8), rounds x Phi and GELU' to x and 1 in f32, so no select is needed.
        d(-8), simdOp(simd.f64x2Pmax), d(8 - 2 ** -40), simdOp(simd.f64x2Pmin);
        d(8), simdOp(simd.f64x2Add), d(8), simdOp(simd.f64x2Mul), tee(s);
        simdOp(simd.f64x2Floor), tee(p);
        // j's bits: the low word of j + 2^52; byte offset j * 64 into the table.
        d(2 ** 52), simdOp(simd.f64x2Add), i32(6), simdOp(simd.i32x4Shl), get(table);
        simdOp(simd.i32x4Splat), simdOp(simd.i32x4Add);
        tee(u), simdOp(simd.i32x4ExtractLane, 0), set(a0);
        get(u), simdOp(simd.i32x4ExtractLane, 2), set(a1);
        get(s), get(p), simdOp(simd.f64x2Sub), tee(u), get(u), simdOp(simd.f64x2Add);
        d(1), simdOp(simd.f64x2Sub), set(u);
        // Coefficient pairs (c2g, c2g+1) of both lanes' intervals, regrouped by lane; then
        // Estrin: p = (c0 + c1 u) + u^2 ((c2 + c3 u) + u^2 ((c4 + c5 u) + u^2 c6)).
        for (let g = 0; g < 4; g++) {
          get(a0), simdOp(simd.load, ...memarg(3, 16 * g)), set(va);
          get(a1), simdOp(simd.load, ...memarg(3, 16 * g)), set(vb);
          get(va),
            get(vb),
            simdOp(simd.i8x16Shuffle, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
            set(ce + g);
          if (g < 3) {
            get(va),
              get(vb),
              simdOp(
                simd.i8x16Shuffle,
                8,
                9,
                10,
                11,
                12,
                13,
                14,
                15,
                24,
                25,
                26,
                27,
                28,
                29,
                30,
                31,
              ),
              set(co + g);
          }
        }
        const fma = (a: () => void, b: () => void, c: () => void) => {
          if (relaxed) a(), b(), c(), simdOp(simd.relaxedMaddF64x2);
          else a(), b(), simdOp(simd.f64x2Mul), c(), simdOp(simd.f64x2Add);
        };
        get(u), get(u), simdOp(simd.f64x2Mul), set(u2);
        fma(
          () => get(u2),
          () => get(ce + 3),
          () => fma(() => get(co + 2), () => get(u), () => get(ce + 2)),
        );
        set(p);
        fma(
          () => get(u2),
          () => get(p),
          () => fma(() => get(co + 1), () => get(u), () => get(ce + 1)),
        );
        set(p);
        fma(() => get(u2), () => get(p), () => fma(() => get(co), () => get(u), () => get(ce)));
        if (!grad) get(xd), simdOp(simd.f64x2Mul);
        simdOp(simd.f32x4DemoteF64x2Zero);
        if (!h) set(half0);
      }
      // Stack: high half's two floats in lanes 0, 1; join with the low half's.
      set(p);
      get(ptr),
        get(half0),
        get(p),
        simdOp(simd.i8x16Shuffle, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
      simdOp(simd.store, ...memarg(4, 16 * w));
    }
    get(ptr), i32(32), emit(op.i32Add), tee(ptr), get(end), emit(op.i32LtU), emit(op.brIf, 0);
    emit(op.end);
    get(bad), simdOp(simd.v128AnyTrue);
    emit(op.end);
    return [
      ...vec([[...uleb(3), I32], [...uleb(V128_LOCALS + P.count), V128]]),
      ...P.prologue(),
      ...code.bytes,
    ];
  }

  /**
   * geluFast(ptr, n, table) -> any: in place over ceil(n/4) vectors, float32 GELU
   * y = x p(u) from gelu.ts's float32 table (FAST_INTERVALS intervals tiling [-8, 8), each
   * a row of FAST_COEFFS = 4 coefficients of a cubic in u in [-1, 1] approximating Phi),
   * in float32 lanes: each lane loads its interval's row, and a 4x4 transpose turns the
   * rows into one vector per coefficient. x >= 8 gives x (Phi rounds to 1 there); the
   * return value is nonzero when some x < -8 or NaN was seen, which the caller redoes in TS.
   */
  function geluFastBody(): number[] {
    const code = codeBuilder();
    const { emit, get, set, tee, i32, simdOp } = code;
    const [ptr, n, table] = [0, 1, 2];
    const end = 3;
    const [x, xc, jv, u, p, g, r0] = [4, 5, 6, 7, 8, 9, 10]; // r0..r3: rows; then c0..c3
    const cs = r0 + 4;
    const bad = cs + 4;
    const V128_LOCALS = 15;
    const P = constPool(code, 4 + V128_LOCALS);
    const c = P.f;
    const F32X4_CONVERT_I32X4_S = 250;
    const perUnit = FAST_INTERVALS / 16;
    /** Shuffle of two vectors by 32-bit lane indices (0-3 first, 4-7 second). */
    const lanes = (...l: number[]) =>
      simdOp(simd.i8x16Shuffle, ...l.flatMap((i) => [4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3]));
    get(ptr),
      get(n),
      i32(2),
      emit(op.i32Shl),
      i32(15),
      emit(op.i32Add),
      i32(-16),
      emit(op.i32And),
      emit(op.i32Add),
      set(end);
    P.i(0), set(bad);
    emit(op.loop, EMPTY);
    get(ptr), simdOp(simd.load, ...memarg(4, 0)), tee(x);
    c(-8), simdOp(simd.f32x4Ge), simdOp(simd.v128Not), get(bad), simdOp(simd.v128Or), set(bad);
    // xc = clamp(x, -8, 7.99) (NaN: -8) keeps the interval index inside the table; past
    // 7.99 Phi rounds to 1 all the same.
    c(7.99), c(-8), get(x), simdOp(simd.f32x4Pmax), simdOp(simd.f32x4Pmin), tee(xc);
    // j = floor((xc + 8) perUnit) (truncation: the argument is >= 0), its row at
    // table + 16 j; u = 2 perUnit xc + (16 perUnit - 1 - 2 j), one rounding.
    c(8), simdOp(simd.f32x4Add), c(perUnit), simdOp(simd.f32x4Mul);
    simdOp(simd.i32x4TruncSatF32x4S), tee(jv);
    i32(4), simdOp(simd.i32x4Shl), get(table), simdOp(simd.i32x4Splat), simdOp(simd.i32x4Add);
    set(g);
    for (let l = 0; l < 4; l++) {
      get(g), simdOp(simd.i32x4ExtractLane, l), simdOp(simd.load, ...memarg(4, 0)), set(r0 + l);
    }
    get(xc), c(2 * perUnit), simdOp(simd.f32x4Mul);
    get(jv), simdOp(F32X4_CONVERT_I32X4_S), c(-2), simdOp(simd.f32x4Mul), c(16 * perUnit - 1);
    simdOp(simd.f32x4Add), simdOp(simd.f32x4Add), set(u);
    // Rows (c0..c3 of lane l) transposed to c0..c3 across the lanes.
    get(r0), get(r0 + 1), lanes(0, 4, 1, 5), set(g);
    get(r0 + 2), get(r0 + 3), lanes(0, 4, 1, 5), set(p);
    get(g), get(p), lanes(0, 1, 4, 5), set(cs);
    get(g), get(p), lanes(2, 3, 6, 7), set(cs + 1);
    get(r0), get(r0 + 1), lanes(2, 6, 3, 7), set(g);
    get(r0 + 2), get(r0 + 3), lanes(2, 6, 3, 7), set(p);
    get(g), get(p), lanes(0, 1, 4, 5), set(cs + 2);
    get(g), get(p), lanes(2, 3, 6, 7), set(cs + 3);
    get(cs + 3), set(p); // Horner from the cubic's top coefficient
    for (let k = FAST_COEFFS - 2; k >= 0; k--) {
      get(p), get(u);
      if (relaxed) get(cs + k), simdOp(simd.relaxedMadd);
      else simdOp(simd.f32x4Mul), get(cs + k), simdOp(simd.f32x4Add);
      set(p);
    }
    get(ptr), get(x), get(p), simdOp(simd.f32x4Mul), simdOp(simd.store, ...memarg(4, 0));
    get(ptr), i32(16), emit(op.i32Add), tee(ptr), get(end), emit(op.i32LtU), emit(op.brIf, 0);
    emit(op.end);
    get(bad), simdOp(simd.v128AnyTrue);
    emit(op.end);
    return [
      ...vec([[...uleb(1), I32], [...uleb(V128_LOCALS + P.count), V128]]),
      ...P.prologue(),
      ...code.bytes,
    ];
  }

  const bodies = [
    ...MAPS.map(mapBody),
    softmaxBody(true),
    softmaxBody(false),
    geluBody(false),
    geluBody(true),
    geluFastBody(),
  ];
  const mapType = [0x60, ...vec([[I32], [I32]]), 0x00];
  const rowType = [0x60, ...vec([[I32], [I32]]), ...vec([[F64]])];
  const geluType = [0x60, ...vec([[I32], [I32], [I32]]), ...vec([[I32]])];
  return new Uint8Array([
    ...HEADER,
    ...section(1, vec([mapType, rowType, geluType])),
    ...section(3, vec([...MAPS.map(() => [0x00]), [0x01], [0x01], [0x02], [0x02], [0x02]])),
    ...section(5, vec([[0x00, ...uleb(1)]])),
    ...section(
      7,
      vec([
        [...str("mem"), 0x02, 0x00],
        ...MAPS.map((name, i) => [...str(name), 0x00, i]),
        [...str("softmaxRow"), 0x00, MAPS.length],
        [...str("rowExpSum"), 0x00, MAPS.length + 1],
        [...str("gelu"), 0x00, MAPS.length + 2],
        [...str("geluGrad"), 0x00, MAPS.length + 3],
        [...str("geluFast"), 0x00, MAPS.length + 4],
      ]),
    ),
    ...section(10, vec(bodies.map((b) => [...uleb(b.length), ...b]))),
  ]);
}

interface Kernels {
  memory: WebAssembly.Memory;
  /** Built with relaxed-SIMD multiply-adds (fused or not, as the hardware does them). */
  relaxed: boolean;
  heap: Float32Array;
  maps: Record<WasmMap, (ptr: number, n: number) => void>;
  softmaxRow: (ptr: number, n: number) => number;
  rowExpSum: (ptr: number, n: number) => number;
  gelu: (ptr: number, n: number, table: number) => number;
  geluGrad: (ptr: number, n: number, table: number) => number;
  geluFast: (ptr: number, n: number, table: number) => number;
  /** The coefficient tables installed at TABLE_BYTES (gelu's, then its gradient's). */
  tables: (Float64Array | null)[];
  /** The table installed at FAST_BYTES. */
  fastTable: Float32Array | null;
}

let cached: Kernels | null | undefined;

function kernels(): Kernels | null {
  if (cached !== undefined) return cached;
  const built = instantiateFirst(variants, assemble);
  cached = built ? kernelsOf(built.exports, built.variant) : null;
  return cached;
}

function kernelsOf(ex: WebAssembly.Exports, relaxed: boolean): Kernels {
  const memory = ex.mem as WebAssembly.Memory;
  return {
    memory,
    relaxed,
    heap: new Float32Array(memory.buffer),
    maps: Object.fromEntries(MAPS.map((k) => [k, ex[k]])) as Kernels["maps"],
    softmaxRow: ex.softmaxRow as Kernels["softmaxRow"],
    rowExpSum: ex.rowExpSum as Kernels["rowExpSum"],
    gelu: ex.gelu as Kernels["gelu"],
    geluGrad: ex.geluGrad as Kernels["geluGrad"],
    geluFast: ex.geluFast as Kernels["geluFast"],
    tables: [null, null],
    fastTable: null,
  };
}

/** The kernels, with room for `floats` data floats (+ two vectors of slack); null when off. */
function ready(floats: number): Kernels | null {
  if (!enabled) return null;
  const k = kernels();
  if (!k) return null;
  if (!growTo(k.memory, BASE_BYTES + 4 * (floats + 8))) return null;
  if (k.heap.buffer !== k.memory.buffer) k.heap = new Float32Array(k.memory.buffer);
  return k;
}

/** y = f(x) elementwise for f32 arrays of equal length; false when the SIMD path is off. */
export function mapWasm(kind: WasmMap, x: Float32Array, y: Float32Array): boolean {
  const n = x.length;
  const k = ready(Math.min(n, CHUNK));
  if (!k) return false;
  const fn = k.maps[kind];
  const heap = k.heap;
  for (let i = 0; i < n; i += CHUNK) {
    const c = Math.min(CHUNK, n - i);
    heap.set(x.subarray(i, i + c), BASE);
    fn(BASE_BYTES, c);
    y.set(heap.subarray(BASE, BASE + c), i);
  }
  return true;
}

/**
 * `floats` floats at the start of the module's data area, for a caller that fills a block
 * there (e.g. by GEMM) and hands it to softmaxBlockWasm, which then copies nothing; null
 * when the SIMD path is off. Valid until the next call into this module that needs more
 * room (growing the memory detaches it) or that uses the data area itself.
 */
export function wasmScratch(floats: number): Float32Array | null {
  const k = ready(floats);
  return k ? k.heap.subarray(BASE, BASE + floats) : null;
}

/**
 * Row softmax in place over s[0, rows*n): row r covers its first visible(r) entries and is
 * zero past them; lse[lseOff + r] = max + log(sum), -Infinity for a row that sees nothing.
 */
export function softmaxBlockWasm(
  s: Float32Array,
  rows: number,
  n: number,
  visible: (r: number) => number,
  lse: Float32Array,
  lseOff: number,
): boolean {
  const total = rows * n;
  const k = ready(total);
  if (!k) return false;
  const heap = k.heap;
  // A block from wasmScratch is already in place.
  const inPlace = s.buffer === heap.buffer && s.byteOffset === BASE_BYTES;
  if (!inPlace) heap.set(s.subarray(0, total), BASE);
  for (let r = 0; r < rows; r++) {
    const vis = visible(r);
    const off = BASE + r * n;
    if (vis === 0) {
      heap.fill(0, off, off + n);
      lse[lseOff + r] = -Infinity;
      continue;
    }
    const sum = k.softmaxRow(4 * off, vis);
    lse[lseOff + r] = heap[0] + Math.log(sum);
    if (vis < n) heap.fill(0, off + vis, off + n);
  }
  if (!inPlace) s.set(heap.subarray(BASE, BASE + total), 0);
  return true;
}

/** y = softmax or log-softmax of the (rows, cols) x, row by row; false when off. */
export function softmaxWasm(
  x: Float32Array,
  y: Float32Array,
  rows: number,
  cols: number,
  log: boolean,
): boolean {
  if (cols === 0) return false;
  const chunkRows = Math.max(1, Math.floor(CHUNK * 4 / cols));
  const k = ready(Math.min(rows, chunkRows) * cols);
  if (!k) return false;
  const heap = k.heap;
  for (let r0 = 0; r0 < rows; r0 += chunkRows) {
    const nr = Math.min(chunkRows, rows - r0);
    const count = nr * cols;
    heap.set(x.subarray(r0 * cols, r0 * cols + count), BASE);
    for (let r = 0; r < nr; r++) {
      const off = BASE + r * cols;
      const sum = log ? k.rowExpSum(4 * off, cols) : k.softmaxRow(4 * off, cols);
      if (log) {
        const shift = heap[0] + Math.log(sum);
        for (let i = off; i < off + cols; i++) heap[i] -= shift;
      }
    }
    y.set(heap.subarray(BASE, BASE + count), r0 * cols);
  }
  return true;
}

/**
 * The tabulated GELU (grad = false: y = x p(u)) or its derivative (grad = true: y = p(u))
 * of gelu.ts, for f32 x and y, in float64 SIMD lanes; `table` holds 7 coefficients per
 * interval (128 intervals of width 1/8 tiling [-8, 8)) and `slow` is the TS function for
 * x < -8 and NaN. The f64 results are those of the TS kernel up to fused multiply-adds, so
 * the f32 outputs agree with it to an ulp. False when the SIMD path is off.
 */
export function geluWasm(
  x: Float32Array,
  y: Float32Array,
  table: Float64Array,
  grad: boolean,
  slow: (v: number) => number,
): boolean {
  const n = x.length;
  const k = ready(Math.min(n, CHUNK));
  if (!k) return false;
  const slot = grad ? 1 : 0;
  const at = TABLE_BYTES + slot * TABLE_SIZE;
  if (k.tables[slot] !== table) {
    if (table.length !== 128 * 7) throw new Error("geluWasm: expected 128 x 7 coefficients");
    const dst = new Float64Array(k.memory.buffer, at, 128 * 8);
    for (let j = 0; j < 128; j++) {
      for (let c = 0; c < 7; c++) dst[j * 8 + c] = table[j * 7 + c];
      dst[j * 8 + 7] = 0;
    }
    k.tables[slot] = table;
  }
  const fn = grad ? k.geluGrad : k.gelu;
  const heap = k.heap;
  for (let i = 0; i < n; i += CHUNK) {
    const c = Math.min(CHUNK, n - i);
    heap.set(x.subarray(i, i + c), BASE);
    if (c & 7) heap.fill(0, BASE + c, BASE + ((c + 7) & ~7)); // no stale x < -8 in the tail
    const bad = fn(BASE_BYTES, c, at);
    // Redone before the copy out, while x is intact (x and y may be one array).
    if (bad) {
      for (let j = i; j < i + c; j++) if (!(x[j] >= -8)) heap[BASE + j - i] = slow(x[j]);
    }
    y.set(heap.subarray(BASE, BASE + c), i);
  }
  return true;
}

/**
 * The float32 GELU of gelu.ts's geluFastInto: y = x p(u) with `table` holding FAST_COEFFS
 * monomial coefficients per interval (FAST_INTERVALS of them tiling [-8, 8)) of Phi in
 * u = 2 (x - a) / h - 1; `slow` is the TS function for x < -8 and NaN. x and y may be
 * the same array. False when the SIMD path is off.
 */
export function geluFastWasm(
  x: Float32Array,
  y: Float32Array,
  table: Float32Array,
  slow: (v: number) => number,
): boolean {
  const n = x.length;
  const k = ready(Math.min(n, CHUNK));
  if (!k) return false;
  if (k.fastTable !== table) {
    if (table.length !== FAST_INTERVALS * FAST_COEFFS) {
      throw new Error(`geluFastWasm: expected ${FAST_INTERVALS} x ${FAST_COEFFS} coefficients`);
    }
    new Float32Array(k.memory.buffer, FAST_BYTES, table.length).set(table);
    k.fastTable = table;
  }
  const heap = k.heap;
  for (let i = 0; i < n; i += CHUNK) {
    const c = Math.min(CHUNK, n - i);
    heap.set(x.subarray(i, i + c), BASE);
    if (c & 3) heap.fill(0, BASE + c, BASE + ((c + 3) & ~3)); // no stale x < -8 in the tail
    if (k.geluFast(BASE_BYTES, c, FAST_BYTES)) {
      for (let j = i; j < i + c; j++) if (!(x[j] >= -8)) heap[BASE + j - i] = slow(x[j]);
    }
    y.set(heap.subarray(BASE, BASE + c), i);
  }
  return true;
}
