/**
 * A WebAssembly SIMD macro-kernel for the pure-TS GEMM fallback (no native code needed).
 *
 * The module is assembled here byte by byte (no toolchain at build time). Its one function
 *
 *   kernel(pa, pb, c, mcTiles, ncTiles, kc, ldcBytes)
 *
 * multiplies a packed A panel (mcTiles slivers of MR rows, k-major) by a packed B panel
 * (ncTiles slivers of NR = 4*NRV columns, k-major) and *stores* the (MR*mcTiles, NR*ncTiles)
 * product row-major at c. Each MR x NR tile lives in MR*NRV f32x4 accumulators; the caller
 * adds alpha * tile into C (which sits outside wasm memory).
 *
 * Returns null where the runtime lacks WASM SIMD, and the caller falls back to scalar TS.
 */

import {
  codeBuilder,
  EMPTY,
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
import { instantiateFirst } from "../../wasm/instance.ts";

export interface SimdKernel {
  readonly MR: number;
  readonly NR: number;
  readonly relaxed: boolean;
  /** Float32 view of the whole wasm memory, and the float offsets of its three regions. */
  readonly heap: Float32Array;
  readonly paOffset: number;
  readonly pbOffset: number;
  readonly cOffset: number;
  run(mcTiles: number, ncTiles: number, kc: number, ldc: number): void;
}

function assemble(
  MR: number,
  NRV: number,
  relaxed: boolean,
  pages: number,
): Uint8Array<ArrayBuffer> {
  const NR = 4 * NRV;
  // params 0..6, then i32 scratch locals, then v128 locals.
  const [pa, pb, c, mcTiles, ncTiles, kc, ldcBytes] = [0, 1, 2, 3, 4, 5, 6];
  const [jt, it, a, b, end, cRow, pbTile] = [7, 8, 9, 10, 11, 12, 13];
  const splat = 14;
  const bvec = (v: number) => 15 + v;
  const acc = (r: number, v: number) => 15 + NRV + r * NRV + v;
  const v128Locals = 1 + NRV + MR * NRV;

  const { bytes: code, emit, get, set, tee, i32, simdOp } = codeBuilder();

  i32(0), set(jt);
  emit(op.loop, EMPTY); // over column slivers
  get(pb), get(jt), get(kc), emit(op.i32Mul), i32(NR * 4), emit(op.i32Mul), emit(op.i32Add);
  set(pbTile);
  i32(0), set(it);
  emit(op.loop, EMPTY); // over row slivers
  get(pa), get(it), get(kc), emit(op.i32Mul), i32(MR * 4), emit(op.i32Mul), emit(op.i32Add);
  tee(a), get(kc), i32(MR * 4), emit(op.i32Mul), emit(op.i32Add), set(end);
  get(pbTile), set(b);
  for (let r = 0; r < MR; r++) {
    for (let v = 0; v < NRV; v++) simdOp(simd.const, ...new Array(16).fill(0)), set(acc(r, v));
  }
  emit(op.loop, EMPTY); // over k: rank-1 update of the tile
  for (let v = 0; v < NRV; v++) get(b), simdOp(simd.load, ...memarg(4, v * 16)), set(bvec(v));
  for (let r = 0; r < MR; r++) {
    get(a), simdOp(simd.load32Splat, ...memarg(2, r * 4)), set(splat);
    for (let v = 0; v < NRV; v++) {
      if (relaxed) get(splat), get(bvec(v)), get(acc(r, v)), simdOp(simd.relaxedMadd);
      else get(acc(r, v)), get(splat), get(bvec(v)), simdOp(simd.f32x4Mul), simdOp(simd.f32x4Add);
      set(acc(r, v));
    }
  }
  get(a), i32(MR * 4), emit(op.i32Add), tee(a);
  get(b), i32(NR * 4), emit(op.i32Add), set(b);
  get(end), emit(op.i32LtU), emit(op.brIf, 0);
  emit(op.end);
  // Store the tile at c + it*MR*ldcBytes + jt*NR*4.
  get(c), get(it), i32(MR), emit(op.i32Mul), get(ldcBytes), emit(op.i32Mul), emit(op.i32Add);
  get(jt), i32(NR * 4), emit(op.i32Mul), emit(op.i32Add), set(cRow);
  for (let r = 0; r < MR; r++) {
    for (let v = 0; v < NRV; v++) {
      get(cRow), get(acc(r, v)), simdOp(simd.store, ...memarg(4, v * 16));
    }
    get(cRow), get(ldcBytes), emit(op.i32Add), set(cRow);
  }
  get(it), i32(1), emit(op.i32Add), tee(it), get(mcTiles), emit(op.i32LtU), emit(op.brIf, 0);
  emit(op.end);
  get(jt), i32(1), emit(op.i32Add), tee(jt), get(ncTiles), emit(op.i32LtU), emit(op.brIf, 0);
  emit(op.end);
  emit(op.end); // function

  const locals = vec([[...uleb(7), I32], [...uleb(v128Locals), V128]]);
  const body = [...locals, ...code];
  return new Uint8Array([
    ...HEADER,
    ...section(1, vec([[0x60, ...vec(new Array(7).fill([I32])), 0x00]])),
    ...section(3, vec([[0x00]])),
    ...section(5, vec([[0x00, ...uleb(pages)]])),
    ...section(7, vec([[...str("mem"), 0x02, 0x00], [...str("kernel"), 0x00, 0x00]])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]);
}

/**
 * Builds the kernel with memory for an (mc, kc) A panel, a (kc, nc) B panel and an
 * (mc, nc) product, sizes already rounded up to MR and NR. Null without WASM SIMD.
 */
export function createSimdKernel(
  MR: number,
  NRV: number,
  maxMc: number,
  maxKc: number,
  maxNc: number,
  preferRelaxed = false,
): SimdKernel | null {
  const NR = 4 * NRV;
  const paFloats = maxMc * maxKc, pbFloats = maxKc * maxNc, cFloats = maxMc * maxNc;
  const bytes = 4 * (paFloats + pbFloats + cFloats);
  const pages = Math.ceil(bytes / 65536);
  const built = instantiateFirst(
    preferRelaxed ? [true, false] : [false],
    (relaxed) => assemble(MR, NRV, relaxed, pages),
  );
  if (!built) return null;
  const memory = built.exports.mem as WebAssembly.Memory;
  const kernel = built.exports.kernel as (...args: number[]) => void;
  const heap = new Float32Array(memory.buffer);
  const paOffset = 0, pbOffset = paFloats, cOffset = paFloats + pbFloats;
  return {
    MR,
    NR,
    relaxed: built.variant,
    heap,
    paOffset,
    pbOffset,
    cOffset,
    run(mcTiles, ncTiles, kc, ldc) {
      kernel(4 * paOffset, 4 * pbOffset, 4 * cOffset, mcTiles, ncTiles, kc, 4 * ldc);
    },
  };
}
