/**
 * WebAssembly SIMD im2col and col2im for batches of small images (conv.ts's batched path:
 * several whole images side by side in one (Cg*kH*kW, images*OH*OW) column matrix).
 *
 * Why: on 8x8 maps every column row is a run of 8 floats per image, so the TS im2col makes
 * a TypedArray call (set / fill) per few floats: measured 1.3 ms for a 64-channel 3x3
 * conv with batch 32 (1.2M floats, about 1.1 ns each), and plain indexed loops are no
 * faster (1.4 ns). Here the images are first copied, zero-padded, into this module's
 * memory; then every column row is a plain strided copy with no edge cases (taps that
 * fall in the padding read the zeros), four floats per f32x4, and the column matrix
 * stays in this memory for the GEMM to read (OpenBLAS through a view of it, as
 * winograd_wasm.ts does). col2im is the same walk backwards: the GEMM writes the columns
 * here, the kernel adds them into a zero-padded image, and the interior is copied out.
 * The GEMM's other operand, the (Og, images*OH*OW) rows of its output or of dy, lives
 * here too, moved to and from NCHW by copyRows (0.05 against 0.08 ms as 2048 TS block
 * copies for 64 channels of 32 8x8 images).
 *
 *   copyRows(src, dst, planes, rows, n4, tail, srcRowB, srcPlaneB, dstRowB, dstPlaneB)
 *     copies planes x rows rows of 4*n4 + tail floats (pads and unpads images);
 *   im2col_sK(pad, cols, Cg, kH, kW, nb, outH, outW, chunks, planeB, imageB, rowB,
 *             stepRowB, outWB, ldB)
 *     column row (c, ki, kj) of image i, output row oh: outW floats from padded plane c
 *     of image i at row oh*sH + ki, columns kj, kj + sW, ... (K = 1 or 2 = sW);
 *   col2im_sK(same)   the adjoint: adds each column row back into the padded image.
 *
 * Where one image's walk is short (up to UNROLL_MAX_CHUNKS chunks: maps up to about 16x32),
 * a small module per shape (sharing this memory) runs it as straight-line code with
 * constant address offsets: measured 0.41 -> 0.31 ms for im2col and 0.49 -> 0.30 ms for
 * col2im of a 64-channel 3x3 conv on 32 8x8 images (1.2M floats; 16x16 maps gain less,
 * 0.75 -> 0.69 ms, being bound by memory by then).
 *
 * im2col stores whole f32x4 chunks, so the last chunk of an output row may spill up to 3
 * floats past it; they land where a later store of the same walk writes (the next output
 * row, image or column row) or in slack after the matrix. col2im masks the lanes past
 * outW to zero, so its spill adds 0. Strides along the width other than 1 and 2 are left
 * to the TS path (im2col.ts), which stays the reference.
 */

import type { Conv2dArgs } from "../../backend.ts";
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
import { growTo, instantiateFirst } from "../../wasm/instance.ts";

const F32_LOAD = 0x2a;
/** Bytes of slack after each region for the f32x4 spill (reads and writes). */
const SLACK = 64;

type Code = ReturnType<typeof codeBuilder>;

/** Emits `for (i = 0; i < count; i++) body()`, count a local (zero runs nothing). */
function forCount(code: Code, i: number, count: number, body: () => void) {
  const { emit, get, set, tee, i32 } = code;
  i32(0), set(i);
  emit(op.block, EMPTY);
  get(count), emit(op.i32Eqz), emit(op.brIf, 0);
  emit(op.loop, EMPTY);
  body();
  get(i), i32(1), emit(op.i32Add), tee(i), get(count), emit(op.i32LtU), emit(op.brIf, 0);
  emit(op.end);
  emit(op.end);
}

/** local += constant or local += local. */
function addTo(code: Code, local: number, by: number | { local: number }) {
  code.get(local);
  if (typeof by === "number") code.i32(by);
  else code.get(by.local);
  code.emit(op.i32Add), code.set(local);
}

