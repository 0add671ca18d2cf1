/**
 * WebAssembly SIMD versions of winograd.ts's input and output transforms, four tiles per
 * f32x4. The transformed input V and the GEMM output M live in this module's memory (the
 * GEMM reads and writes them there: OpenBLAS through a view of the memory, like any
 * Float32Array), so the only copies are the input rows into a zero-padded staging area and
 * the finished output rows back out, both block copies.
 *
 *   input(src, widthBytes, rows, groups, rowTilesBytes, dst, ldBytes)
 *     for each of `rows` tile rows, from 2*rows + 2 staged input rows `widthBytes` apart,
 *     writes V's 16 rows (`ldBytes` apart) for `groups` groups of 4 tiles;
 *   output(src, ldBytes, rows, groups, rowTilesBytes, dst, strideBytes, bias)
 *     the inverse: 2*rows output rows `strideBytes` apart, bias added.
 *
 * Four tiles start at input columns a, a+2, a+4, a+6, so with the rows already combined
 * (B^T d), loads at a, a+4 give columns {a, a+2, a+4, a+6} (even lanes) and {a+1, ..., a+7}
 * (odd lanes), and loads at a+2, a+6 give the same shifted by two: the four columns of
 * every tile's patch, one per lane.
 */

import {
  codeBuilder, EMPTY, F32, HEADER, I32, memarg, op, section, simd, str, uleb, V128, vec,
} from "../../wasm/assembler.ts";
import { growTo, instantiateFirst } from "../../wasm/instance.ts";
import {
  inputTransform, outputTransform, type WinogradPasses, type WinogradPlan,
} from "./winograd.ts";

/** f32 lane shuffles (bytes of a, then 16 + bytes of b). */
const lanes = (...ls: number[]) => ls.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]);
const EVEN = lanes(0, 2, 4, 6), ODD = lanes(1, 3, 5, 7);
const ZIP_LO = lanes(0, 4, 1, 5), ZIP_HI = lanes(2, 6, 3, 7);

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

function inputBody(): number[] {
  const code = codeBuilder();
  const { emit, get, set, tee, i32, simdOp } = code;
  const [src, widthB, rows, groups, rowTilesB, dst, ldB] = [0, 1, 2, 3, 4, 5, 6];
  const [r, q, a, o] = [7, 8, 9, 10];
  // v128 locals: row k of chunk ch (16), then B^T d rows i of chunk ch (16).
  const R = (k: number, ch: number) => 11 + 4 * k + ch;
  const T = (i: number, ch: number) => 27 + 4 * i + ch;
  const CHUNK_BYTES = [0, 16, 8, 24]; // columns a, a+4, a+2, a+6
  loop(code, r, rows, () => {
    loop(code, q, groups, () => {
      // a = src + 2r*widthB + 32q; o = dst + r*rowTilesB + 16q
      get(src), get(r), i32(1), emit(op.i32Shl), get(widthB), emit(op.i32Mul), emit(op.i32Add);
      get(q), i32(5), emit(op.i32Shl), emit(op.i32Add), set(a);
      for (let k = 0; k < 4; k++) {
        for (let ch = 0; ch < 4; ch++) get(a), simdOp(simd.load, ...memarg(0, CHUNK_BYTES[ch])), set(R(k, ch));
        if (k < 3) get(a), get(widthB), emit(op.i32Add), set(a);
      }
      for (let ch = 0; ch < 4; ch++) {
        get(R(0, ch)), get(R(2, ch)), simdOp(simd.f32x4Sub), set(T(0, ch));
        get(R(1, ch)), get(R(2, ch)), simdOp(simd.f32x4Add), set(T(1, ch));
        get(R(2, ch)), get(R(1, ch)), simdOp(simd.f32x4Sub), set(T(2, ch));
        get(R(1, ch)), get(R(3, ch)), simdOp(simd.f32x4Sub), set(T(3, ch));
      }
      get(dst), get(r), get(rowTilesB), emit(op.i32Mul), emit(op.i32Add);
      get(q), i32(4), emit(op.i32Shl), emit(op.i32Add), set(o);
      for (let i = 0; i < 4; i++) {
        // E = cols a+2t, Od = a+2t+1, E2 = a+2t+2, Od2 = a+2t+3 (t = lane).
        const E = () => (get(T(i, 0)), get(T(i, 1)), simdOp(simd.i8x16Shuffle, ...EVEN));
        const Od = () => (get(T(i, 0)), get(T(i, 1)), simdOp(simd.i8x16Shuffle, ...ODD));
        const E2 = () => (get(T(i, 2)), get(T(i, 3)), simdOp(simd.i8x16Shuffle, ...EVEN));
        const Od2 = () => (get(T(i, 2)), get(T(i, 3)), simdOp(simd.i8x16Shuffle, ...ODD));
        const store = (value: () => void) => {
          get(o), value(), simdOp(simd.store, ...memarg(0, 0));
          get(o), get(ldB), emit(op.i32Add), set(o);
        };
        store(() => (E(), E2(), simdOp(simd.f32x4Sub)));
        store(() => (Od(), E2(), simdOp(simd.f32x4Add)));
        store(() => (E2(), Od(), simdOp(simd.f32x4Sub)));
        store(() => (Od(), Od2(), simdOp(simd.f32x4Sub)));
      }
    });
  });
  emit(op.end);
  return [...vec([[...uleb(4), I32], [...uleb(32), V128]]), ...code.bytes];
}

