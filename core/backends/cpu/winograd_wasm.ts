/**
 * WebAssembly SIMD versions of winograd.ts's F(4x4, 3x3) input and output transforms, four
 * tiles per f32x4. The transformed input V and the GEMM output M live in this module's
 * memory (the GEMM reads and writes them there: OpenBLAS through a view of the memory,
 * like any Float32Array), so the only copies are the input rows into a zero-padded
 * staging area and the finished output rows back out, both block copies.
 *
 *   input(src, widthBytes, rows, groups, rowTilesBytes, dst, ldBytes)
 *     for each of `rows` tile rows, from 4*rows + 2 staged input rows `widthBytes` apart,
 *     writes V's 36 rows (`ldBytes` apart) for `groups` groups of 4 tiles;
 *   output(src, ldBytes, rows, groups, rowTilesBytes, dst, strideBytes, bias)
 *     the inverse: 4*rows output rows `strideBytes` apart, bias added.
 *
 * Groups of 4 tiles run past the last real tile of a row when tileCols is not a multiple
 * of 4: those lanes read zero padding or stale scratch and land in scratch nobody reads.
 */

import {
  codeBuilder,
  EMPTY,
  F32,
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
import {
  F4X3,
  inputTransform,
  outputTransform,
  type WinogradPasses,
  type WinogradPlan,
} from "./winograd.ts";

/** f32 lane shuffles (lanes 0-3 of a, then 4-7 of b). */
const lanes = (...ls: number[]) => ls.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]);
const ZIP_LO = lanes(0, 4, 1, 5), ZIP_HI = lanes(2, 6, 3, 7);
const LOW_PAIRS = lanes(0, 1, 4, 5), HIGH_PAIRS = lanes(2, 3, 6, 7);

type Code = ReturnType<typeof codeBuilder>;

/** Emits `for (i = 0; i < count; i++) body()` (count > 0). */
function loop(code: Code, i: number, count: number, body: () => void) {
  const { emit, get, set, tee, i32 } = code;
  i32(0), set(i);
  emit(op.loop, EMPTY);
  body();
  get(i), i32(1), emit(op.i32Add), tee(i), get(count), emit(op.i32LtU), emit(op.brIf, 0);
  emit(op.end);
}

/**
 * A function body with named v128 locals and f32x4 arithmetic on them: each helper
 * computes into a fresh local and returns its index, so the transforms below read like
 * the formulas.
 */
function simdBody(params: number, i32Locals: number) {
  const code = codeBuilder();
  const { get, set, simdOp } = code;
  let next = params + i32Locals;
  const fresh = () => next++;
  const binary = (opcode: number) => (x: number, y: number) => {
    const r = fresh();
    get(x), get(y), simdOp(opcode), set(r);
    return r;
  };
  const add = binary(simd.f32x4Add), sub = binary(simd.f32x4Sub), mul = binary(simd.f32x4Mul);
  const shuffle = (x: number, y: number, pattern: number[]) => {
    const r = fresh();
    get(x), get(y), simdOp(simd.i8x16Shuffle, ...pattern), set(r);
    return r;
  };
  /** The 4x4 transpose of rows x0..x3 (lanes become rows). */
  const transpose4 = (x: number[]) => {
    const lo01 = shuffle(x[0], x[1], ZIP_LO), lo23 = shuffle(x[2], x[3], ZIP_LO);
    const hi01 = shuffle(x[0], x[1], ZIP_HI), hi23 = shuffle(x[2], x[3], ZIP_HI);
    return [
      shuffle(lo01, lo23, LOW_PAIRS),
      shuffle(lo01, lo23, HIGH_PAIRS),
      shuffle(hi01, hi23, LOW_PAIRS),
      shuffle(hi01, hi23, HIGH_PAIRS),
    ];
  };
  const constant = (value: number) => {
    const r = fresh();
    simdOp(simd.const, ...new Uint8Array(new Float32Array([value, value, value, value]).buffer)),
      set(r);
    return r;
  };
  return {
    code,
    fresh,
    add,
    sub,
    mul,
    shuffle,
    transpose4,
    constant,
    finish(): number[] {
      code.emit(op.end);
      const v128s = next - params - i32Locals;
      return [...vec([[...uleb(i32Locals), I32], [...uleb(v128s), V128]]), ...code.bytes];
    },
  };
}

