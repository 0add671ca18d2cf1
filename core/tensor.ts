/**
 * Tensor: a shaped, strided window onto a reference-counted backend storage, plus the
 * autograd link to the op that made it.
 *
 * Memory is managed by scopes: `tidy(fn)` disposes every tensor created inside `fn`
 * that `fn` does not return, and frees the autograd graph nodes nobody can reach any
 * more. Tensors made outside any scope (parameters, optimiser state) live until
 * `dispose()`. A FinalizationRegistry releases storages of forgotten tensors as a
 * safety net, but tests assert on `liveStorages()` so leaks are caught, not hidden.
 */

import type { Backend, DType, HostArray, Storage, View } from "./backend.ts";
import { ShapeError } from "./backend.ts";
import { defaultBackend } from "./device.ts";
import * as ops from "./ops/mod.ts";
import type { Node } from "./autograd.ts";

/** A storage shared by views; released when the last view lets go. */
export class SharedStorage {
  /** Live references; the storage is released when this reaches 0. */
  refs = 1;
  /** Takes ownership of `storage` with one reference. */
  constructor(readonly storage: Storage) {}
  /** Add a reference (throws once the storage has been released). */
  retain(): this {
    if (this.refs <= 0) throw new Error("tensor: storage used after release");
    this.refs++;
    return this;
  }
  /** Drop a reference; the last one releases the storage. */
  releaseRef(): void {
    if (--this.refs === 0) this.storage.backend.release(this.storage);
  }
}

// ---------------------------------------------------------------- scopes

interface Scope {
  tensors: Set<Tensor>;
  nodes: Set<Node>;
}

const scopeStack: Scope[] = [];

function currentScope(): Scope | undefined {
  return scopeStack[scopeStack.length - 1];
}

/** Register a graph node with the innermost scope (autograd calls this). */
export function trackNode(node: Node): void {
  currentScope()?.nodes.add(node);
}

const finalizer = new FinalizationRegistry<SharedStorage>((s) => {
  if (s.refs > 0) s.releaseRef();
});

// ---------------------------------------------------------------- shape helpers

import { contiguousStrides, sizeOf } from "./shape.ts";
export { contiguousStrides, sizeOf };

/** A shape as printed in error messages, e.g. `[2, 3]`. */
export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

// ---------------------------------------------------------------- tensor

/**
 * An n-dimensional array on a backend, with autograd. Shape, strides and dtype never change; ops
 * return new tensors.
 */
export class Tensor {
  /** Size of each axis. */
  readonly shape: readonly number[];
  /** Element stride of each axis within the storage. */
  readonly strides: readonly number[];
  /** Index of the first element within the storage. */
  readonly offset: number;
  /** Element type (that of the storage). */
  readonly dtype: DType;
  /** True when gradients should flow to this tensor. */
  requiresGrad = false;
  /** Accumulated gradient (leaves only). */
  grad: Tensor | null = null;
  /** The op that produced this tensor, for autograd. */
  node: Node | null = null;
  /** Optional label used in error messages and state dicts. */
  name = "";
  #shared: SharedStorage | null;

  /** A handle on `shared` (which it takes one reference of); strides default to contiguous. */
  constructor(
    shared: SharedStorage,
    shape: readonly number[],
    strides?: readonly number[],
    offset = 0,
  ) {
    this.#shared = shared;
    this.shape = shape;
    this.strides = strides ?? contiguousStrides(shape);
    this.offset = offset;
    this.dtype = shared.storage.dtype;
    currentScope()?.tensors.add(this);
    finalizer.register(this, shared, this);
  }

  /** Wrap a fresh storage (refcount 1) as a contiguous tensor. */
  static fromStorage(storage: Storage, shape: readonly number[]): Tensor {
    if (storage.length !== sizeOf(shape)) {
      throw new ShapeError(
        "tensor",
        `storage has ${storage.length} elements, shape ${shapeStr(shape)} needs ${sizeOf(shape)}`,
      );
    }
    return new Tensor(new SharedStorage(storage), shape);
  }

