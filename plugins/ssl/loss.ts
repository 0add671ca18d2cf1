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

/**
 * Patch-to-image NT-Xent: every patch embedding of a view must pick out the other view of
 * its own image among all 2N image embeddings (its own view's embedding is masked out, as
 * the diagonal is above). It asks each patch feature, not only their mean, to know which
 * image, and so which shape, it is part of: the property K-Means tokens need.
 *
 * `patches` is (2N * L, d), the L patches of row m at rows m * L .. m * L + L - 1; `z` is
 * (2N, d), ordered as in `ntXent`.
 */
export function patchToImage(patches: Tensor, z: Tensor, temperature: number): Tensor {
  const [M] = z.shape;
  const L = patches.shape[0] / M;
  if (z.ndim !== 2 || patches.ndim !== 2 || !Number.isInteger(L) || M % 2 !== 0 || M < 4) {
    throw new Error(
      `patchToImage: expected patches (2N * L, d) and z (2N, d), got [${patches.shape}] and [${z.shape}]`,
    );
  }
  const N = M / 2;
  const logits = ops.mul(
    ops.matmul(l2Normalize(patches), ops.transpose(l2Normalize(z))),
    1 / temperature,
  );
  const mask = new Float32Array(M * L * M);
  const targets = new Int32Array(M * L);
  for (let m = 0; m < M; m++) {
    for (let l = 0; l < L; l++) {
      mask[(m * L + l) * M + m] = -1e9;
      targets[m * L + l] = (m + N) % M;
    }
  }
  return ops.crossEntropy(
    ops.add(logits, ops.tensor(mask, [M * L, M])),
    ops.tensor(targets, [M * L], { dtype: "i32" }),
  );
}

/**
 * Dense correspondence NT-Xent: the patch of view 1 at cell `first[k]` and the patch of
 * view 2 at cell `second[k]` show the same spot of the same image (see
 * `correspondingCells`); each must pick the other out among all patches of the other view,
 * of its own image and of every other one. Other spots of the same image are negatives,
 * so a patch feature has to say where in the shape it is (edge, tip, inside, background
 * next to it), which the image-level terms never ask: the property stage 2 needs, since it
 * paints each semantic token's own 4x4 pixels.
 *
 * `p1` and `p2` are (B * G^2, d), rows by image then raster cell.
 */
export function patchCorrespondence(
  p1: Tensor,
  p2: Tensor,
  first: Int32Array,
  second: Int32Array,
  temperature: number,
): Tensor {
  if (p1.ndim !== 2 || p2.ndim !== 2 || p1.shape[0] !== p2.shape[0] || first.length === 0) {
    throw new Error(
      `patchCorrespondence: expected two (B * G^2, d) patch sets and at least one pair, got [${p1.shape}], [${p2.shape}], ${first.length} pairs`,
    );
  }
  const u1 = l2Normalize(p1), u2 = l2Normalize(p2);
  const ids = (a: Int32Array) => ops.tensor(a, [a.length], { dtype: "i32" });
  const oneWay = (from: Tensor, to: Tensor, rows: Int32Array, targets: Int32Array) =>
    ops.crossEntropy(
      ops.mul(ops.matmul(ops.indexSelect(from, ids(rows)), ops.transpose(to)), 1 / temperature),
      ids(targets),
    );
  return ops.mul(
    ops.add(oneWay(u1, u2, first, second), oneWay(u2, u1, second, first)),
    0.5,
  );
}