function body(i32Locals: number, v128Locals: number, emitCode: (code: Code) => void): number[] {
  const code = codeBuilder();
  emitCode(code);
  code.emit(op.end);
  const decls = [[...uleb(i32Locals), I32]];
  if (v128Locals) decls.push([...uleb(v128Locals), V128]);
  return [...vec(decls), ...code.bytes];
}

const COPY_PARAMS = 10;

function copyRowsBody(): number[] {
  const [src, dst, planes, rows, n4, tail, srcRowB, srcPlaneB, dstRowB, dstPlaneB] = [
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
  ];
  const [p, r, q, s, d, sp, dp] = [10, 11, 12, 13, 14, 15, 16];
  return body(7, 0, (code) => {
    const { emit, get, set, simdOp } = code;
    get(src), set(sp), get(dst), set(dp);
    forCount(code, p, planes, () => {
      get(sp), set(s), get(dp), set(d);
      forCount(code, r, rows, () => {
        forCount(code, q, n4, () => {
          get(d), get(s), simdOp(simd.load, ...memarg(0, 0)), simdOp(simd.store, ...memarg(0, 0));
          addTo(code, s, 16), addTo(code, d, 16);
        });
        forCount(code, q, tail, () => {
          get(d), get(s), emit(F32_LOAD, ...memarg(2, 0)), emit(op.f32Store, ...memarg(2, 0));
          addTo(code, s, 4), addTo(code, d, 4);
        });
        // s and d moved 4*width bytes along the row; on to the next row's start.
        get(s), get(n4), code.i32(4), emit(op.i32Shl), get(tail), code.i32(2), emit(op.i32Shl);
        emit(op.i32Add), emit(op.i32Sub), get(srcRowB), emit(op.i32Add), set(s);
        get(d), get(n4), code.i32(4), emit(op.i32Shl), get(tail), code.i32(2), emit(op.i32Shl);
        emit(op.i32Add), emit(op.i32Sub), get(dstRowB), emit(op.i32Add), set(d);
      });
      addTo(code, sp, { local: srcPlaneB }), addTo(code, dp, { local: dstPlaneB });
    });
  });
}

const COLS_PARAMS = 15;
const EVEN_LANES = [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27];
/** (a0, 0, a1, 0) and (a2, 0, a3, 0) from a and a zero vector. */
const ZIP_ZERO_LO = [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23];
const ZIP_ZERO_HI = [8, 9, 10, 11, 16, 17, 18, 19, 12, 13, 14, 15, 20, 21, 22, 23];
const LANE_INDEX = [...new Uint8Array(new Int32Array([0, 1, 2, 3]).buffer)];

/** The constant lane mask (all ones in lanes below `n`) as v128.const bytes. */
function laneMask(n: number): number[] {
  return [...new Uint8Array(new Int32Array([0, 1, 2, 3].map((l) => l < n ? -1 : 0)).buffer)];
}

/** Output rows of one image whose walk is unrolled: at most this many f32x4 chunks. */
const UNROLL_MAX_CHUNKS = 128;

/** The shape an unrolled walk is specialised to (byte strides of the padded planes). */
interface Unrolled {
  outH: number;
  outW: number;
  stepRowB: number;
}

/**
 * im2col (`adjoint` false) or col2im (true) for width stride `sw` (1 or 2): the walk over
 * (c, ki, kj) column rows, images, output rows and f32x4 chunks described at the top.
 * With `unrolled`, one image's output rows and chunks are straight-line code whose
 * addresses are constant offsets from two pointers (the loops cost more than the copies
 * on 8x8 maps); its outH, outW and stepRowB arguments are then ignored.
 */
