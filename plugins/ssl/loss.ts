/**
 * NT-Xent, SimCLR's contrastive loss. For a batch of N images seen twice, the 2N embeddings
 * are l2-normalised; embedding i's positive is its other view, and the other 2N - 2
 * embeddings are its negatives:
 *
 *   loss = mean_i  -log( exp(s(i, p(i)) / t) / sum_{j != i} exp(s(i, j) / t) )
 *
 * with s the cosine similarity, p(i) = i + N (mod 2N) and t the temperature. It is a
 * cross-entropy over the rows of the similarity matrix with the diagonal masked out.
 */

import * as ops from "../../core/ops/mod.ts";
import type { Tensor } from "../../core/tensor.ts";

/** Rows scaled to unit length (eps keeps a zero row finite). */
export function l2Normalize(x: Tensor, eps = 1e-12): Tensor {
  return ops.mul(x, ops.rsqrt(ops.add(ops.sum(ops.square(x), -1, true), eps)));
}

/** `z` is (2N, d): rows 0..N-1 are the first views, N..2N-1 the second views of the same images. */
export function ntXent(z: Tensor, temperature: number): Tensor {
  const [M] = z.shape;
  if (z.ndim !== 2 || M % 2 !== 0 || M < 4) {
    throw new Error(`ntXent: expected (2N, d) with N >= 2, got [${z.shape}]`);
  }
  const N = M / 2;
  const u = l2Normalize(z);
  const logits = ops.mul(ops.matmul(u, ops.transpose(u)), 1 / temperature);
  // A large negative on the diagonal removes self-similarity from the softmax.
  const mask = new Float32Array(M * M);
  for (let i = 0; i < M; i++) mask[i * M + i] = -1e9;
  const targets = Int32Array.from({ length: M }, (_, i) => (i + N) % M);
  return ops.crossEntropy(
    ops.add(logits, ops.tensor(mask, [M, M])),
    ops.tensor(targets, [M], { dtype: "i32" }),
  );
}
