/**
 * The CPU backend: typed arrays, eager kernels, OpenBLAS through FFI for the products
 * when the library is present (see `core/native/openblas.ts`), plain TypeScript otherwise.
 *
 * This file checks storages (live, right backend, dtype, size) and shapes, then hands
 * plain typed arrays to the kernels in the neighbouring files. Everything runs eagerly,
 * so `read` resolves at once and there is nothing to flush.
 */

import {
  type AdamWArgs,
  type AttentionArgs,
  type Backend,
  type BinaryOp,
  type Conv2dArgs,
  type DType,
  type HostArray,
  type MatmulArgs,
  type Pool2dArgs,
  type ReduceOp,
  type ResizeArgs,
  ShapeError,
  type Storage,
  type UnaryOp,
  type View,
} from "../../backend.ts";
import { blasDescription } from "../../native/openblas.ts";
import { attention, attentionBackward } from "./attention.ts";
import { conv2d, conv2dBackwardInput, conv2dBackwardWeight } from "./conv.ts";
import * as ew from "./elementwise.ts";
import { gather, gatherCols, scatterAdd } from "./indexing.ts";
import { crossEntropy, crossEntropyBackward } from "./loss.ts";
import { matmul } from "./matmul.ts";
import { groupNorm, groupNormBackward, layerNorm, layerNormBackward } from "./norm.ts";
import { adamw, sumSquares } from "./optim.ts";
import { avgPool2d, avgPool2dBackward, maxPool2d, maxPool2dBackward } from "./pool.ts";
import { dropout, normal, uniform } from "./random.ts";
import { reduce } from "./reduce.ts";
import { resize, resizeBackward } from "./resize.ts";
import { softmax, softmaxBackward } from "./softmax.ts";
import { arrayOf, CpuStorage, handOut, newArray, recycle } from "./storage.ts";
import { broadcastStrides, checkViewBounds, contiguousStrides } from "./strided.ts";

export { CpuStorage } from "./storage.ts";

function checkCount(op: string, name: string, value: number) {
  if (!Number.isInteger(value) || value < 0) {
    throw new ShapeError(op, `${name} must be a non-negative integer, got ${value}`);
  }
}

export class CpuBackend implements Backend {
  readonly name = "cpu";
  #live = 0;

  get description(): string {
    return `cpu: ${blasDescription()}`;
  }

  // ---- memory ----