function columnsBody(sw: 1 | 2, adjoint: boolean, unrolled?: Unrolled): number[] {
  const [pad, cols, Cg, kH, kW, nb, outH, outW, chunks] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const [planeB, imageB, rowB, stepRowB, outWB, ldB] = [9, 10, 11, 12, 13, 14];
  const [c, ki, kj, i, oh, q, row, base, img, s, d, left, dq] = [
    15,
    16,
    17,
    18,
    19,
    20,
    21,
    22,
    23,
    24,
    25,
    26,
    27,
  ];
  const [v, lanes, zero, tailMask] = [28, 29, 30, 31];
  return body(13, 4, (code) => {
    const { emit, get, set, i32, simdOp } = code;
    /**
     * One chunk: im2col stores the (strided) source chunk at d + dOff; col2im adds the
     * column chunk at d + dOff, masked by `mask` (emits a v128) if given, into s + sOff.
     */
    const chunk = (sPtr: number, sOff: number, dPtr: number, dOff: number, mask?: () => void) => {
      if (!adjoint) {
        get(dPtr);
        get(sPtr), simdOp(simd.load, ...memarg(0, sOff));
        if (sw === 2) {
          get(sPtr), simdOp(simd.load, ...memarg(0, sOff + 16));
          simdOp(simd.i8x16Shuffle, ...EVEN_LANES);
        }
        simdOp(simd.store, ...memarg(0, dOff));
        return;
      }
      get(dPtr), simdOp(simd.load, ...memarg(0, dOff));
      if (mask) mask(), simdOp(simd.v128And);
      set(v);
      if (sw === 1) {
        get(sPtr), get(sPtr), simdOp(simd.load, ...memarg(0, sOff)), get(v);
        simdOp(simd.f32x4Add), simdOp(simd.store, ...memarg(0, sOff));
        return;
      }
      for (const [half, zip] of [[0, ZIP_ZERO_LO], [16, ZIP_ZERO_HI]] as const) {
        get(sPtr), get(sPtr), simdOp(simd.load, ...memarg(0, sOff + half));
        get(v), get(zero), simdOp(simd.i8x16Shuffle, ...zip);
        simdOp(simd.f32x4Add), simdOp(simd.store, ...memarg(0, sOff + half));
      }
    };
    if (adjoint) {
      simdOp(simd.const, ...LANE_INDEX), set(lanes);
      simdOp(simd.const, ...new Array(16).fill(0)), set(zero);
      if (unrolled) simdOp(simd.const, ...laneMask(unrolled.outW & 3)), set(tailMask);
    }
    get(cols), set(row);
    forCount(code, c, Cg, () => {
      forCount(code, ki, kH, () => {
        forCount(code, kj, kW, () => {
          // base = pad + c*planeB + ki*rowB + 4*kj
          get(pad), get(c), get(planeB), emit(op.i32Mul), emit(op.i32Add);
          get(ki), get(rowB), emit(op.i32Mul), emit(op.i32Add);
          get(kj), i32(2), emit(op.i32Shl), emit(op.i32Add), set(base);
          get(row), set(d);
          forCount(code, i, nb, () => {
            if (unrolled) {
              const n = Math.ceil(unrolled.outW / 4), ragged = (unrolled.outW & 3) !== 0;
              for (let r = 0; r < unrolled.outH; r++) {
                for (let k = 0; k < n; k++) {
                  const mask = ragged && k === n - 1 ? () => get(tailMask) : undefined;
                  chunk(
                    base,
                    r * unrolled.stepRowB + 16 * sw * k,
                    d,
                    4 * r * unrolled.outW + 16 * k,
                    mask,
                  );
                }
              }
              addTo(code, d, 4 * unrolled.outH * unrolled.outW);
              addTo(code, base, { local: imageB });
              return;
            }
            get(base), set(img);
            forCount(code, oh, outH, () => {
              get(img), set(s), get(outW), set(left);
              forCount(code, q, chunks, () => {
                get(d), i32(16), get(q), emit(op.i32Mul), emit(op.i32Add), set(dq);
                chunk(s, 0, dq, 0, () => {
                  get(lanes), get(left), simdOp(simd.i32x4Splat), simdOp(simd.i32x4LtS);
                });
                addTo(code, s, 16 * sw);
                if (adjoint) get(left), i32(4), emit(op.i32Sub), set(left);
              });
              addTo(code, img, { local: stepRowB }), addTo(code, d, { local: outWB });
            });
            addTo(code, base, { local: imageB });
          });
          addTo(code, row, { local: ldB });
        });
      });
    });
  });
}

