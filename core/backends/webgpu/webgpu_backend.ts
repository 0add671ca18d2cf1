/**
 * The WebGPU backend: checks that storages are live and belong here, then hands them to
 * the kernel family that implements each method. All state (device, pools, the open
 * command encoder) lives in `GpuContext`.
 */

import {
  type AdamWArgs,
  type AttentionArgs,
  type AttentionRows,
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
import { adamw } from "./adamw.ts";
import { attention, attentionBackward } from "./attention.ts";
import { GpuStorage } from "./buffers.ts";
import type { GpuContext } from "./context.ts";
import { conv2d, conv2dBackwardInput, conv2dBackwardWeight } from "./conv.ts";
import * as ew from "./elementwise.ts";
import { gather, gatherCols, scatterAdd } from "./indexing.ts";
import { crossEntropy, crossEntropyBackward } from "./loss.ts";
import { matmul, type MatmulKernel } from "./matmul.ts";
import { groupNorm, groupNormBackward, layerNorm, layerNormBackward } from "./norm.ts";
import { avgPool2d, avgPool2dBackward, maxPool2d, maxPool2dBackward } from "./pool.ts";
import { dropout, normal, uniform } from "./random.ts";
import { reduce, sumSquares } from "./reduce.ts";
import { resize, resizeBackward } from "./resize.ts";
import { softmax, softmaxBackward } from "./softmax.ts";

export class WebGPUBackend implements Backend {
  readonly name = "webgpu";
  readonly description: string;
  /** True on a software (fallback) adapter such as llvmpipe/lavapipe. */
  readonly isFallbackAdapter: boolean;
  /** Set by the factory right after construction (the context needs the backend). */
  ctx!: GpuContext;

  constructor(description: string, isFallbackAdapter: boolean) {
    this.description = description;
    this.isFallbackAdapter = isFallbackAdapter;
  }

  /** A live storage of this backend, optionally of a given dtype. */
  #s(s: Storage, op: string, what: string, dtype?: DType): GpuStorage {
    if (!(s instanceof GpuStorage) || s.backend !== this) {
      throw new ShapeError(op, `${what} does not belong to this webgpu backend`);
    }
    if (s.released) throw new ShapeError(op, `${what} (${s.length} x ${s.dtype}) was released`);
    if (dtype && s.dtype !== dtype) {
      throw new ShapeError(op, `${what} must be ${dtype}, got ${s.dtype}`);
    }
    return s;
  }

  #f(s: Storage, op: string, what: string): GpuStorage {
    return this.#s(s, op, what, "f32");
  }

  #opt(s: Storage | null, op: string, what: string): GpuStorage | null {
    return s ? this.#f(s, op, what) : null;
  }

  #v(v: View, op: string, what: string): View {
    this.#s(v.storage, op, what);
    return v;
  }

  // ---- memory ----

  alloc(dtype: DType, length: number): Storage {
    return this.ctx.alloc(dtype, length, true);
  }

  fromHost(data: HostArray): Storage {
    if (!(data instanceof Float32Array) && !(data instanceof Int32Array)) {
      throw new ShapeError("fromHost", "data must be a Float32Array or an Int32Array");
    }
    return this.ctx.fromHost(data);
  }

  release(s: Storage): void {
    if (!(s instanceof GpuStorage) || s.backend !== this) {
      throw new ShapeError("release", "storage does not belong to this webgpu backend");
    }
    this.ctx.release(s);
  }

  liveStorages(): number {
    return this.ctx.liveStorages();
  }

  read(s: Storage): Promise<HostArray> {
    try {
      return this.ctx.read(this.#s(s, "read", "storage"));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  flush(): void {
    this.ctx.flush();
  }

  /** Resolves once all submitted work has finished (for timing). */
  sync(): Promise<void> {
    return this.ctx.sync();
  }

  /** Free the idle buffers kept in the pool (after submitting pending work). */
  trim(): void {
    this.ctx.trim();
  }

  /** Destroy pooled buffers and the device; the backend is unusable afterwards. */
  destroy(): void {
    this.ctx.trim();
    this.ctx.device.destroy();
  }

  // ---- layout ----

  fill(dtype: DType, length: number, value: number): Storage {
    return ew.fill(this.ctx, dtype, length, value);
  }

  copy(src: View): Storage {
    return ew.copy(this.ctx, this.#v(src, "copy", "src"));
  }

  copyInto(dst: View, src: View): void {
    ew.copyInto(this.ctx, this.#v(dst, "copyInto", "dst"), this.#v(src, "copyInto", "src"));
  }

  cast(x: Storage, to: DType): Storage {
    return ew.cast(this.ctx, this.#s(x, "cast", "x"), to);
  }

  arange(dtype: DType, length: number, start: number, step: number): Storage {
    return ew.arange(this.ctx, dtype, length, start, step);
  }

  // ---- elementwise ----

  unary(op: UnaryOp, x: Storage): Storage {
    return ew.unary(this.ctx, op, this.#s(x, `unary ${op}`, "x"));
  }

  binary(op: BinaryOp, a: View, b: View, outShape: readonly number[], outDtype: DType): Storage {
    const name = `binary ${op}`;
    return ew.binary(
      this.ctx,
      op,
      this.#v(a, name, "a"),
      this.#v(b, name, "b"),
      outShape,
      outDtype,
    );
  }

  where(cond: View, a: View, b: View, outShape: readonly number[]): Storage {
    return ew.where(
      this.ctx,
      this.#v(cond, "where", "cond"),
      this.#v(a, "where", "a"),
      this.#v(b, "where", "b"),
      outShape,
    );
  }

  affine(x: Storage, scale: number, shift: number): Storage {
    return ew.affine(this.ctx, this.#s(x, "affine", "x"), scale, shift);
  }

  powScalar(x: Storage, p: number): Storage {
    return ew.powScalar(this.ctx, this.#s(x, "powScalar", "x"), p);
  }

  clamp(x: Storage, lo: number, hi: number): Storage {
    return ew.clamp(this.ctx, this.#s(x, "clamp", "x"), lo, hi);
  }

  // ---- reductions ----

  reduce(op: ReduceOp, x: Storage, outer: number, axis: number, inner: number): Storage {
    if (axis === 0 && op !== "sum") {
      throw new ShapeError(`reduce ${op}`, `empty axis (outer ${outer}, inner ${inner})`);
    }
    return reduce(this.ctx, op, this.#s(x, `reduce ${op}`, "x"), outer, axis, inner);
  }

  // ---- linear algebra ----

  matmul(a: Storage, b: Storage, args: MatmulArgs): Storage {
    const { activation, scale, addend, ...product } = args;
    const rows = args.batch * args.M, N = args.N;
    if (scale && scale.length !== N) {
      throw new ShapeError("matmul", `scale has ${scale.length} elements, expected N=${N}`);
    }
    if (addend && addend.length !== rows * N) {
      throw new ShapeError("matmul", `addend has ${addend.length} elements, expected ${rows * N}`);
    }
    if (activation !== undefined && activation !== "gelu") {
      throw new ShapeError("matmul", `unknown activation ${activation}`);
    }
    const p = this.matmulWith("auto", a, b, product);
    // The epilogue addend + scale * act(p) through the elementwise kernels.
    let out = p;
    if (activation) {
      out = this.unary(activation, p);
      this.release(p);
    }
    if (!scale && !addend) return out;
    const shape = [rows, N];
    const matrix = (s: Storage): View => ({ storage: s, shape, strides: [N, 1], offset: 0 });
    if (scale) {
      const unscaled = out;
      out = this.binary(
        "mul",
        matrix(unscaled),
        { storage: scale, shape, strides: [0, 1], offset: 0 },
        shape,
        "f32",
      );
      this.release(unscaled);
    }
    if (addend) {
      const scaled = out;
      out = this.binary("add", matrix(addend), matrix(scaled), shape, "f32");
      this.release(scaled);
    }
    return out;
  }

  /** matmul with a chosen kernel ("naive" is the reference; "gemv" needs M = 1). */
  matmulWith(kind: MatmulKernel, a: Storage, b: Storage, args: MatmulArgs): Storage {
    const bias = args.bias ? this.#f(args.bias, "matmul", "bias") : undefined;
    if (bias && bias.length !== args.N) {
      throw new ShapeError("matmul", `bias has ${bias.length} elements, expected N=${args.N}`);
    }
    return matmul(
      this.ctx,
      this.#f(a, "matmul", "a"),
      this.#f(b, "matmul", "b"),
      { ...args, bias },
      kind,
    );
  }

  // ---- fused row-wise ops ----

  softmax(x: Storage, rows: number, cols: number, log: boolean): Storage {
    return softmax(this.ctx, this.#f(x, "softmax", "x"), rows, cols, log);
  }

  softmaxBackward(y: Storage, dy: Storage, rows: number, cols: number, log: boolean): Storage {
    const op = "softmaxBackward";
    return softmaxBackward(this.ctx, this.#f(y, op, "y"), this.#f(dy, op, "dy"), rows, cols, log);
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
    return layerNorm(
      this.ctx,
      this.#f(x, op, "x"),
      this.#opt(weight, op, "weight"),
      this.#opt(bias, op, "bias"),
      rows,
      cols,
      eps,
    );
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
    return layerNormBackward(
      this.ctx,
      this.#f(x, op, "x"),
      this.#opt(weight, op, "weight"),
      this.#f(mean, op, "mean"),
      this.#f(rstd, op, "rstd"),
      this.#f(dy, op, "dy"),
      rows,
      cols,
    );
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
    return groupNorm(
      this.ctx,
      this.#f(x, op, "x"),
      this.#opt(weight, op, "weight"),
      this.#opt(bias, op, "bias"),
      N,
      C,
      HW,
      groups,
      eps,
    );
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
    return groupNormBackward(
      this.ctx,
      this.#f(x, op, "x"),
      this.#opt(weight, op, "weight"),
      this.#f(mean, op, "mean"),
      this.#f(rstd, op, "rstd"),
      this.#f(dy, op, "dy"),
      N,
      C,
      HW,
      groups,
    );
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
    return crossEntropy(
      this.ctx,
      this.#f(logits, op, "logits"),
      this.#s(targets, op, "targets", "i32"),
      rows,
      cols,
      smoothing,
      ignoreIndex,
    );
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
    return crossEntropyBackward(
      this.ctx,
      this.#f(logp, op, "logp"),
      this.#s(targets, op, "targets", "i32"),
      this.#f(dloss, op, "dloss"),
      rows,
      cols,
      smoothing,
      ignoreIndex,
    );
  }

  // ---- indexing ----

  gather(table: Storage, idx: Storage, rows: number, cols: number): Storage {
    return gather(
      this.ctx,
      this.#s(table, "gather", "table"),
      this.#s(idx, "gather", "idx", "i32"),
      rows,
      cols,
    );
  }

  scatterAdd(src: Storage, idx: Storage, rows: number, cols: number): Storage {
    return scatterAdd(
      this.ctx,
      this.#s(src, "scatterAdd", "src"),
      this.#s(idx, "scatterAdd", "idx", "i32"),
      rows,
      cols,
    );
  }

  gatherCols(x: Storage, idx: Storage, rows: number, cols: number): Storage {
    return gatherCols(
      this.ctx,
      this.#s(x, "gatherCols", "x"),
      this.#s(idx, "gatherCols", "idx", "i32"),
      rows,
      cols,
    );
  }

  // ---- convolution, pooling, resizing ----

  conv2d(x: Storage, w: Storage, bias: Storage | null, args: Conv2dArgs): Storage {
    const op = "conv2d";
    return conv2d(
      this.ctx,
      this.#f(x, op, "x"),
      this.#f(w, op, "w"),
      this.#opt(bias, op, "bias"),
      args,
    );
  }

  conv2dBackwardInput(dy: Storage, w: Storage, args: Conv2dArgs): Storage {
    const op = "conv2dBackwardInput";
    return conv2dBackwardInput(this.ctx, this.#f(dy, op, "dy"), this.#f(w, op, "w"), args);
  }

  conv2dBackwardWeight(dy: Storage, x: Storage, args: Conv2dArgs): Storage {
    const op = "conv2dBackwardWeight";
    return conv2dBackwardWeight(this.ctx, this.#f(dy, op, "dy"), this.#f(x, op, "x"), args);
  }

  avgPool2d(x: Storage, args: Pool2dArgs): Storage {
    return avgPool2d(this.ctx, this.#f(x, "avgPool2d", "x"), args);
  }

  avgPool2dBackward(dy: Storage, args: Pool2dArgs): Storage {
    return avgPool2dBackward(this.ctx, this.#f(dy, "avgPool2dBackward", "dy"), args);
  }

  maxPool2d(x: Storage, args: Pool2dArgs): { y: Storage; argmax: Storage } {
    return maxPool2d(this.ctx, this.#f(x, "maxPool2d", "x"), args);
  }

  maxPool2dBackward(dy: Storage, argmax: Storage, args: Pool2dArgs): Storage {
    const op = "maxPool2dBackward";
    return maxPool2dBackward(
      this.ctx,
      this.#f(dy, op, "dy"),
      this.#s(argmax, op, "argmax", "i32"),
      args,
    );
  }

  resize(x: Storage, args: ResizeArgs): Storage {
    return resize(this.ctx, this.#f(x, "resize", "x"), args);
  }

  resizeBackward(dy: Storage, args: ResizeArgs): Storage {
    return resizeBackward(this.ctx, this.#f(dy, "resizeBackward", "dy"), args);
  }

  // ---- attention ----

  attention(
    q: Storage,
    k: Storage,
    v: Storage,
    args: AttentionArgs,
  ): { out: Storage; lse: Storage } {
    const op = "attention";
    const { inputs, tokenMajorOut, ...dense } = args;
    if (!inputs && !tokenMajorOut) {
      return attention(
        this.ctx,
        this.#f(q, op, "q"),
        this.#f(k, op, "k"),
        this.#f(v, op, "v"),
        args,
      );
    }
    // The kernel reads dense (B, H, T, D): strided operands and a token-major output go
    // through copies.
    const { batch: B, heads: H, Tq, Tk, headDim: D } = args;
    const gather = (s: Storage, rows: AttentionRows, T: number) =>
      this.copy({
        storage: s,
        shape: [B, H, T, D],
        strides: [rows.batch, rows.head, rows.row, 1],
        offset: rows.offset,
      });
    const [qd, kd, vd] = inputs
      ? [gather(q, inputs.q, Tq), gather(k, inputs.k, Tk), gather(v, inputs.v, Tk)]
      : [q, k, v];
    const r = attention(
      this.ctx,
      this.#f(qd, op, "q"),
      this.#f(kd, op, "k"),
      this.#f(vd, op, "v"),
      dense,
    );
    if (inputs) [qd, kd, vd].forEach((s) => this.release(s));
    if (!tokenMajorOut) return r;
    const out = this.copy({
      storage: r.out,
      shape: [B, Tq, H, D],
      strides: [H * Tq * D, D, Tq * D, 1],
      offset: 0,
    });
    this.release(r.out);
    return { out, lse: r.lse };
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
    if (args.inputs || args.tokenMajorOut) {
      throw new ShapeError(op, "takes dense (B, H, T, D) operands");
    }
    return attentionBackward(
      this.ctx,
      this.#f(q, op, "q"),
      this.#f(k, op, "k"),
      this.#f(v, op, "v"),
      this.#f(out, op, "out"),
      this.#f(lse, op, "lse"),
      this.#f(dout, op, "dout"),
      args,
    );
  }

  // ---- randomness ----

  uniform(length: number, seed: number, offset: number): Storage {
    return uniform(this.ctx, length, seed, offset);
  }

  normal(length: number, seed: number, offset: number): Storage {
    return normal(this.ctx, length, seed, offset);
  }

  dropout(x: Storage, p: number, seed: number, offset: number): { y: Storage; mask: Storage } {
    if (!(p >= 0 && p <= 1)) throw new ShapeError("dropout", `p must be in [0, 1], got ${p}`);
    return dropout(this.ctx, this.#f(x, "dropout", "x"), p, seed, offset);
  }

  // ---- optimiser ----

  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, args: AdamWArgs): void {
    const op = "adamw";
    adamw(
      this.ctx,
      this.#f(param, op, "param"),
      this.#f(grad, op, "grad"),
      this.#f(m, op, "m"),
      this.#f(v, op, "v"),
      args,
    );
  }

  sumSquares(x: Storage): Storage {
    return sumSquares(this.ctx, this.#f(x, "sumSquares", "x"));
  }
}
