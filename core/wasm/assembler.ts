/**
 * A tiny WebAssembly assembler: LEB128 encoders, section/vector framing, the opcodes our
 * hand-written kernels use, and a function-body builder. The kernels (the GEMM
 * macro-kernel in backends/cpu/gemm_wasm.ts, PIL's resampling passes in
 * image/resample_wasm.ts) are assembled byte by byte at run time, so no toolchain is
 * needed to build them.
 */

/** Value types, and the empty block type. */
export const I32 = 0x7f, V128 = 0x7b, EMPTY = 0x40;
export const F32 = 0x7d, F64 = 0x7c;

export const op = {
  loop: 0x03,
  end: 0x0b,
  brIf: 0x0d,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Load: 0x28,
  i32Store: 0x36,
  i32Const: 0x41,
  i32LtU: 0x49,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  block: 0x02,
  if: 0x04,
  else: 0x05,
  br: 0x0c,
  f32Store: 0x38,
  f64Store: 0x39,
  i32And: 0x71,
  i32Shl: 0x74,
  i32Eqz: 0x45,
  f32Max: 0x97,
  f64Add: 0xa0,
  f64Div: 0xa3,
  f32DemoteF64: 0xb6,
};

/** SIMD opcodes follow the 0xfd prefix as unsigned LEB128. */
export const simd = {
  load: 0,
  load8x8U: 2,
  load32Splat: 9,
  store: 11,
  const: 12,
  i32x4ExtractLane: 27,
  i8x16NarrowI16x8U: 102,
  i16x8NarrowI32x4S: 133,
  i16x8ExtendLowI8x16U: 137,
  i16x8ExtendHighI8x16U: 138,
  i32x4ExtendLowI16x8U: 169,
  i32x4ExtendHighI16x8U: 170,
  i32x4ShrS: 172,
  i32x4Add: 174,
  i32x4Mul: 181,
  f32x4Add: 228,
  f32x4Mul: 230,
  relaxedMadd: 0x105,
  i8x16Shuffle: 13,
  i32x4Splat: 17,
  f32x4Splat: 19,
  f32x4ExtractLane: 31,
  f64x2ExtractLane: 33,
  i32x4LtS: 57,
  f32x4Lt: 67,
  f32x4Ge: 70,
  v128And: 78,
  v128Bitselect: 82,
  f64x2PromoteLowF32x4: 95,
  f32x4Nearest: 106,
  i32x4Shl: 171,
  i32x4Sub: 177,
  f32x4Abs: 224,
  f32x4Neg: 225,
  f32x4Sub: 229,
  f32x4Div: 231,
  f32x4Min: 232,
  f32x4Max: 233,
  f32x4Pmin: 234,
  f32x4Pmax: 235,
  f64x2Add: 240,
  i32x4TruncSatF32x4S: 248,
  f64x2Splat: 20,
  f64x2Lt: 73,
  f64x2Ge: 76,
  v128Not: 77,
  v128Or: 80,
  v128AnyTrue: 83,
  v128Load64Lane: 87,
  v128Load64Zero: 93,
  f32x4DemoteF64x2Zero: 94,
  f64x2Floor: 117,
  f64x2Sub: 241,
  f64x2Mul: 242,
  f64x2Pmin: 246,
  f64x2Pmax: 247,
  i32x4TruncSatF64x2SZero: 252,
  f64x2ConvertLowI32x4S: 254,
  relaxedMaddF64x2: 0x107,
};

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  while (true) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(byte & 0x40)) || (n === -1 && (byte & 0x40))) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

export const str = (s: string) => [...uleb(s.length), ...new TextEncoder().encode(s)];
export const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
export const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];

/** The module preamble: magic number and version 1. */
export const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/** A memory argument: alignment hint (log2 bytes) and a constant offset. */
export const memarg = (alignLog2: number, offset: number) => [alignLog2, ...uleb(offset)];

/**
 * Collects one function body's instructions. The helpers are plain closures so a kernel can
 * destructure them (`const { get, set, i32 } = code`).
 */
export function codeBuilder() {
  const bytes: number[] = [];
  const emit = (...b: number[]) => {
    bytes.push(...b);
  };
  return {
    bytes,
    emit,
    get: (i: number) => emit(op.localGet, ...uleb(i)),
    set: (i: number) => emit(op.localSet, ...uleb(i)),
    tee: (i: number) => emit(op.localTee, ...uleb(i)),
    i32: (n: number) => emit(op.i32Const, ...sleb(n)),
    simdOp: (code: number, ...rest: number[]) => emit(0xfd, ...uleb(code), ...rest),
  };
}