type Body = ReturnType<typeof simdBody>;
interface Consts {
  two: number;
  four: number;
  five: number;
  eight: number;
}

/** F(4x4, 3x3)'s B^T applied to six vectors (the same formula per lane). */
function bt6(f: Body, k: Consts, d: number[]): number[] {
  const { add, sub, mul } = f;
  const a = sub(d[4], mul(k.four, d[2])), b = sub(d[3], mul(k.four, d[1]));
  const c = sub(d[4], d[2]), e = mul(k.two, sub(d[3], d[1]));
  return [
    add(sub(mul(k.four, d[0]), mul(k.five, d[2])), d[4]),
    add(a, b),
    sub(a, b),
    add(c, e),
    sub(c, e),
    add(sub(mul(k.four, d[1]), mul(k.five, d[3])), d[5]),
  ];
}

/** F(4x4, 3x3)'s A^T applied to six vectors. */
function at6(f: Body, k: Consts, m: number[]): number[] {
  const { add, sub, mul } = f;
  const p = add(m[1], m[2]), q = sub(m[1], m[2]), r = add(m[3], m[4]), s = sub(m[3], m[4]);
  return [
    add(add(m[0], p), r),
    add(q, mul(k.two, s)),
    add(p, mul(k.four, r)),
    add(add(q, mul(k.eight, s)), m[5]),
  ];
}

function consts(f: Body): Consts {
  return { two: f.constant(2), four: f.constant(4), five: f.constant(5), eight: f.constant(8) };
}

/**
 * input(src, widthBytes, rows, groups, rowTilesBytes, dst, ldBytes): for each tile row,
 * six staged input rows from src + 4r*widthBytes; four tiles start at columns a, a+4, a+8,
 * a+12, so five f32x4 chunks cover their patches. B^T runs down the rows on whole chunks,
 * then a transpose puts column j of every tile's patch in one vector for B^T across.
 */
function inputBody(): number[] {
  const [src, widthB, rows, groups, rowTilesB, dst, ldB] = [0, 1, 2, 3, 4, 5, 6];
  const [r, q, a, o] = [7, 8, 9, 10];
  const f = simdBody(7, 4);
  const { emit, get, set, i32, simdOp } = f.code;
  const k = consts(f);
  loop(f.code, r, rows, () => {
    loop(f.code, q, groups, () => {
      // a = src + 4r*widthB + 64q; o = dst + r*rowTilesB + 16q
      get(src), get(r), i32(2), emit(op.i32Shl), get(widthB), emit(op.i32Mul), emit(op.i32Add);
      get(q), i32(6), emit(op.i32Shl), emit(op.i32Add), set(a);
      get(dst), get(r), get(rowTilesB), emit(op.i32Mul), emit(op.i32Add);
      get(q), i32(4), emit(op.i32Shl), emit(op.i32Add), set(o);
      const rowsOfChunks: number[][] = []; // [input row][chunk]
      for (let row = 0; row < 6; row++) {
        rowsOfChunks.push([0, 1, 2, 3, 4].map((ch) => {
          const v = f.fresh();
          get(a), simdOp(simd.load, ...memarg(0, 16 * ch)), set(v);
          return v;
        }));
        if (row < 5) get(a), get(widthB), emit(op.i32Add), set(a);
      }
      const down = [0, 1, 2, 3, 4].map((ch) => bt6(f, k, rowsOfChunks.map((row) => row[ch]))); // [chunk][i]
      for (let i = 0; i < 6; i++) {
        const T = down.map((chunk) => chunk[i]);
        const [j0, j1, j2, j3] = f.transpose4(T.slice(0, 4));
        const lo12 = f.shuffle(T[1], T[2], ZIP_LO), lo34 = f.shuffle(T[3], T[4], ZIP_LO);
        const j4 = f.shuffle(lo12, lo34, LOW_PAIRS), j5 = f.shuffle(lo12, lo34, HIGH_PAIRS);
        for (const v of bt6(f, k, [j0, j1, j2, j3, j4, j5])) {
          get(o), get(v), simdOp(simd.store, ...memarg(0, 0));
          get(o), get(ldB), emit(op.i32Add), set(o);
        }
      }
    });
  });
  return f.finish();
}

