/**
 * The contract between the tensor front end (`core/tensor.ts`) and a device.
 *
 * A backend owns opaque storages and runs kernels on them. It knows nothing about
 * autograd, broadcasting rules or modules: the front end turns every op into one or
 * more of the kernels below, with explicit shapes. Kernels are enqueued in call order;
 * `read` resolves after everything enqueued before it has run. Every kernel returns
 * fresh storages (except `adamw`, which updates its state in place) so that a backend
 * may defer work (WebGPU batches dispatches into one command encoder).
 *
 * Two backends implement this: `cpu` (OpenBLAS through FFI when present, plain TS
 * otherwise) and `webgpu` (WGSL through Deno's `navigator.gpu`).
 */

/** Element type of a storage: 32-bit float or 32-bit signed integer. */
export type DType = "f32" | "i32";
/** The host array type that holds elements of dtype `D`. */
export type TypedArrayFor<D extends DType> = D extends "f32" ? Float32Array : Int32Array;
/** A host-side copy of a storage's elements. */
export type HostArray = Float32Array | Int32Array;

/** An opaque device allocation. Only its backend looks inside. */
export interface Storage {
  /** The backend that allocated this storage and alone may read it. */
  readonly backend: Backend;
  /** Element type. */
  readonly dtype: DType;
  /** Number of elements. */
  readonly length: number;
}

/** A strided window onto a storage; used where kernels accept non-contiguous input. */
export interface View {
  /** The storage the view reads from. */
  storage: Storage;
  /** Shape of the window. */
  shape: readonly number[];
  /** Element stride per axis (0 repeats the axis, for broadcasting). */
  strides: readonly number[];
  /** Index of the window's first element in the storage. */
  offset: number;
}

/** Elementwise one-input kernels. */
export type UnaryOp =
  | "neg"
  | "abs"
  | "exp"
  | "log"
  | "sqrt"
  | "rsqrt"
  | "tanh"
  | "sigmoid"
  | "silu"
  | "gelu"
  | "relu"
  | "sin"
  | "cos"
  | "square"
  | "reciprocal"
  | "floor"
  | "sign"
  /** d/dx gelu(x) (exact erf form); used by the GELU backward. */
  | "gelu_grad"
  /** d/dx silu(x); used by the SiLU backward. */
  | "silu_grad";

/** Elementwise two-input kernels; comparisons give 1 or 0. */
export type BinaryOp =
  | "add"
  | "sub"
  | "mul"
  | "div"
  | "pow"
  | "max"
  | "min"
  /** Comparisons give 1 or 0 in the output dtype. */
  | "eq"
  | "ne"
  | "lt"
  | "le"
  | "gt"
  | "ge";

/** Reductions along one axis; `argmax`/`argmin` give i32 indices. */
export type ReduceOp = "sum" | "max" | "min" | "argmax" | "argmin";

/** Shapes and layout of a (batched) matrix product `A B` and its optional fused epilogue. */
export interface MatmulArgs {
  /** Batch count; 1 for a plain matrix product. */
  batch: number;
  /** Rows of the output. */
  M: number;
  /** Columns of the output. */
  N: number;
  /** The contracted dimension. */
  K: number;
  /** A is stored as (K, M) when true, else (M, K). Same for B: (N, K) when true, else (K, N). */
  transA: boolean;
  /** B is stored as (N, K) when true, else (K, N). */
  transB: boolean;
  /** Element stride between consecutive batch matrices; 0 broadcasts one matrix. */
  strideA: number;
  /** Element stride between consecutive B matrices; 0 broadcasts one matrix. */
  strideB: number;
  /** Optional bias of length N added to every row (fused epilogue). */
  bias?: Storage;
  /**
   * Optional epilogue out = addend + scale * act(A B + bias), e.g. an MLP's GELU, or a
   * transformer block's LayerScale and residual add: scale has N elements (one per
   * column), addend is a dense (batch, M, N) array. Any part may come alone. The epilogue
   * serves inference (ops.fusedLinear), so its GELU may trade the last ulps for speed:
   * within 3e-7 relative of the exact erf GELU (float32 unary ops hold the same bound).
   */
  activation?: "gelu";
  /** Per-column factor of the epilogue (N elements). */
  scale?: Storage;
  /** Dense (batch, M, N) array the epilogue adds last, e.g. a residual. */
  addend?: Storage;
}