function outputBody(): number[] {
  const code = codeBuilder();
  const { emit, get, set, tee, i32, simdOp } = code;
  const [src, ldB, rows, groups, rowTilesB, dst, strideB, bias] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [r, q, m, y] = [8, 9, 10, 11];
  const [b, s0, s1, s2, s3, d0, d1, d2, d3, y0, y1] = [12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22];
  const S = [s0, s1, s2, s3], D = [d0, d1, d2, d3];
  get(bias), simdOp(simd.f32x4Splat), set(b);
  loop(code, r, rows, () => {
    loop(code, q, groups, () => {
      get(src), get(r), get(rowTilesB), emit(op.i32Mul), emit(op.i32Add);
      get(q), i32(4), emit(op.i32Shl), emit(op.i32Add), set(m);
      // M row ξ = 4i + j is at m + ξ*ldB; s_j = m0j + m1j + m2j, d_j = m1j - m2j - m3j.
      const load = (xi: number) => {
        get(m);
        if (xi) get(ldB), i32(xi), emit(op.i32Mul), emit(op.i32Add);
        simdOp(simd.load, ...memarg(0, 0));
      };
      for (let j = 0; j < 4; j++) {
        load(4 + j), load(8 + j), simdOp(simd.f32x4Sub), set(D[j]);
        load(j), load(4 + j), simdOp(simd.f32x4Add), load(8 + j), simdOp(simd.f32x4Add), set(S[j]);
        get(D[j]), load(12 + j), simdOp(simd.f32x4Sub), set(D[j]);
      }
      // y = dst + 2r*strideB + 32q; per output row, interleave the two columns of each tile.
      get(dst), get(r), i32(1), emit(op.i32Shl), get(strideB), emit(op.i32Mul), emit(op.i32Add);
      get(q), i32(5), emit(op.i32Shl), emit(op.i32Add), set(y);
      for (const V of [S, D]) {
        get(V[0]), get(V[1]), simdOp(simd.f32x4Add), get(V[2]), simdOp(simd.f32x4Add);
        get(b), simdOp(simd.f32x4Add), set(y0);
        get(V[1]), get(V[2]), simdOp(simd.f32x4Sub), get(V[3]), simdOp(simd.f32x4Sub);
        get(b), simdOp(simd.f32x4Add), set(y1);
        get(y), get(y0), get(y1), simdOp(simd.i8x16Shuffle, ...ZIP_LO), simdOp(simd.store, ...memarg(0, 0));
        get(y), get(y0), get(y1), simdOp(simd.i8x16Shuffle, ...ZIP_HI), simdOp(simd.store, ...memarg(0, 16));
        if (V === S) get(y), get(strideB), emit(op.i32Add), set(y);
      }
    });
  });
  emit(op.end);
  void tee;
  return [...vec([[...uleb(4), I32], [...uleb(11), V128]]), ...code.bytes];
}

function assemble(): Uint8Array<ArrayBuffer> {
  const input = inputBody(), output = outputBody();
  return new Uint8Array([
    ...HEADER,
    ...section(1, vec([
      [0x60, ...vec(new Array(7).fill([I32])), 0x00],
      [0x60, ...vec([...new Array(7).fill([I32]), [F32]]), 0x00],
    ])),
    ...section(3, vec([[0x00], [0x01]])),
    ...section(5, vec([[0x00, ...uleb(1)]])),
    ...section(7, vec([
      [...str("mem"), 0x02, 0x00], [...str("input"), 0x00, 0x00], [...str("output"), 0x00, 0x01],
    ])),
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
function forEachImageRun(p: WinogradPlan, g0: number, g1: number, fn: (n: number, ga: number, gb: number) => void) {
  for (let ga = g0; ga < g1;) {
    const n = Math.floor(ga / p.tileRows), gb = Math.min(g1, (n + 1) * p.tileRows);
    fn(n, ga, gb);
    ga = gb;
  }
}

/** The SIMD passes, or null without WASM SIMD (or when memory cannot grow: then TS runs). */
export function winogradWasmPasses(): WinogradPasses | null {
  const k = kernels();
  if (!k) return null;
  return {
    workspace(p, ld) {
      const groups = Math.ceil(p.tileCols / 4), width = 8 * groups + 4, stride = 8 * groups;
      const inStage = 0, outStage = inStage + (2 * p.bandRows + 2) * width;
      const v = outStage + 2 * p.bandRows * stride, m = v + 16 * p.C * ld, end = m + 16 * p.O * ld;
      if (!growTo(k.memory, 4 * end)) {
        layout = null;
        const { V, M } = { V: new Float32Array(16 * p.C * ld), M: new Float32Array(16 * p.O * ld) };
        return { V, M };
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
          const src = (n * C + c) * inH * inW, iy0 = 2 * (ga % tileRows) - padH;
          for (let k = 0; k < 2 * (gb - ga) + 2; k++) {
            const iy = iy0 + k, row = inStage + k * width;
            if (iy >= 0 && iy < inH) heap.set(x.subarray(src + iy * inW, src + (iy + 1) * inW), row + padW);
            else heap.fill(0, row, row + width);
          }
          const out = V.byteOffset + 4 * (c * 16 * ld + (ga - g0) * tileCols);
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
          const src = M.byteOffset + 4 * (o * 16 * ld + (ga - g0) * tileCols);
          k.output(src, 4 * ld, gb - ga, groups, 4 * tileCols, 4 * outStage, 4 * stride, bias ? bias[o] : 0);
          const oy0 = 2 * (ga % tileRows), rowsOut = Math.min(2 * (gb - ga), outH - oy0);
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
