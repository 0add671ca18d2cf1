/**
 * Matrix products: batched matmul with broadcasting, the Linear layer's fused op, and
 * fusedLinear (a Linear with its activation, LayerScale and residual add fused in).
 */

import { isGradEnabled, record } from "../autograd.ts";
import type { Storage } from "../backend.ts";
import type { Tensor } from "../tensor.ts";
import { add, gelu, mul } from "./elementwise.ts";
import { sum, sumTo } from "./reduce.ts";
import { expand, reshape, transpose } from "./shape.ts";
import {
  broadcastShapes,
  dense,
  expectDtype,
  sameBackend,
  ShapeError,
  shapeStr,
  sizeOf,
  wrap,
} from "./util.ts";

interface Operand {
  storage: Storage;
  trans: boolean;
  stride: number;
  temp: Tensor | null;
}

/**
 * Present a (..., rows, cols) tensor to the kernel without copying when it is dense or a
 * dense matrix with its last two axes swapped (a transpose view).
 */
function operand(t: Tensor, batch: readonly number[]): Operand {
  const rows = t.shape[t.ndim - 2];
  const cols = t.shape[t.ndim - 1];
  const tBatch = t.shape.slice(0, -2);
  const broadcastBatch = sizeOf(tBatch) === 1;
  const fullBatch = sizeOf(tBatch) === sizeOf(batch) && tBatch.length <= batch.length &&
    tBatch.every((d, i) => d === batch[batch.length - tBatch.length + i]);
  let src = t;
  let temp: Tensor | null = null;
  if (!broadcastBatch && !fullBatch) {
    const wide = expand(t, [...batch, rows, cols]);
    temp = src = dense(wide);
    wide.dispose();
  }
  const packed = src.offset === 0 && src.shared.storage.length === src.size;
  const n = src.ndim;
  const batchPacked = src.strides.slice(0, -2).every((s, i) =>
    src.shape[i] === 1 || s === sizeOf(src.shape.slice(i + 1))
  );
  if (
    packed && batchPacked && src.strides[n - 1] === 1 && (src.strides[n - 2] === cols || rows === 1)
  ) {
    return {
      storage: src.shared.storage,
      trans: false,
      stride: broadcastBatch ? 0 : rows * cols,
      temp,
    };
  }
  if (
    packed && batchPacked && src.strides[n - 2] === 1 && (src.strides[n - 1] === rows || cols === 1)
  ) {
    return {
      storage: src.shared.storage,
      trans: true,
      stride: broadcastBatch ? 0 : rows * cols,
      temp,
    };
  }
  const d = dense(src);
  if (temp) temp.dispose();
  return { storage: d.storage, trans: false, stride: broadcastBatch ? 0 : rows * cols, temp: d };
}

/** a (..., M, K) @ b (..., K, N), broadcasting batch axes. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  const backend = sameBackend("matmul", a, b);
  expectDtype("matmul", a, "f32", "a");
  expectDtype("matmul", b, "f32", "b");
  if (a.ndim < 2 || b.ndim < 2) {
    throw new ShapeError(
      "matmul",
      `needs at least 2-D operands, got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`,
    );
  }
  const M = a.shape[a.ndim - 2], K = a.shape[a.ndim - 1];
  const K2 = b.shape[b.ndim - 2], N = b.shape[b.ndim - 1];
  if (K !== K2) {
    throw new ShapeError(
      "matmul",
      `inner dimensions differ: ${shapeStr(a.shape)} @ ${shapeStr(b.shape)}`,
    );
  }
  const batch = broadcastShapes("matmul", a.shape.slice(0, -2), b.shape.slice(0, -2));
  const A = operand(a, batch);
  const B = operand(b, batch);
  const out = wrap(
    backend.matmul(A.storage, B.storage, {
      batch: sizeOf(batch),
      M,
      N,
      K,
      transA: A.trans,
      transB: B.trans,
      strideA: A.stride,
      strideB: B.stride,
    }),
    [...batch, M, N],
  );
  A.temp?.dispose();
  B.temp?.dispose();
  return record("matmul", out, [a, b], (g, [as, bs]) => [
    a.requiresGrad ? sumTo(matmul(g, transpose(bs)), a.shape) : null,
    b.requiresGrad ? sumTo(matmul(transpose(as), g), b.shape) : null,
  ], [a, b]);
}

/** y = x @ w^T + bias, with x (..., in), w (out, in) as in PyTorch's nn.Linear. */
export function linear(x: Tensor, w: Tensor, bias: Tensor | null = null): Tensor {
  const backend = sameBackend("linear", x, w, ...(bias ? [bias] : []));
  const inF = w.shape[1], outF = w.shape[0];
  if (
    w.ndim !== 2 || x.shape[x.ndim - 1] !== inF ||
    (bias && (bias.ndim !== 1 || bias.shape[0] !== outF))
  ) {
    throw new ShapeError(
      "linear",
      `input ${shapeStr(x.shape)}, weight ${shapeStr(w.shape)}${
        bias ? `, bias ${shapeStr(bias.shape)}` : ""
      }: expected input [..., ${inF}]`,
    );
  }
  expectDtype("linear", x, "f32");
  const rows = x.size / inF;
  const xd = dense(x), wd = dense(w), bd = bias ? dense(bias) : null;
  const y = wrap(
    backend.matmul(xd.storage, wd.storage, {
      batch: 1,
      M: rows,
      N: outF,
      K: inF,
      transA: false,
      transB: true,
      strideA: 0,
      strideB: 0,
      bias: bd?.storage,
    }),
    [...x.shape.slice(0, -1), outF],
  );
  const inputs = bias ? [x, w, bias] : [x, w];
  const out = record("linear", y, inputs, (g, [xs, ws]) => {
    const g2 = reshape(g, [rows, outF]);
    const x2 = reshape(xs, [rows, inF]);
    const dx = x.requiresGrad ? reshape(matmul(g2, ws), x.shape) : null;
    const dw = w.requiresGrad ? matmul(transpose(g2), x2) : null;
    const db = bias?.requiresGrad ? sum(g2, 0) : null;
    return bias ? [dx, dw, db] : [dx, dw];
  }, [xd, wd]);
  if (xd !== x) xd.dispose();
  if (wd !== w) wd.dispose();
  if (bd && bd !== bias) bd.dispose();
  return out;
}