/** Shapes of a 2-D convolution over NCHW input with (outC, inC/groups, kH, kW) weights. */
export interface Conv2dArgs {
  /** Images in the batch. */
  batch: number;
  /** Input channels. */
  inC: number;
  /** Input height. */
  inH: number;
  /** Input width. */
  inW: number;
  /** Output channels. */
  outC: number;
  /** Kernel height. */
  kH: number;
  /** Kernel width. */
  kW: number;
  /** Vertical stride. */
  strideH: number;
  /** Horizontal stride. */
  strideW: number;
  /** Zero padding above and below. */
  padH: number;
  /** Zero padding left and right. */
  padW: number;
  /** Channel groups; inC and outC are both divisible by it. */
  groups: number;
  /** Output height (the caller computes it). */
  outH: number;
  /** Output width. */
  outW: number;
}

/** Shapes and options of scaled dot-product attention. */
export interface AttentionArgs {
  /** Batch size. */
  batch: number;
  /** Attention heads. */
  heads: number;
  /** Query length and key length (Tk >= Tq with a KV cache). */
  Tq: number;
  /** Key (and value) length. */
  Tk: number;
  /** Channels per head. */
  headDim: number;
  /** Multiplies q·k before the softmax (usually 1/sqrt(headDim)). */
  scale: number;
  /** Mask keys that come after the query's absolute position. */
  causal: boolean;
  /** Absolute position of query row 0 among the keys (Tk - Tq for a KV cache). */
  queryOffset: number;
  /**
   * Where the rows of q, k and v sit when they are not dense (B, H, T, D) arrays, e.g.
   * windows onto one fused qkv projection: read in place, no copies. Forward only.
   */
  inputs?: { q: AttentionRows; k: AttentionRows; v: AttentionRows };
  /**
   * Write the output as (B, Tq, H, D), each token's heads side by side (what the output
   * projection reads), instead of (B, H, Tq, D). Forward only; lse stays (B, H, Tq).
   */
  tokenMajorOut?: boolean;
}

/**
 * A strided (B, H, T, D) operand: element (b, h, t, d) is at
 * offset + b*batch + h*head + t*row + d (the head_dim axis is contiguous).
 */
export interface AttentionRows {
  /** Element index of (0, 0, 0, 0). */
  offset: number;
  /** Element stride between batch entries. */
  batch: number;
  /** Element stride between heads. */
  head: number;
  /** Element stride between tokens. */
  row: number;
}

/** Interpolation used by `resize`, as in PyTorch's `interpolate`. */
export type ResizeMode = "nearest" | "bilinear" | "bicubic";

/** Shapes and mode of a 2-D resize over (planes, inH, inW). */
export interface ResizeArgs {
  /** Batch*channels planes. */
  planes: number;
  /** Input height. */
  inH: number;
  /** Input width. */
  inW: number;
  /** Output height. */
  outH: number;
  /** Output width. */
  outW: number;
  /** Interpolation mode. */
  mode: ResizeMode;
  /** PyTorch's `align_corners`. */
  alignCorners: boolean;
  /** Coordinate scales as PyTorch uses them (in/out unless a scale_factor was given). */
  scaleH: number;
  /** Horizontal counterpart of scaleH. */
  scaleW: number;
  /** Cubic coefficient (PyTorch uses -0.75). */
  cubicA: number;
}

/** Hyper-parameters of one in-place AdamW update. */
export interface AdamWArgs {
  /** Learning rate. */
  lr: number;
  /** Decay of the first-moment estimate. */
  beta1: number;
  /** Decay of the second-moment estimate. */
  beta2: number;
  /** Added to the denominator for stability. */
  eps: number;
  /** Decoupled weight decay, multiplied by lr. */
  weightDecay: number;
  /** 1-based step count, for bias correction. */
  step: number;
  /** Multiplies the gradient first (grad clipping and accumulation scale). */
  gradScale: number;
}

/** A device: allocates storages and runs the kernels the tensor front end needs. */
export interface Backend {
  /** Short name, as in `useDevice` (`cpu`, `webgpu`). */
  readonly name: string;
  /** Human-readable description (BLAS library, GPU adapter...). */
  readonly description: string;

  // ---- memory ----
  /** Uninitialised storage of `length` elements. */
  alloc(dtype: DType, length: number): Storage;
  /** Storage holding a copy of `data`. */
  fromHost(data: HostArray): Storage;
  /** Drop a storage; using it afterwards is an error. */
  release(s: Storage): void;
  /** Storages currently alive (for leak tests). */
  liveStorages(): number;
  /** Resolves to a host copy once all work enqueued before it has run. */
  read(s: Storage): Promise<HostArray>;
  /** Synchronous read where the device allows it (CPU); undefined otherwise. */
  readSync?(s: Storage): HostArray;
  /** Submit queued work. Optional: backends that run eagerly have nothing to do. */
  flush?(): void;

