/**
 * Scaled dot-product attention on the CPU, q: (B,H,Tq,D), k and v: (B,H,Tk,D).
 *
 * Per (batch, head) and per block of query rows: S = scale * Q K^T through GEMM, a
 * masked softmax in place (keeping the row log-sum-exp), then O = P V. Blocks keep the
 * score buffer at (block, Tk), so long sequences need no (Tq, Tk) matrix. With a causal
 * mask, key j is visible to query i iff j <= i + queryOffset, and a block only multiplies
 * against the keys its last row can see.
 *
 * The backward recomputes P from the saved lse (as FlashAttention does):
 *   dV += P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),
 *   dQ = scale * dS K,  dK += scale * dS^T Q.
 */

import { type AttentionArgs, ShapeError } from "../../backend.ts";
import { expNonPositive } from "./exp.ts";
import { sgemm as defaultSgemm, type SgemmFn } from "./gemm.ts";
import { softmaxBlockWasm } from "./vector_wasm.ts";

/** Score-buffer budget in floats per query block (4 MiB). */
const SCORE_BUDGET = 1 << 20;
const MAX_BLOCK = 256;

function blockRows(args: AttentionArgs): number {
  return Math.max(1, Math.min(args.Tq, MAX_BLOCK, Math.floor(SCORE_BUDGET / Math.max(1, args.Tk))));
}

function check(op: string, args: AttentionArgs, arrays: Record<string, [Float32Array, number]>) {
  for (const [name, [arr, expected]] of Object.entries(arrays)) {
    if (arr.length !== expected) {
      throw new ShapeError(op, `${name} has ${arr.length} elements, expected ${expected}: ` +
        `args=${JSON.stringify(args)}`);
    }
  }
}

/** Keys visible to query row i (a prefix [0, count)). */
function visibleKeys(args: AttentionArgs, i: number): number {
  if (!args.causal) return args.Tk;
  return Math.max(0, Math.min(args.Tk, i + args.queryOffset + 1));
}

export function attention(
  q: Float32Array, k: Float32Array, v: Float32Array, args: AttentionArgs,
  gemm: SgemmFn = defaultSgemm,
): { out: Float32Array; lse: Float32Array } {
  const { batch, heads, Tq, Tk, headDim: D, scale } = args;
  const BH = batch * heads;
  check("attention", args, { q: [q, BH * Tq * D], k: [k, BH * Tk * D], v: [v, BH * Tk * D] });
  const out = new Float32Array(BH * Tq * D);
  const lse = new Float32Array(BH * Tq);
  const QB = blockRows(args);
  const scores = new Float32Array(QB * Tk);

  for (let bh = 0; bh < BH; bh++) {
    const qBase = bh * Tq * D;
    const kBase = bh * Tk * D;
    for (let i0 = 0; i0 < Tq; i0 += QB) {
      const rows = Math.min(QB, Tq - i0);
      const nk = visibleKeys(args, i0 + rows - 1);
      if (nk === 0) {
        lse.fill(-Infinity, bh * Tq + i0, bh * Tq + i0 + rows);
        continue; // out stays 0 for rows that see no key
      }
      gemm(false, true, rows, nk, D, scale, q, qBase + i0 * D, D, k, kBase, D, 0, scores, 0, nk);
      const visible = (r: number) => visibleKeys(args, i0 + r);
      if (!softmaxBlockWasm(scores, rows, nk, visible, lse, bh * Tq + i0)) {
        for (let r = 0; r < rows; r++) {
          lse[bh * Tq + i0 + r] = softmaxRowInPlace(scores, r * nk, nk, visible(r));
        }
      }
      gemm(false, false, rows, D, nk, 1, scores, 0, nk, v, kBase, D, 0, out, qBase + i0 * D, D);
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
  q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array,
  dout: Float32Array, args: AttentionArgs, gemm: SgemmFn = defaultSgemm,
): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
  const { batch, heads, Tq, Tk, headDim: D, scale } = args;
  const BH = batch * heads;
  check("attentionBackward", args, {
    q: [q, BH * Tq * D], k: [k, BH * Tk * D], v: [v, BH * Tk * D], out: [out, BH * Tq * D],
    lse: [lse, BH * Tq], dout: [dout, BH * Tq * D],
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