/**
 * output(src, ldBytes, rows, groups, rowTilesBytes, dst, strideBytes, bias): A^T down the
 * 36 rows of M (4 tiles per vector), A^T across, bias, then a transpose per output row so
 * each tile's four outputs are stored side by side.
 */
function outputBody(): number[] {
  const [src, ldB, rows, groups, rowTilesB, dst, strideB, bias] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [r, q, m, y] = [8, 9, 10, 11];
  const f = simdBody(8, 4);
  const { emit, get, set, i32, simdOp } = f.code;
  const k = consts(f);
  const b = f.fresh();
  get(bias), simdOp(simd.f32x4Splat), set(b);
  loop(f.code, r, rows, () => {
    loop(f.code, q, groups, () => {
      get(src), get(r), get(rowTilesB), emit(op.i32Mul), emit(op.i32Add);
      get(q), i32(4), emit(op.i32Shl), emit(op.i32Add), set(m);
      const cols: number[][] = []; // [j][output row]: A^T down column j of the 6x6 block
      for (let j = 0; j < 6; j++) {
        const column = [0, 1, 2, 3, 4, 5].map((i) => {
          const v = f.fresh();
          get(m), get(ldB), i32(6 * i + j), emit(op.i32Mul), emit(op.i32Add);
          simdOp(simd.load, ...memarg(0, 0)), set(v);
          return v;
        });
        cols.push(at6(f, k, column));
      }
      // y = dst + 4r*strideB + 64q
      get(dst), get(r), i32(2), emit(op.i32Shl), get(strideB), emit(op.i32Mul), emit(op.i32Add);
      get(q), i32(6), emit(op.i32Shl), emit(op.i32Add), set(y);
      for (let row = 0; row < 4; row++) {
        const Y = at6(f, k, cols.map((c) => c[row])).map((v) => f.add(v, b));
        f.transpose4(Y).forEach((tile, t) => {
          get(y), get(tile), simdOp(simd.store, ...memarg(0, 16 * t));
        });
        if (row < 3) get(y), get(strideB), emit(op.i32Add), set(y);
      }
    });
  });
  return f.finish();
}

function assemble(): Uint8Array<ArrayBuffer> {
  const input = inputBody(), output = outputBody();
  return new Uint8Array([
    ...HEADER,
    ...section(
      1,
      vec([
        [0x60, ...vec(new Array(7).fill([I32])), 0x00],
        [0x60, ...vec([...new Array(7).fill([I32]), [F32]]), 0x00],
      ]),
    ),
    ...section(3, vec([[0x00], [0x01]])),
    ...section(5, vec([[0x00, ...uleb(1)]])),
    ...section(
      7,
      vec([
        [...str("mem"), 0x02, 0x00],
        [...str("input"), 0x00, 0x00],
        [...str("output"), 0x00, 0x01],
      ]),
    ),
    ...section(10, vec([[...uleb(input.length), ...input], [...uleb(output.length), ...output]])),
  ]);
}

interface Kernels {
  memory: WebAssembly.Memory;
  input: (...args: number[]) => void;
  output: (...args: number[]) => void;
}

let cached: Kernels | null | undefined;

function kernels(): Kernels | null {
  if (cached === undefined) {
    const built = instantiateFirst([0], assemble);
    cached = built && {
      memory: built.exports.mem as WebAssembly.Memory,
      input: built.exports.input as Kernels["input"],
      output: built.exports.output as Kernels["output"],
    };
  }
  return cached;
}

/** Layout of one call's scratch in wasm memory (float offsets) and the staging widths. */
interface Layout {
  groups: number; // groups of 4 tiles per tile row
  width: number; // staged input row, floats: 8 per group + 4 (columns a..a+9 of the last)
  stride: number; // staged output row, floats
  inStage: number;
  outStage: number;
}