const KERNELS = [
  ["copyRows", 0, copyRowsBody],
  ["im2col_s1", 1, () => columnsBody(1, false)],
  ["im2col_s2", 1, () => columnsBody(2, false)],
  ["col2im_s1", 1, () => columnsBody(1, true)],
  ["col2im_s2", 1, () => columnsBody(2, true)],
] as const;

function assemble(): Uint8Array<ArrayBuffer> {
  const bodies = KERNELS.map(([, , build]) => build());
  return new Uint8Array([
    ...HEADER,
    ...section(
      1,
      vec([
        [0x60, ...vec(new Array(COPY_PARAMS).fill([I32])), 0x00],
        [0x60, ...vec(new Array(COLS_PARAMS).fill([I32])), 0x00],
      ]),
    ),
    ...section(3, vec(KERNELS.map(([, type]) => [type]))),
    ...section(5, vec([[0x00, ...uleb(1)]])),
    ...section(
      7,
      vec([
        [...str("mem"), 0x02, 0x00],
        ...KERNELS.map(([name], f) => [...str(name), 0x00, ...uleb(f)]),
      ]),
    ),
    ...section(10, vec(bodies.map((b) => [...uleb(b.length), ...b]))),
  ]);
}

type Fn = (...args: number[]) => void;
interface Kernels {
  memory: WebAssembly.Memory;
  copyRows: Fn;
  im2col: [Fn, Fn];
  col2im: [Fn, Fn];
}

let cached: Kernels | null | undefined;

function kernels(): Kernels | null {
  if (cached === undefined) {
    const built = instantiateFirst([0], assemble);
    const e = built?.exports;
    cached = e
      ? {
        memory: e.mem as WebAssembly.Memory,
        copyRows: e.copyRows as Fn,
        im2col: [e.im2col_s1 as Fn, e.im2col_s2 as Fn],
        col2im: [e.col2im_s1 as Fn, e.col2im_s2 as Fn],
      }
      : null;
  }
  return cached;
}

/** A one-function module with the walk unrolled for one shape, on the shared memory. */
function assembleUnrolled(sw: 1 | 2, adjoint: boolean, u: Unrolled): Uint8Array<ArrayBuffer> {
  const b = columnsBody(sw, adjoint, u);
  return new Uint8Array([
    ...HEADER,
    ...section(1, vec([[0x60, ...vec(new Array(COLS_PARAMS).fill([I32])), 0x00]])),
    ...section(2, vec([[...str("env"), ...str("mem"), 0x02, 0x00, ...uleb(1)]])),
    ...section(3, vec([[0x00]])),
    ...section(7, vec([[...str("columns"), 0x00, 0x00]])),
    ...section(10, vec([[...uleb(b.length), ...b]])),
  ]);
}

/** Unrolled kernels by shape (null: it did not build; the generic one runs). */
const unrolledKernels = new Map<string, Fn | null>();
const UNROLLED_CACHE = 64;

/** The unrolled kernel for this shape where one image's walk is short, else the generic one. */
function columnsKernel(k: Kernels, adjoint: boolean, l: Layout): Fn {
  const { a, Wp } = l, sw = a.strideW as 1 | 2;
  const generic = (adjoint ? k.col2im : k.im2col)[sw - 1];
  if (a.outH * Math.ceil(a.outW / 4) > UNROLL_MAX_CHUNKS) return generic;
  const u: Unrolled = { outH: a.outH, outW: a.outW, stepRowB: 4 * Wp * a.strideH };
  const key = `${sw} ${adjoint} ${u.outH} ${u.outW} ${u.stepRowB}`;
  let fn = unrolledKernels.get(key);
  if (fn === undefined) {
    if (unrolledKernels.size >= UNROLLED_CACHE) unrolledKernels.clear();
    try {
      const module = new WebAssembly.Module(assembleUnrolled(sw, adjoint, u));
      fn = new WebAssembly.Instance(module, { env: { mem: k.memory } }).exports.columns as Fn;
    } catch {
      fn = null;
    }
    unrolledKernels.set(key, fn);
  }
  return fn ?? generic;
}

