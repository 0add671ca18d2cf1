/**
 * Scaled dot-product attention on the CPU, q: (B,H,Tq,D), k and v: (B,H,Tk,D).
 *
 * Per (batch, head) and per block of query rows: S = scale * Q K^T through GEMM, a
 * masked softmax in place (keeping the row log-sum-exp), then O = P V. Blocks keep the
 * score buffer at (block, Tk), so long sequences need no (Tq, Tk) matrix. With a causal
 * mask, key j is visible to query i iff j <= i + queryOffset, and a block only multiplies
 * against the keys its last row can see.
 *
 * The forward reads strided q, k, v in place (args.inputs: the GEMMs take any row
 * stride) and can write (B, Tq, H, D) rows (args.tokenMajorOut), so a fused qkv
 * projection feeds it and the output projection reads it with no permute copies.
 *
 * The backward recomputes P from the saved lse (as FlashAttention does):
 *   dV += P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),
 *   dQ = scale * dS K,  dK += scale * dS^T Q.
 */

import { type AttentionArgs, type AttentionRows, ShapeError } from "../../backend.ts";
import { expNonPositive } from "./exp.ts";
import { sgemm as defaultSgemm, type SgemmFn } from "./gemm.ts";
import { outputF32 } from "./storage.ts";
import { softmaxBlockWasm, wasmScratch } from "./vector_wasm.ts";

/** Score-buffer budget in floats per query block (4 MiB). */
const SCORE_BUDGET = 1 << 20;
/**
 * Most query rows per block: tall blocks keep OpenBLAS efficient (one 261-row GEMM of a
 * ViT head runs 1.3x faster than two of 131), while causal blocks stay shorter because a
 * block multiplies against every key its last row sees.
 */
const MAX_BLOCK = 512, MAX_CAUSAL_BLOCK = 256;

/** Rows per query block: blocks of equal size (300 rows: 2 x 150, not 256 + 44). */
function blockRows(args: AttentionArgs): number {
  const cap = args.causal ? MAX_CAUSAL_BLOCK : MAX_BLOCK;
  const most = Math.max(1, Math.min(cap, Math.floor(SCORE_BUDGET / Math.max(1, args.Tk))));
  const blocks = Math.max(1, Math.ceil(args.Tq / most));
  return Math.max(1, Math.ceil(args.Tq / blocks));
}

function check(op: string, args: AttentionArgs, arrays: Record<string, [Float32Array, number]>) {
  for (const [name, [arr, expected]] of Object.entries(arrays)) {
    if (arr.length !== expected) {
      throw new ShapeError(
        op,
        `${name} has ${arr.length} elements, expected ${expected}: ` +
          `args=${JSON.stringify(args)}`,
      );
    }
  }
}

/** Dense (B, H, T, D) rows. */
function denseRows(args: AttentionArgs, T: number): AttentionRows {
  const D = args.headDim;
  return { offset: 0, batch: args.heads * T * D, head: T * D, row: D };
}

/** Throws unless every element of the strided (B, H, T, D) operand lies inside `arr`. */
function checkRows(
  args: AttentionArgs,
  name: string,
  arr: Float32Array,
  r: AttentionRows,
  T: number,
) {
  const { batch: B, heads: H, headDim: D } = args;
  const fields = [r.offset, r.batch, r.head, r.row];
  if (!fields.every((f) => Number.isInteger(f) && f >= 0) || (T > 1 && r.row < D)) {
    throw new ShapeError(
      "attention",
      `${name} layout ${JSON.stringify(r)} is not a strided ` +
        `(B, H, T, D) array with rows of ${D}`,
    );
  }
  if (B * H * T * D === 0) return;
  const last = r.offset + (B - 1) * r.batch + (H - 1) * r.head + (T - 1) * r.row + D - 1;
  if (last >= arr.length) {
    throw new ShapeError(
      "attention",
      `${name} layout ${JSON.stringify(r)} reaches element ` +
        `${last}, past its ${arr.length} elements: args=${
          JSON.stringify({ ...args, inputs: undefined })
        }`,
    );
  }
}

/** Keys visible to query row i (a prefix [0, count)). */
function visibleKeys(args: AttentionArgs, i: number): number {
  if (!args.causal) return args.Tk;
  return Math.max(0, Math.min(args.Tk, i + args.queryOffset + 1));
}