let layout: Layout | null = null;
let heap: Float32Array<ArrayBufferLike> = new Float32Array(0);

/** Each band pass walks its tile rows image by image: [ga, gb) inside image n. */
function forEachImageRun(
  p: WinogradPlan,
  g0: number,
  g1: number,
  fn: (n: number, ga: number, gb: number) => void,
) {
  for (let ga = g0; ga < g1;) {
    const n = Math.floor(ga / p.tileRows), gb = Math.min(g1, (n + 1) * p.tileRows);
    fn(n, ga, gb);
    ga = gb;
  }
}

/** The SIMD passes, or null without WASM SIMD (or when memory cannot grow: then TS runs). */
export function winogradWasmPasses(): WinogradPasses | null {
  if (passes === undefined) passes = buildPasses();
  return passes;
}

let passes: WinogradPasses | null | undefined;

function buildPasses(): WinogradPasses | null {
  const k = kernels();
  if (!k) return null;
  return {
    transform: F4X3,
    workspace(p, ld) {
      const groups = Math.ceil(p.tileCols / 4), width = 16 * groups + 4, stride = 16 * groups;
      const inStage = 0, outStage = inStage + (4 * p.bandRows + 2) * width;
      const v = outStage + 4 * p.bandRows * stride, m = v + 36 * p.C * ld, end = m + 36 * p.O * ld;
      if (!growTo(k.memory, 4 * end)) {
        layout = null;
        return { V: new Float32Array(36 * p.C * ld), M: new Float32Array(36 * p.O * ld) };
      }
      heap = new Float32Array(k.memory.buffer);
      heap.fill(0, inStage, outStage); // the padding columns stay zero from here on
      layout = { groups, width, stride, inStage, outStage };
      return { V: heap.subarray(v, m), M: heap.subarray(m, end) };
    },
    input(x, p, g0, g1, V, ld) {
      if (!layout || V.buffer !== heap.buffer) return inputTransform(x, p, g0, g1, V, ld);
      const { groups, width, inStage } = layout;
      const { C, inH, inW, padH, padW, tileRows, tileCols } = p;
      for (let c = 0; c < C; c++) {
        forEachImageRun(p, g0, g1, (n, ga, gb) => {
          const src = (n * C + c) * inH * inW, iy0 = 4 * (ga % tileRows) - padH;
          for (let k = 0; k < 4 * (gb - ga) + 2; k++) {
            const iy = iy0 + k, row = inStage + k * width;
            if (iy >= 0 && iy < inH) {
              heap.set(x.subarray(src + iy * inW, src + (iy + 1) * inW), row + padW);
            } else heap.fill(0, row, row + width);
          }
          const out = V.byteOffset + 4 * (c * 36 * ld + (ga - g0) * tileCols);
          k.input(4 * inStage, 4 * width, gb - ga, groups, 4 * tileCols, out, 4 * ld);
        });
      }
    },
    output(M, ld, p, g0, g1, bias, y) {
      if (!layout || M.buffer !== heap.buffer) return outputTransform(M, ld, p, g0, g1, bias, y);
      const { groups, stride, outStage } = layout;
      const { O, outH, outW, tileRows, tileCols } = p;
      for (let o = 0; o < O; o++) {
        forEachImageRun(p, g0, g1, (n, ga, gb) => {
          const src = M.byteOffset + 4 * (o * 36 * ld + (ga - g0) * tileCols);
          k.output(
            src,
            4 * ld,
            gb - ga,
            groups,
            4 * tileCols,
            4 * outStage,
            4 * stride,
            bias ? bias[o] : 0,
          );
          const oy0 = 4 * (ga % tileRows), rowsOut = Math.min(4 * (gb - ga), outH - oy0);
          const dst = ((n * O + o) * outH + oy0) * outW;
          if (stride === outW) {
            y.set(heap.subarray(outStage, outStage + rowsOut * outW), dst);
          } else {
            for (let i = 0; i < rowsOut; i++) {
              const s = outStage + i * stride;
              y.set(heap.subarray(s, s + outW), dst + i * outW);
            }
          }
        });
      }
    },
  };
}