let enabled = true;
let unrolling = true;

/**
 * Switches the SIMD column kernels on or off (off: conv.ts runs im2col.ts), and their
 * per-shape unrolled walks (off: the generic loops). For tests and benchmarks.
 */
export function useIm2colWasm(on: boolean, unroll = true): void {
  enabled = on;
  unrolling = unroll;
}

/** Float offsets of one call's regions in the module's memory. */
interface Layout {
  nb: number;
  Cg: number;
  Og: number;
  a: Conv2dArgs;
  ld: number;
  Hp: number;
  Wp: number;
  cols: number;
  pad: number;
  raw: number;
  /** The batched rows (Og, ld), and the same rows as NCHW images. */
  rows: number;
  rowsRaw: number;
}

let layout: Layout | null = null;
let heap: Float32Array<ArrayBufferLike> = new Float32Array(0);

const slackFloats = SLACK / 4;

/** The column matrix and the batched output (or dy) rows of one call, in wasm memory. */
export interface WasmBatch {
  /** (Cg*kH*kW, ld), ld = nb*OH*OW. */
  cols: Float32Array;
  /** (Og, ld): the forward GEMM's output, or the gathered dy. */
  rows: Float32Array;
}

/**
 * Sets up the column matrix of `nb` whole images (Cg input channels, Og output channels
 * each) and the batched rows in wasm memory, for the GEMM to read or write there; null
 * where these kernels do not apply (no WASM SIMD, switched off, a width stride other than
 * 1 or 2, memory that cannot grow): then the caller runs the TS path.
 */
export function wasmBatch(
  nb: number,
  Cg: number,
  Og: number,
  a: Conv2dArgs,
  ld: number,
): WasmBatch | null {
  layout = null;
  if (!enabled || (a.strideW !== 1 && a.strideW !== 2)) return null;
  const k = kernels();
  if (!k) return null;
  const K = Cg * a.kH * a.kW, OHW = a.outH * a.outW;
  const Hp = a.inH + 2 * a.padH, Wp = a.inW + 2 * a.padW;
  const cols = 0, pad = cols + K * ld + slackFloats;
  const raw = pad + nb * Cg * Hp * Wp + slackFloats;
  const rows = raw + nb * Cg * a.inH * a.inW + slackFloats, rowsRaw = rows + Og * ld;
  const end = rowsRaw + nb * Og * OHW;
  if (!growTo(k.memory, 4 * (end + slackFloats))) return null;
  if (heap.buffer !== k.memory.buffer) heap = new Float32Array(k.memory.buffer);
  layout = { nb, Cg, Og, a, ld, Hp, Wp, cols, pad, raw, rows, rowsRaw };
  return { cols: heap.subarray(cols, cols + K * ld), rows: heap.subarray(rows, rows + Og * ld) };
}

/**
 * Copies nb blocks of `block` floats between `arr` (block i from off(i)) and the heap
 * from `at`: one copy where the blocks lie end to end in arr (one channel group), else
 * one per block.
 */
function moveBlocks(
  arr: Float32Array,
  off: (i: number) => number,
  nb: number,
  block: number,
  at: number,
  toHeap: boolean,
) {
  const runs = nb > 1 && off(1) - off(0) === block ? 1 : nb;
  const len = block * (nb / runs);
  for (let i = 0; i < runs; i++) {
    const o = off(i), h = at + i * len;
    if (toHeap) heap.set(arr.subarray(o, o + len), h);
    else arr.set(heap.subarray(h, h + len), o);
  }
}