  /** The backend that holds the data. */
  get backend(): Backend {
    return this.shared.storage.backend;
  }
  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }
  /** Number of axes. */
  get ndim(): number {
    return this.shape.length;
  }
  /** True after `dispose()`. */
  get disposed(): boolean {
    return this.#shared === null;
  }

  /** The reference-counted storage; throws after `dispose()`. */
  get shared(): SharedStorage {
    if (!this.#shared) {
      throw new Error(
        `tensor${this.name ? ` '${this.name}'` : ""} ${shapeStr(this.shape)} used after dispose()`,
      );
    }
    return this.#shared;
  }

  /** The storage, which must be laid out contiguously from offset 0. */
  get storage(): Storage {
    if (!this.isContiguous() || this.offset !== 0 || this.shared.storage.length !== this.size) {
      throw new Error(
        "tensor: storage of a non-contiguous view requested; call contiguous() first",
      );
    }
    return this.shared.storage;
  }

  /** The strided window this tensor reads, for kernels that accept one. */
  view(): View {
    return {
      storage: this.shared.storage,
      shape: this.shape,
      strides: this.strides,
      offset: this.offset,
    };
  }

  /**
   * True when the elements are laid out row-major without gaps (size-1 axes may have any stride).
   */
  isContiguous(): boolean {
    let s = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== s) return false;
      s *= this.shape[i];
    }
    return true;
  }

  /** A new tensor handle over the same storage (own reference). */
  alias(shape = this.shape, strides = this.strides, offset = this.offset): Tensor {
    return new Tensor(this.shared.retain(), shape, strides, offset);
  }

  /** Release this handle's reference to the storage; idempotent. */
  dispose(): void {
    const s = this.#shared;
    if (!s) return;
    this.#shared = null;
    finalizer.unregister(this);
    s.releaseRef();
    for (const scope of scopeStack) scope.tensors.delete(this);
  }

  /** Exempt from the current tidy scope (it survives the scope's end). */
  keep(): this {
    for (const scope of scopeStack) scope.tensors.delete(this);
    return this;
  }

  /** Mark as a trainable leaf. */
  requireGrad(on = true): this {
    if (on && this.dtype !== "f32") {
      throw new Error(`tensor: only f32 tensors can require grad, got ${this.dtype}`);
    }
    this.requiresGrad = on;
    return this;
  }

  // ---- host transfer ----
  /** Copy the elements to the host, in row-major order. */
  async data(): Promise<HostArray> {
    const c = this.isContiguous() && this.offset === 0 && this.shared.storage.length === this.size
      ? this
      : ops.contiguous(this);
    const out = await c.backend.read(c.storage);
    if (c !== this) c.dispose();
    return out;
  }

  /** Synchronous read (CPU backend only). */
  dataSync(): HostArray {
    const b = this.backend;
    if (!b.readSync) {
      throw new Error(
        `tensor: dataSync() is not available on the ${b.name} backend; use await data()`,
      );
    }
    const c = this.isContiguous() && this.offset === 0 && this.shared.storage.length === this.size
      ? this
      : ops.contiguous(this);
    const out = b.readSync(c.storage);
    if (c !== this) {
      const copy = out.slice();
      c.dispose();
      return copy;
    }
    return out;
  }

  /** The value of a 1-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new ShapeError("item", `expected a 1-element tensor, got ${shapeStr(this.shape)}`);
    }
    return (await this.data())[0];
  }

  /** Copy to another backend. */
  async to(backend: Backend): Promise<Tensor> {
    if (backend === this.backend) return this.alias();
    const host = await this.data();
    return Tensor.fromStorage(backend.fromHost(host), this.shape);
  }

  /** Shape, dtype and backend, e.g. `Tensor([2, 3], f32, cpu)`. */
  toString(): string {
    return `Tensor(${shapeStr(this.shape)}, ${this.dtype}, ${this.backend.name})`;
  }

  // ---- fluent op methods (implemented in core/ops) ----
  /** `this + o`, broadcasting. */
  add(o: Tensor | number): Tensor {
    return ops.add(this, o);
  }
  /** `this - o`, broadcasting. */
  sub(o: Tensor | number): Tensor {
    return ops.sub(this, o);
  }
  /** `this * o`, broadcasting. */
  mul(o: Tensor | number): Tensor {
    return ops.mul(this, o);
  }
  /** `this / o`, broadcasting. */
  div(o: Tensor | number): Tensor {
    return ops.div(this, o);
  }
  /** `this ** p` for a constant exponent. */
  pow(p: number): Tensor {
    return ops.powScalar(this, p);
  }
  /** `-this`. */
  neg(): Tensor {
    return ops.neg(this);
  }
  /** Elementwise `e ** x`. */
  exp(): Tensor {
    return ops.exp(this);
  }
  /** Elementwise natural logarithm. */
  log(): Tensor {
    return ops.log(this);
  }
  /** Elementwise square root. */
  sqrt(): Tensor {
    return ops.sqrt(this);
  }
  /** Elementwise `1 / sqrt(x)`. */
  rsqrt(): Tensor {
    return ops.rsqrt(this);
  }
  /** Elementwise hyperbolic tangent. */
  tanh(): Tensor {
    return ops.tanh(this);
  }
  /** Elementwise logistic sigmoid. */
  sigmoid(): Tensor {
    return ops.sigmoid(this);
  }
  /** Elementwise `x * sigmoid(x)`. */
  silu(): Tensor {
    return ops.silu(this);
  }
  /** Elementwise GELU (exact erf form). */
  gelu(): Tensor {
    return ops.gelu(this);
  }
  /** Elementwise `max(x, 0)`. */
  relu(): Tensor {
    return ops.relu(this);
  }
  /** Elementwise absolute value. */
  abs(): Tensor {
    return ops.abs(this);
  }
  /** Elementwise `x * x`. */
  square(): Tensor {
    return ops.square(this);
  }
  /** Matrix product with batch broadcasting, as `ops.matmul`. */
  matmul(o: Tensor): Tensor {
    return ops.matmul(this, o);
  }
  /** Sum over `axis` (all axes when omitted). */
  sum(axis?: number | number[], keepdim = false): Tensor {
    return ops.sum(this, axis, keepdim);
  }
  /** Mean over `axis` (all axes when omitted). */
  mean(axis?: number | number[], keepdim = false): Tensor {
    return ops.mean(this, axis, keepdim);
  }
  /** Maximum along `axis`. */
  max(axis: number, keepdim = false): Tensor {
    return ops.max(this, axis, keepdim);
  }
  /** Index of the maximum along `axis` (i32). */
  argmax(axis: number, keepdim = false): Tensor {
    return ops.argmax(this, axis, keepdim);
  }
  /** Same elements in a new shape; one axis may be -1 (a view when dense, else a copy). */
  reshape(...shape: number[]): Tensor {
    return ops.reshape(this, shape);
  }
  /** Axes reordered as `dims`. */
  permute(...dims: number[]): Tensor {
    return ops.permute(this, dims);
  }
  /** Axes `a` and `b` swapped (by default the last two). */
  transpose(a = -2, b = -1): Tensor {
    return ops.transpose(this, a, b);
  }
  /** Elements `start` to `end` (exclusive) along `axis`. */
  slice(axis: number, start: number, end: number): Tensor {
    return ops.slice(this, axis, start, end);
  }
  /** Broadcast size-1 axes to `shape` without copying. */
  expand(...shape: number[]): Tensor {
    return ops.expand(this, shape);
  }
  /** A row-major copy (what kernels that need dense input read). */
  contiguous(): Tensor {
    return ops.contiguous(this);
  }
  /** Elementwise conversion to `dtype`. */
  cast(dtype: DType): Tensor {
    return ops.cast(this, dtype);
  }
  /** Softmax along `axis`. */
  softmax(axis = -1): Tensor {
    return ops.softmax(this, axis);
  }
  /** Log-softmax along `axis`. */
  logSoftmax(axis = -1): Tensor {
    return ops.logSoftmax(this, axis);
  }
  /** A handle on the same storage with no autograd history. */
  detach(): Tensor {
    return this.alias();
  }
}