/** The element-wise work `fusedLinear` runs after the matrix product. */
export interface FusedLinearOptions {
  /** Applied to x @ w^T + bias first. */
  activation?: "gelu";
  /** Per-output-channel factors (a LayerScale), after the activation. */
  scale?: Tensor | null;
  /** Added last; the output's shape. */
  residual?: Tensor | null;
}

/**
 * residual + scale * act(x @ w^T + bias): a Linear with the element-wise work that
 * transformer blocks put after it (GELU after an MLP's first layer; LayerScale and the
 * residual add after a branch's last). Without autograd it is one backend call, whose
 * epilogue runs in place on the product (no extra passes or arrays); under autograd it is
 * linear, gelu, mul and add, whose backwards those ops give.
 */
export function fusedLinear(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  opts: FusedLinearOptions = {},
): Tensor {
  const { activation, scale = null, residual = null } = opts;
  const op = "fusedLinear";
  const inF = w.shape[1], outF = w.shape[0];
  const outShape = [...x.shape.slice(0, -1), outF];
  if (
    w.ndim !== 2 || x.shape[x.ndim - 1] !== inF ||
    (bias && (bias.ndim !== 1 || bias.shape[0] !== outF))
  ) {
    throw new ShapeError(
      op,
      `input ${shapeStr(x.shape)}, weight ${shapeStr(w.shape)}${
        bias ? `, bias ${shapeStr(bias.shape)}` : ""
      }: expected input [..., ${inF}]`,
    );
  }
  if (activation !== undefined && activation !== "gelu") {
    throw new ShapeError(op, `unknown activation ${activation}`);
  }
  if (scale && (scale.ndim !== 1 || scale.shape[0] !== outF)) {
    throw new ShapeError(
      op,
      `scale ${shapeStr(scale.shape)} does not match ${outF} output features`,
    );
  }
  if (
    residual &&
    (residual.ndim !== outShape.length || residual.shape.some((d, i) => d !== outShape[i]))
  ) {
    throw new ShapeError(
      op,
      `residual ${shapeStr(residual.shape)} is not the output shape ${shapeStr(outShape)}`,
    );
  }
  const inputs = [x, w, bias, scale, residual].filter((t): t is Tensor => t !== null);
  for (const t of inputs) expectDtype(op, t, "f32");
  if (isGradEnabled() && inputs.some((t) => t.requiresGrad)) {
    let y = linear(x, w, bias);
    const then = (f: (t: Tensor) => Tensor) => {
      const next = f(y);
      y.dispose();
      y = next;
    };
    if (activation) then(gelu);
    if (scale) then((t) => mul(t, scale));
    if (residual) then((t) => add(residual, t));
    return y;
  }
  const backend = sameBackend(op, ...inputs);
  const temps: Tensor[] = [];
  const storageOf = (t: Tensor) => {
    const d = dense(t);
    if (d !== t) temps.push(d);
    return d.storage;
  };
  const out = wrap(
    backend.matmul(storageOf(x), storageOf(w), {
      batch: 1,
      M: x.size / inF,
      N: outF,
      K: inF,
      transA: false,
      transB: true,
      strideA: 0,
      strideB: 0,
      bias: bias ? storageOf(bias) : undefined,
      activation,
      scale: scale ? storageOf(scale) : undefined,
      addend: residual ? storageOf(residual) : undefined,
    }),
    outShape,
  );
  temps.forEach((t) => t.dispose());
  return out;
}