/** copyRows arguments between the batched rows (Og, ld) and NCHW images (Og, OH*OW). */
function rowsArgs(l: Layout, toBatched: boolean): number[] {
  const OHW = l.a.outH * l.a.outW, n4 = OHW >> 2, tail = OHW & 3;
  const batched = [4 * l.rows, 4 * l.ld, 4 * OHW],
    images = [4 * l.rowsRaw, 4 * OHW, 4 * l.Og * OHW];
  const [from, to] = toBatched ? [images, batched] : [batched, images];
  return [from[0], to[0], l.nb, l.Og, n4, tail, from[1], from[2], to[1], to[2]];
}

/**
 * dy of images i = 0..nb-1 (Og channels of OH*OW from srcOff(i)) into the batched rows
 * of the last wasmBatch call: row o holds channel o of every image side by side.
 */
export function gatherRows(src: Float32Array, srcOff: (i: number) => number): void {
  const l = layout!;
  moveBlocks(src, srcOff, l.nb, l.Og * l.a.outH * l.a.outW, l.rowsRaw, true);
  kernels()!.copyRows(...rowsArgs(l, true));
}

/** The batched rows of the last wasmBatch call (the GEMM's output) to NCHW images in dst. */
export function scatterRows(dst: Float32Array, dstOff: (i: number) => number): void {
  const l = layout!;
  kernels()!.copyRows(...rowsArgs(l, false));
  moveBlocks(dst, dstOff, l.nb, l.Og * l.a.outH * l.a.outW, l.rowsRaw, false);
}

function chunksOf(outW: number): number {
  return Math.ceil(outW / 4);
}

/** Arguments of copyRows between the raw images and the padded ones' interiors. */
function padArgs(l: Layout, toPadded: boolean): number[] {
  const { a, Hp, Wp } = l;
  const padded = 4 * (l.pad + a.padH * Wp + a.padW), raw = 4 * l.raw;
  const planes = l.nb * l.Cg, n4 = a.inW >> 2, tail = a.inW & 3;
  const rawRow = 4 * a.inW, rawPlane = rawRow * a.inH, padRow = 4 * Wp, padPlane = padRow * Hp;
  return toPadded
    ? [raw, padded, planes, a.inH, n4, tail, rawRow, rawPlane, padRow, padPlane]
    : [padded, raw, planes, a.inH, n4, tail, padRow, padPlane, rawRow, rawPlane];
}

function columnArgs(l: Layout): number[] {
  const { a, Hp, Wp } = l;
  const planeB = 4 * Hp * Wp;
  return [
    4 * l.pad,
    4 * l.cols,
    l.Cg,
    a.kH,
    a.kW,
    l.nb,
    a.outH,
    a.outW,
    chunksOf(a.outW),
    planeB,
    l.Cg * planeB,
    4 * Wp,
    4 * Wp * a.strideH,
    4 * a.outW,
    4 * l.ld,
  ];
}

/**
 * im2col of images i = 0..nb-1 (channels xOff(i) .. + Cg*inH*inW of x) into the matrix
 * of the last wasmBatch call.
 */
export function im2colImages(x: Float32Array, xOff: (i: number) => number): void {
  const l = layout!, k = kernels()!;
  moveBlocks(x, xOff, l.nb, l.Cg * l.a.inH * l.a.inW, l.raw, true);
  heap.fill(0, l.pad, l.pad + l.nb * l.Cg * l.Hp * l.Wp);
  k.copyRows(...padArgs(l, true));
  (unrolling ? columnsKernel(k, false, l) : k.im2col[l.a.strideW - 1])(...columnArgs(l));
}

/**
 * col2im of the matrix of the last wasmBatch call (the GEMM wrote it): image i's
 * gradient is written (not added) to dx from dxOff(i), Cg*inH*inW floats.
 */
export function col2imImages(dx: Float32Array, dxOff: (i: number) => number): void {
  const l = layout!, k = kernels()!;
  heap.fill(0, l.pad, l.pad + l.nb * l.Cg * l.Hp * l.Wp);
  (unrolling ? columnsKernel(k, true, l) : k.col2im[l.a.strideW - 1])(...columnArgs(l));
  k.copyRows(...padArgs(l, false));
  moveBlocks(dx, dxOff, l.nb, l.Cg * l.a.inH * l.a.inW, l.raw, false);
}