// ---------------------------------------------------------------- scope API

/**
 * Run `fn` in a memory scope: tensors it creates and does not return are disposed,
 * and graph nodes unreachable from the returned tensors are freed.
 *
 * @example
 * ```ts
 * import { liveStorages, ops, tidy } from "@digit-ts/digit";
 *
 * const before = liveStorages();
 * const norm = tidy(() => ops.tensor([3, 4]).square().sum().sqrt());
 * // The input, its square and the sum are freed; only the returned tensor stays.
 * console.log(await norm.item(), liveStorages() - before); // 5 1
 * norm.dispose();
 * ```
 */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = { tensors: new Set(), nodes: new Set() };
  scopeStack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopeStack.pop();
    closeScope(scope, []);
    throw e;
  }
  scopeStack.pop();
  if (result instanceof Promise) {
    throw new Error("tidy: the function returned a Promise; use tidyAsync for async work");
  }
  closeScope(scope, collectTensors(result));
  return result;
}

/** Async variant of tidy; do not interleave two tidyAsync scopes concurrently. */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope: Scope = { tensors: new Set(), nodes: new Set() };
  scopeStack.push(scope);
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    removeScope(scope);
    closeScope(scope, []);
    throw e;
  }
  removeScope(scope);
  closeScope(scope, collectTensors(result));
  return result;
}

function removeScope(scope: Scope): void {
  const i = scopeStack.lastIndexOf(scope);
  if (i >= 0) scopeStack.splice(i, 1);
}

function collectTensors(value: unknown, out: Tensor[] = [], depth = 0): Tensor[] {
  if (value instanceof Tensor) out.push(value);
  else if (depth < 4 && Array.isArray(value)) {
    for (const v of value) collectTensors(v, out, depth + 1);
  } else if (depth < 4 && value instanceof Map) {
    for (const v of value.values()) collectTensors(v, out, depth + 1);
  } else if (
    depth < 4 && value && typeof value === "object" &&
    Object.getPrototypeOf(value) === Object.prototype
  ) {
    for (const v of Object.values(value)) collectTensors(v, out, depth + 1);
  }
  return out;
}

function closeScope(scope: Scope, kept: Tensor[]): void {
  const parent = currentScope();
  const keep = new Set(kept);
  // Nodes reachable from kept tensors must survive (a later backward needs them).
  const reachable = new Set<Node>();
  const stack: Node[] = [];
  for (const t of kept) if (t.node) stack.push(t.node);
  while (stack.length) {
    const n = stack.pop()!;
    if (reachable.has(n)) continue;
    reachable.add(n);
    for (const i of n.inputs) if (i?.node) stack.push(i.node);
  }
  for (const n of scope.nodes) {
    if (reachable.has(n)) parent?.nodes.add(n);
    else n.free();
  }
  for (const t of scope.tensors) {
    if (keep.has(t)) parent?.tensors.add(t);
    else t.dispose();
  }
}

/** Total live storages on a backend (or the default one): for leak tests. */
export function liveStorages(backend: Backend = defaultBackend()): number {
  return backend.liveStorages();
}