  #wrap(data: HostArray): CpuStorage {
    this.#live++;
    return new CpuStorage(this, data);
  }

  /** The live array of `s`, checked for this backend, dtype and minimum length. */
  #arr(s: Storage, op: string, name: string, dtype?: DType, minLength?: number): HostArray {
    return arrayOf(this, s, op, name, dtype, minLength);
  }

  #f32(s: Storage, op: string, name: string, minLength?: number): Float32Array {
    return this.#arr(s, op, name, "f32", minLength) as Float32Array;
  }

  #i32(s: Storage, op: string, name: string, minLength?: number): Int32Array {
    return this.#arr(s, op, name, "i32", minLength) as Int32Array;
  }

  /** Checks a view's storage and bounds against `shape`, returning it as a kernel operand. */
  #operand(v: View, shape: readonly number[], op: string, name: string): ew.Operand {
    const data = this.#arr(v.storage, op, name);
    checkViewBounds(op, name, v, v.shape);
    return { data, strides: broadcastStrides(op, name, v, shape), offset: v.offset };
  }

  alloc(dtype: DType, length: number): Storage {
    return this.#wrap(newArray(dtype, length));
  }

  fromHost(data: HostArray): Storage {
    if (!(data instanceof Float32Array) && !(data instanceof Int32Array)) {
      throw new ShapeError("fromHost", "data must be a Float32Array or an Int32Array");
    }
    return this.#wrap(data.slice());
  }

  release(s: Storage): void {
    if (!(s instanceof CpuStorage) || s.backend !== this) {
      throw new ShapeError("release", "storage does not belong to this cpu backend");
    }
    const data = s.alive ? s.data : null;
    if (!s.kill()) {
      throw new ShapeError("release", `storage (${s.dtype}, ${s.length} elements) released twice`);
    }
    this.#live--;
    if (data) recycle(data);
  }

  liveStorages(): number {
    return this.#live;
  }

  read(s: Storage): Promise<HostArray> {
    try {
      return Promise.resolve(this.readSync(s));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** The storage's own array (not a copy): treat it as read-only. */
  readSync(s: Storage): HostArray {
    return handOut(this.#arr(s, "read", "storage"));
  }

  flush(): void {}

  // ---- layout ----

  fill(dtype: DType, length: number, value: number): Storage {
    return this.#wrap(ew.fill(dtype, length, value));
  }

  copy(src: View): Storage {
    return this.#wrap(ew.copy(this.#operand(src, src.shape, "copy", "src"), src.shape));
  }

  copyInto(dst: View, src: View): void {
    const target = this.#operand(dst, dst.shape, "copyInto", "dst");
    let source = this.#operand(src, dst.shape, "copyInto", "src");
    if (src.storage === dst.storage) {
      // Overlapping windows of one storage: read everything before writing.
      source = {
        data: ew.copy(source, dst.shape),
        strides: contiguousStrides(dst.shape),
        offset: 0,
      };
    }
    ew.copyStrided(target, source, dst.shape);
  }

  cast(x: Storage, to: DType): Storage {
    return this.#wrap(ew.cast(this.#arr(x, "cast", "x"), to));
  }

  arange(dtype: DType, length: number, start: number, step: number): Storage {
    return this.#wrap(ew.arange(dtype, length, start, step));
  }

  // ---- elementwise ----

  unary(op: UnaryOp, x: Storage): Storage {
    return this.#wrap(ew.unary(op, this.#arr(x, `unary ${op}`, "x")));
  }

  binary(op: BinaryOp, a: View, b: View, outShape: readonly number[], outDtype: DType): Storage {
    const name = `binary ${op}`;
    return this.#wrap(
      ew.binary(
        op,
        this.#operand(a, outShape, name, "a"),
        this.#operand(b, outShape, name, "b"),
        outShape,
        outDtype,
      ),
    );
  }

  where(cond: View, a: View, b: View, outShape: readonly number[]): Storage {
    return this.#wrap(ew.where(
      this.#operand(cond, outShape, "where", "cond"),
      this.#operand(a, outShape, "where", "a"),
      this.#operand(b, outShape, "where", "b"),
      outShape,
    ));
  }

  affine(x: Storage, scale: number, shift: number): Storage {
    return this.#wrap(ew.affine(this.#arr(x, "affine", "x"), scale, shift));
  }

  powScalar(x: Storage, p: number): Storage {
    return this.#wrap(ew.powScalar(this.#arr(x, "powScalar", "x"), p));
  }

  clamp(x: Storage, lo: number, hi: number): Storage {
    return this.#wrap(ew.clamp(this.#arr(x, "clamp", "x"), lo, hi));
  }

  // ---- reductions ----

  reduce(op: ReduceOp, x: Storage, outer: number, axis: number, inner: number): Storage {
    for (const [k, v] of Object.entries({ outer, axis, inner })) checkCount(`reduce ${op}`, k, v);
    const data = this.#arr(x, `reduce ${op}`, "x", undefined, outer * axis * inner);
    return this.#wrap(reduce(op, data, outer, axis, inner));
  }

  // ---- linear algebra ----

  matmul(a: Storage, b: Storage, args: MatmulArgs): Storage {
    const op = "matmul";
    const epilogue = {
      bias: args.bias ? this.#f32(args.bias, op, "bias", args.N) : undefined,
      activation: args.activation,
      scale: args.scale ? this.#f32(args.scale, op, "scale", args.N) : undefined,
      addend: args.addend ? this.#f32(args.addend, op, "addend") : undefined,
    };
    return this.#wrap(matmul(this.#f32(a, op, "a"), this.#f32(b, op, "b"), args, epilogue));
  }

  // ---- fused row-wise ops ----

  softmax(x: Storage, rows: number, cols: number, log: boolean): Storage {
    return this.#wrap(softmax(this.#f32(x, "softmax", "x", rows * cols), rows, cols, log));
  }

  softmaxBackward(y: Storage, dy: Storage, rows: number, cols: number, log: boolean): Storage {
    const op = "softmaxBackward";
    const n = rows * cols;
    return this.#wrap(
      softmaxBackward(this.#f32(y, op, "y", n), this.#f32(dy, op, "dy", n), rows, cols, log),
    );
  }

  layerNorm(
    x: Storage,
    weight: Storage | null,
    bias: Storage | null,
    rows: number,
    cols: number,
    eps: number,
  ): { y: Storage; mean: Storage; rstd: Storage } {
    const op = "layerNorm";
    const r = layerNorm(
      this.#f32(x, op, "x", rows * cols),
      weight ? this.#f32(weight, op, "weight", cols) : null,
      bias ? this.#f32(bias, op, "bias", cols) : null,
      rows,
      cols,
      eps,
    );
    return { y: this.#wrap(r.y), mean: this.#wrap(r.mean), rstd: this.#wrap(r.rstd) };
  }

  layerNormBackward(
    x: Storage,
    weight: Storage | null,
    mean: Storage,
    rstd: Storage,
    dy: Storage,
    rows: number,
    cols: number,
  ): { dx: Storage; dweight: Storage; dbias: Storage } {
    const op = "layerNormBackward";
    const r = layerNormBackward(
      this.#f32(x, op, "x", rows * cols),
      weight ? this.#f32(weight, op, "weight", cols) : null,
      this.#f32(mean, op, "mean", rows),
      this.#f32(rstd, op, "rstd", rows),
      this.#f32(dy, op, "dy", rows * cols),
      rows,
      cols,
    );
    return { dx: this.#wrap(r.dx), dweight: this.#wrap(r.dweight), dbias: this.#wrap(r.dbias) };
  }

  groupNorm(
    x: Storage,
    weight: Storage | null,
    bias: Storage | null,
    N: number,
    C: number,
    HW: number,
    groups: number,
    eps: number,
  ): { y: Storage; mean: Storage; rstd: Storage } {
    const op = "groupNorm";
    checkGroups(op, C, groups);
    const r = groupNorm(
      this.#f32(x, op, "x", N * C * HW),
      weight ? this.#f32(weight, op, "weight", C) : null,
      bias ? this.#f32(bias, op, "bias", C) : null,
      N,
      C,
      HW,
      groups,
      eps,
    );
    return { y: this.#wrap(r.y), mean: this.#wrap(r.mean), rstd: this.#wrap(r.rstd) };
  }

  groupNormBackward(
    x: Storage,
    weight: Storage | null,
    mean: Storage,
    rstd: Storage,
    dy: Storage,
    N: number,
    C: number,
    HW: number,
    groups: number,
  ): { dx: Storage; dweight: Storage; dbias: Storage } {
    const op = "groupNormBackward";
    checkGroups(op, C, groups);
    const r = groupNormBackward(
      this.#f32(x, op, "x", N * C * HW),
      weight ? this.#f32(weight, op, "weight", C) : null,
      this.#f32(mean, op, "mean", N * groups),
      this.#f32(rstd, op, "rstd", N * groups),
      this.#f32(dy, op, "dy", N * C * HW),
      N,
      C,
      HW,
      groups,
    );
    return { dx: this.#wrap(r.dx), dweight: this.#wrap(r.dweight), dbias: this.#wrap(r.dbias) };
  }

  crossEntropy(
    logits: Storage,
    targets: Storage,
    rows: number,
    cols: number,
    smoothing: number,
    ignoreIndex: number,
  ): { loss: Storage; logp: Storage } {
    const op = "crossEntropy";
    const r = crossEntropy(
      this.#f32(logits, op, "logits", rows * cols),
      this.#i32(targets, op, "targets", rows),
      rows,
      cols,
      smoothing,
      ignoreIndex,
    );
    return { loss: this.#wrap(r.loss), logp: this.#wrap(r.logp) };
  }

  crossEntropyBackward(
    logp: Storage,
    targets: Storage,
    dloss: Storage,
    rows: number,
    cols: number,
    smoothing: number,
    ignoreIndex: number,
  ): Storage {
    const op = "crossEntropyBackward";
    return this.#wrap(crossEntropyBackward(
      this.#f32(logp, op, "logp", rows * cols),
      this.#i32(targets, op, "targets", rows),
      this.#f32(dloss, op, "dloss", rows),
      rows,
      cols,
      smoothing,
      ignoreIndex,
    ));
  }

  // ---- indexing ----

  gather(table: Storage, idx: Storage, rows: number, cols: number): Storage {
    return this.#wrap(gather(
      this.#arr(table, "gather", "table", undefined, rows * cols),
      this.#i32(idx, "gather", "idx"),
      rows,
      cols,
    ));
  }

  scatterAdd(src: Storage, idx: Storage, rows: number, cols: number): Storage {
    const index = this.#i32(idx, "scatterAdd", "idx");
    const data = this.#arr(src, "scatterAdd", "src", undefined, index.length * cols);
    return this.#wrap(scatterAdd(data, index, rows, cols));
  }

  gatherCols(x: Storage, idx: Storage, rows: number, cols: number): Storage {
    return this.#wrap(gatherCols(
      this.#arr(x, "gatherCols", "x", undefined, rows * cols),
      this.#i32(idx, "gatherCols", "idx", rows),
      rows,
      cols,
    ));
  }

  // ---- convolution, pooling, resizing ----

  conv2d(x: Storage, w: Storage, bias: Storage | null, args: Conv2dArgs): Storage {
    const op = "conv2d";
    return this.#wrap(conv2d(
      this.#f32(x, op, "x"),
      this.#f32(w, op, "w"),
      bias ? this.#f32(bias, op, "bias", args.outC) : null,
      args,
    ));
  }

  conv2dBackwardInput(dy: Storage, w: Storage, args: Conv2dArgs): Storage {
    const op = "conv2dBackwardInput";
    return this.#wrap(conv2dBackwardInput(this.#f32(dy, op, "dy"), this.#f32(w, op, "w"), args));
  }

  conv2dBackwardWeight(dy: Storage, x: Storage, args: Conv2dArgs): Storage {
    const op = "conv2dBackwardWeight";
    return this.#wrap(conv2dBackwardWeight(this.#f32(dy, op, "dy"), this.#f32(x, op, "x"), args));
  }

  avgPool2d(x: Storage, args: Pool2dArgs): Storage {
    return this.#wrap(avgPool2d(this.#f32(x, "avgPool2d", "x", poolIn(args)), args));
  }

  avgPool2dBackward(dy: Storage, args: Pool2dArgs): Storage {
    return this.#wrap(
      avgPool2dBackward(this.#f32(dy, "avgPool2dBackward", "dy", poolOut(args)), args),
    );
  }

  maxPool2d(x: Storage, args: Pool2dArgs): { y: Storage; argmax: Storage } {
    const r = maxPool2d(this.#f32(x, "maxPool2d", "x", poolIn(args)), args);
    return { y: this.#wrap(r.y), argmax: this.#wrap(r.argmax) };
  }

  maxPool2dBackward(dy: Storage, argmax: Storage, args: Pool2dArgs): Storage {
    const op = "maxPool2dBackward";
    return this.#wrap(maxPool2dBackward(
      this.#f32(dy, op, "dy", poolOut(args)),
      this.#i32(argmax, op, "argmax", poolOut(args)),
      args,
    ));
  }

  resize(x: Storage, args: ResizeArgs): Storage {
    return this.#wrap(resize(this.#f32(x, "resize", "x", args.planes * args.inH * args.inW), args));
  }

  resizeBackward(dy: Storage, args: ResizeArgs): Storage {
    const n = args.planes * args.outH * args.outW;
    return this.#wrap(resizeBackward(this.#f32(dy, "resizeBackward", "dy", n), args));
  }

  // ---- attention ----

  attention(
    q: Storage,
    k: Storage,
    v: Storage,
    args: AttentionArgs,
  ): { out: Storage; lse: Storage } {
    const op = "attention";
    const r = attention(this.#f32(q, op, "q"), this.#f32(k, op, "k"), this.#f32(v, op, "v"), args);
    return { out: this.#wrap(r.out), lse: this.#wrap(r.lse) };
  }

  attentionBackward(
    q: Storage,
    k: Storage,
    v: Storage,
    out: Storage,
    lse: Storage,
    dout: Storage,
    args: AttentionArgs,
  ): { dq: Storage; dk: Storage; dv: Storage } {
    const op = "attentionBackward";
    const r = attentionBackward(
      this.#f32(q, op, "q"),
      this.#f32(k, op, "k"),
      this.#f32(v, op, "v"),
      this.#f32(out, op, "out"),
      this.#f32(lse, op, "lse"),
      this.#f32(dout, op, "dout"),
      args,
    );
    return { dq: this.#wrap(r.dq), dk: this.#wrap(r.dk), dv: this.#wrap(r.dv) };
  }

  // ---- randomness ----

  uniform(length: number, seed: number, offset: number): Storage {
    checkCount("uniform", "length", length);
    return this.#wrap(uniform(length, seed, offset));
  }

  normal(length: number, seed: number, offset: number): Storage {
    checkCount("normal", "length", length);
    return this.#wrap(normal(length, seed, offset));
  }

  dropout(x: Storage, p: number, seed: number, offset: number): { y: Storage; mask: Storage } {
    if (!(p >= 0 && p <= 1)) throw new ShapeError("dropout", `p must be in [0, 1], got ${p}`);
    const r = dropout(this.#f32(x, "dropout", "x"), p, seed, offset);
    return { y: this.#wrap(r.y), mask: this.#wrap(r.mask) };
  }

  // ---- optimiser ----

  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, args: AdamWArgs): void {
    const op = "adamw";
    const p = this.#f32(param, op, "param");
    const n = p.length;
    const arrays = [this.#f32(grad, op, "grad"), this.#f32(m, op, "m"), this.#f32(v, op, "v")];
    for (const [i, name] of ["grad", "m", "v"].entries()) {
      if (arrays[i].length !== n) {
        throw new ShapeError(op, `${name} has ${arrays[i].length} elements, param has ${n}`);
      }
    }
    adamw(p, arrays[0], arrays[1], arrays[2], args);
  }

  sumSquares(x: Storage): Storage {
    return this.#wrap(Float32Array.of(sumSquares(this.#f32(x, "sumSquares", "x"))));
  }
}

function checkGroups(op: string, C: number, groups: number) {
  if (!Number.isInteger(groups) || groups < 1 || C % groups !== 0) {
    throw new ShapeError(op, `groups ${groups} must be a positive divisor of C=${C}`);
  }
}

function poolIn(a: Pool2dArgs): number {
  return a.batch * a.channels * a.inH * a.inW;
}

function poolOut(a: Pool2dArgs): number {
  return a.batch * a.channels * a.outH * a.outW;
}