  // ---- layout ----
  /** Storage of `length` elements all equal to `value`. */
  fill(dtype: DType, length: number, value: number): Storage;
  /** Contiguous copy of a strided view. */
  copy(src: View): Storage;
  /** Copy `src` (any strides) into the strided window `dst` of an existing storage, in place. */
  copyInto(dst: View, src: View): void;
  /** Elementwise conversion to dtype `to`. */
  cast(x: Storage, to: DType): Storage;
  /** out[i] = start + i*step */
  arange(dtype: DType, length: number, start: number, step: number): Storage;

  // ---- elementwise ----
  /** Elementwise `op` applied to every element. */
  unary(op: UnaryOp, x: Storage): Storage;
  /** Both inputs are broadcast views of the output shape (stride 0 on broadcast axes). */
  binary(op: BinaryOp, a: View, b: View, outShape: readonly number[], outDtype: DType): Storage;
  /** out = cond != 0 ? a : b, all three broadcast views of outShape. */
  where(cond: View, a: View, b: View, outShape: readonly number[]): Storage;
  /** x*scale + shift, fused; keeps `scalar` ops from allocating constant tensors. */
  affine(x: Storage, scale: number, shift: number): Storage;
  /** x^p elementwise for a constant p. */
  powScalar(x: Storage, p: number): Storage;
  /** Elementwise clamp to [lo, hi]. */
  clamp(x: Storage, lo: number, hi: number): Storage;

  // ---- reductions: input viewed as (outer, axis, inner), reduce the middle ----
  /** Reduce the middle axis of `x` viewed as (outer, axis, inner); the result is (outer, inner). */
  reduce(op: ReduceOp, x: Storage, outer: number, axis: number, inner: number): Storage;

  // ---- linear algebra ----
  /** Matrix product as described by `args`, with its optional epilogue. */
  matmul(a: Storage, b: Storage, args: MatmulArgs): Storage;