export function attention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  args: AttentionArgs,
  gemm: SgemmFn = defaultSgemm,
): { out: Float32Array; lse: Float32Array } {
  const { batch, heads, Tq, Tk, headDim: D, scale } = args;
  const BH = batch * heads;
  const inputs = args.inputs;
  if (inputs) {
    checkRows(args, "q", q, inputs.q, Tq);
    checkRows(args, "k", k, inputs.k, Tk);
    checkRows(args, "v", v, inputs.v, Tk);
  } else {
    check("attention", args, { q: [q, BH * Tq * D], k: [k, BH * Tk * D], v: [v, BH * Tk * D] });
  }
  const [lq, lk, lv] = inputs
    ? [inputs.q, inputs.k, inputs.v]
    : [denseRows(args, Tq), denseRows(args, Tk), denseRows(args, Tk)];
  const lo: AttentionRows = args.tokenMajorOut
    ? { offset: 0, batch: Tq * heads * D, head: D, row: heads * D }
    : denseRows(args, Tq);
  // Every row is written by the P V GEMM (beta = 0) except rows that see no key (under a
  // causal mask, or with no keys at all), which must read 0: only then does it come zeroed.
  const out = outputF32(BH * Tq * D, args.causal || Tk === 0);
  const lse = new Float32Array(BH * Tq);
  const QB = blockRows(args);
  // In the SIMD module's memory when it is on, so the softmax runs there without copies.
  const scores = wasmScratch(QB * Tk) ?? new Float32Array(QB * Tk);

  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const bh = b * heads + h;
      const qBase = lq.offset + b * lq.batch + h * lq.head;
      const kBase = lk.offset + b * lk.batch + h * lk.head;
      const vBase = lv.offset + b * lv.batch + h * lv.head;
      const oBase = lo.offset + b * lo.batch + h * lo.head;
      for (let i0 = 0; i0 < Tq; i0 += QB) {
        const rows = Math.min(QB, Tq - i0);
        const nk = visibleKeys(args, i0 + rows - 1);
        if (nk === 0) {
          lse.fill(-Infinity, bh * Tq + i0, bh * Tq + i0 + rows);
          continue; // out stays 0 for rows that see no key
        }
        gemm(
          false,
          true,
          rows,
          nk,
          D,
          scale,
          q,
          qBase + i0 * lq.row,
          lq.row,
          k,
          kBase,
          lk.row,
          0,
          scores,
          0,
          nk,
        );
        const visible = (r: number) => visibleKeys(args, i0 + r);
        if (!softmaxBlockWasm(scores, rows, nk, visible, lse, bh * Tq + i0)) {
          for (let r = 0; r < rows; r++) {
            lse[bh * Tq + i0 + r] = softmaxRowInPlace(scores, r * nk, nk, visible(r));
          }
        }
        gemm(
          false,
          false,
          rows,
          D,
          nk,
          1,
          scores,
          0,
          nk,
          v,
          vBase,
          lv.row,
          0,
          out,
          oBase + i0 * lo.row,
          lo.row,
        );
      }
    }
  }
  return { out, lse };
}

/** Softmax over s[off, off+visible), zeros on [off+visible, off+n); returns the lse. */
function softmaxRowInPlace(s: Float32Array, off: number, n: number, visible: number): number {
  if (visible === 0) {
    s.fill(0, off, off + n);
    return -Infinity;
  }
  let max = -Infinity;
  for (let j = off; j < off + visible; j++) if (s[j] > max) max = s[j];
  let sum = 0;
  for (let j = off; j < off + visible; j++) {
    const e = expNonPositive(s[j] - max);
    s[j] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let j = off; j < off + visible; j++) s[j] *= inv;
  s.fill(0, off + visible, off + n);
  return max + Math.log(sum);
}

export function attentionBackward(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  out: Float32Array,
  lse: Float32Array,
  dout: Float32Array,
  args: AttentionArgs,
  gemm: SgemmFn = defaultSgemm,
): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
  const { batch, heads, Tq, Tk, headDim: D, scale } = args;
  const BH = batch * heads;
  if (args.inputs || args.tokenMajorOut) {
    throw new ShapeError("attentionBackward", "takes dense (B, H, T, D) operands");
  }
  check("attentionBackward", args, {
    q: [q, BH * Tq * D],
    k: [k, BH * Tk * D],
    v: [v, BH * Tk * D],
    out: [out, BH * Tq * D],
    lse: [lse, BH * Tq],
    dout: [dout, BH * Tq * D],
  });
  const dq = new Float32Array(BH * Tq * D);
  const dk = new Float32Array(BH * Tk * D);
  const dv = new Float32Array(BH * Tk * D);
  const QB = blockRows(args);
  const probs = new Float32Array(QB * Tk);
  const dscores = new Float32Array(QB * Tk);

  for (let bh = 0; bh < BH; bh++) {
    const qBase = bh * Tq * D;
    const kBase = bh * Tk * D;
    for (let i0 = 0; i0 < Tq; i0 += QB) {
      const rows = Math.min(QB, Tq - i0);
      const nk = visibleKeys(args, i0 + rows - 1);
      if (nk === 0) continue;
      const qBlock = qBase + i0 * D;
      // P = exp(scale * Q K^T - lse), masked.
      gemm(false, true, rows, nk, D, scale, q, qBlock, D, k, kBase, D, 0, probs, 0, nk);
      for (let r = 0; r < rows; r++) {
        const visible = visibleKeys(args, i0 + r);
        const rowLse = lse[bh * Tq + i0 + r];
        const off = r * nk;
        if (visible === 0 || rowLse === -Infinity) {
          probs.fill(0, off, off + nk);
          continue;
        }
        for (let j = off; j < off + visible; j++) probs[j] = expNonPositive(probs[j] - rowLse);
        probs.fill(0, off + visible, off + nk);
      }
      gemm(true, false, nk, D, rows, 1, probs, 0, nk, dout, qBlock, D, 1, dv, kBase, D);
      gemm(false, true, rows, nk, D, 1, dout, qBlock, D, v, kBase, D, 0, dscores, 0, nk);
      for (let r = 0; r < rows; r++) {
        let delta = 0; // rowsum(dO * O) = rowsum(P * dP)
        const o = qBlock + r * D;
        for (let d = 0; d < D; d++) delta += dout[o + d] * out[o + d];
        const off = r * nk;
        for (let j = off; j < off + nk; j++) dscores[j] = probs[j] * (dscores[j] - delta);
      }
      gemm(false, false, rows, D, nk, scale, dscores, 0, nk, k, kBase, D, 0, dq, qBlock, D);
      gemm(true, false, nk, D, rows, scale, dscores, 0, nk, q, qBlock, D, 1, dk, kBase, D);
    }
  }
  return { dq, dk, dv };
}