  // ---- fused row-wise ops over (rows, cols) ----
  /** Row-wise softmax (log-softmax when `log`) over (rows, cols). */
  softmax(x: Storage, rows: number, cols: number, log: boolean): Storage;
  /** dx from y = softmax(x) (or log-softmax) and dy. */
  softmaxBackward(y: Storage, dy: Storage, rows: number, cols: number, log: boolean): Storage;
  /** Returns y, and per-row mean and rstd for the backward. weight/bias may be absent. */
  layerNorm(
    x: Storage,
    weight: Storage | null,
    bias: Storage | null,
    rows: number,
    cols: number,
    eps: number,
  ): { y: Storage; mean: Storage; rstd: Storage };
  /** Gradients of `layerNorm` from its saved mean and rstd. */
  layerNormBackward(
    x: Storage,
    weight: Storage | null,
    mean: Storage,
    rstd: Storage,
    dy: Storage,
    rows: number,
    cols: number,
  ): { dx: Storage; dweight: Storage; dbias: Storage };
  /** x is (N, C, HW); groups split C. Returns y, and per (N, group) mean and rstd. */
  groupNorm(
    x: Storage,
    weight: Storage | null,
    bias: Storage | null,
    N: number,
    C: number,
    HW: number,
    groups: number,
    eps: number,
  ): { y: Storage; mean: Storage; rstd: Storage };
  /** Gradients of `groupNorm` from its saved mean and rstd. */
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
  ): { dx: Storage; dweight: Storage; dbias: Storage };
  /**
   * Cross-entropy per row with label smoothing spread over all classes (fairseq/PyTorch
   * form): loss = (1-eps)*nll + eps*mean_c(-logp_c). Rows whose target equals ignoreIndex
   * give 0. Returns the per-row loss and the log-softmax for the backward.
   */
  crossEntropy(
    logits: Storage,
    targets: Storage,
    rows: number,
    cols: number,
    smoothing: number,
    ignoreIndex: number,
  ): { loss: Storage; logp: Storage };
  /** d logits, given dLoss per row. */
  crossEntropyBackward(
    logp: Storage,
    targets: Storage,
    dloss: Storage,
    rows: number,
    cols: number,
    smoothing: number,
    ignoreIndex: number,
  ): Storage;

  // ---- indexing ----
  /** out[i, :] = table[idx[i], :] ; table is (rows, cols), idx is i32. */
  gather(table: Storage, idx: Storage, rows: number, cols: number): Storage;
  /** out (rows, cols) zeros, then out[idx[i], :] += src[i, :]. */
  scatterAdd(src: Storage, idx: Storage, rows: number, cols: number): Storage;
  /** out[i] = x[i, idx[i]] for x (rows, cols); used for log-prob picking. */
  gatherCols(x: Storage, idx: Storage, rows: number, cols: number): Storage;

  // ---- convolution, pooling, resizing (NCHW) ----
  /** 2-D convolution; `bias` (outC) may be absent. */
  conv2d(x: Storage, w: Storage, bias: Storage | null, args: Conv2dArgs): Storage;
  /** Gradient of `conv2d` with respect to its input. */
  conv2dBackwardInput(dy: Storage, w: Storage, args: Conv2dArgs): Storage;
  /** Gradient of `conv2d` with respect to its weight. */
  conv2dBackwardWeight(dy: Storage, x: Storage, args: Conv2dArgs): Storage;
  /** Non-overlapping or strided average pool; countIncludePad as in PyTorch. */
  avgPool2d(x: Storage, args: Pool2dArgs): Storage;
  /** Gradient of `avgPool2d` with respect to its input. */
  avgPool2dBackward(dy: Storage, args: Pool2dArgs): Storage;
  /** Max pool; also returns each maximum's index within its input plane, for the backward. */
  maxPool2d(x: Storage, args: Pool2dArgs): { y: Storage; argmax: Storage };
  /** Gradient of `maxPool2d`, routed through the saved argmax. */
  maxPool2dBackward(dy: Storage, argmax: Storage, args: Pool2dArgs): Storage;
  /** 2-D resize of every plane. */
  resize(x: Storage, args: ResizeArgs): Storage;
  /** Gradient of `resize` with respect to its input. */
  resizeBackward(dy: Storage, args: ResizeArgs): Storage;

  // ---- attention (q: B,H,Tq,D; k,v: B,H,Tk,D) ----
  /**
   * Returns the output and the per-row log-sum-exp for the backward. The backward takes
   * dense operands: args.inputs and args.tokenMajorOut must be absent there.
   */
  attention(
    q: Storage,
    k: Storage,
    v: Storage,
    args: AttentionArgs,
  ): { out: Storage; lse: Storage };
  /** Gradients of `attention` from its output and log-sum-exp (dense operands only). */
  attentionBackward(
    q: Storage,
    k: Storage,
    v: Storage,
    out: Storage,
    lse: Storage,
    dout: Storage,
    args: AttentionArgs,
  ): { dq: Storage; dk: Storage; dv: Storage };

  // ---- randomness (counter-based, so every backend draws the same numbers) ----
  /** Uniform [0,1) from (seed, offset + i) via `core/random.ts`'s hash. */
  uniform(length: number, seed: number, offset: number): Storage;
  /** Standard normal from (seed, offset + i) via Box-Muller on the same hash. */
  normal(length: number, seed: number, offset: number): Storage;
  /** y = x * keep / (1-p), keep = uniform(seed, offset+i) >= p; also returns the mask. */
  dropout(x: Storage, p: number, seed: number, offset: number): { y: Storage; mask: Storage };

  // ---- optimiser ----
  /** In-place AdamW (decoupled decay, PyTorch semantics) over flat buffers. */
  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, args: AdamWArgs): void;
  /** Sum of squares, as a 1-element storage (for global grad-norm clipping). */
  sumSquares(x: Storage): Storage;
}

/** Shapes of a 2-D pooling window over NCHW input. */
export interface Pool2dArgs {
  /** Images in the batch. */
  batch: number;
  /** Channels per image. */
  channels: number;
  /** Input height. */
  inH: number;
  /** Input width. */
  inW: number;
  /** Window height. */
  kH: number;
  /** Window width. */
  kW: number;
  /** Vertical stride. */
  strideH: number;
  /** Horizontal stride. */
  strideW: number;
  /** Padding above and below. */
  padH: number;
  /** Padding left and right. */
  padW: number;
  /** Output height. */
  outH: number;
  /** Output width. */
  outW: number;
  /** Average over the whole window, padding included (PyTorch's `count_include_pad`). */
  countIncludePad: boolean;
}

/** Raised for bad input to an op, naming the op and the shapes involved. */
export class ShapeError extends Error {
  /** `op` names the failing op; `detail` says what was wrong with the input. */
  constructor(op: string, detail: string) {
    super(`${op}: ${detail}`);
    this.name = "ShapeError";
  }
}
