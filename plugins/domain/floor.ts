/**
 * The real-vs-real floor: what the domain FD, precision and recall are for two disjoint sets
 * of *real* images. A perfect generator scores about this, not 0.
 *
 * Why the set sizes matter: the Frechet distance is estimated from sample means and
 * covariances, and with n samples in d dimensions its expected value is about
 * tr(S) (1/n_a + 1/n_b) above the true distance, plus a covariance-noise term that also
 * shrinks with n. 100 real images against 500 real images therefore score far more than
 * 500 against 500. The floor is only honest when it is measured with the sizes the samples
 * are scored with: `generated` images (the sample folder, e.g. 100) against `reference`
 * images (the reference folder, e.g. 500). The metric warns when the sizes differ.
 *
 * The held-out set (N >= generated + reference) is cut into rotating splits: split k takes
 * rows [k g, (k+1) g) as the "generated" set and the next r rows (cyclically) as the
 * reference, which never overlap. Contiguous blocks keep the classes balanced on datasets
 * whose label is index % classes (shapes), as the class-cycled sample folders are. The floor
 * is the mean over splits; min and max show its spread.
 *
 * With a separate reference set (the eval's reference, e.g. a dataset's test split), split k
 * scores held-out rows [k g, (k+1) g) against reference rows [k r, (k+1) r) (cyclically):
 * the comparison the samples get, since they too are scored against that set and not against
 * more of the training distribution. A test split that differs slightly from the training
 * split then shows in the floor instead of being charged to the generator.
 */

import { frechetDistanceOfStats } from "../metrics/frechet.ts";
import { precisionRecall } from "../metrics/precision_recall.ts";
import { featureStats } from "../metrics/stats.ts";

export interface FloorSizes {
  generated: number;
  reference: number;
  /** At most this many splits (each one FD + one precision/recall). */
  maxSplits: number;
  neighborhood: number;
}

export interface RealFloor {
  generated: number;
  reference: number;
  splits: number;
  fd: number;
  fdMin: number;
  fdMax: number;
  precision: number;
  recall: number;
}

/** Rows `start`, `start + 1`, ... (`count` of them, wrapping at `n`) of a (n, dim) matrix. */
function rowsFrom(x: Float32Array, n: number, dim: number, start: number, count: number) {
  const out = new Float32Array(count * dim);
  for (let i = 0; i < count; i++) {
    const r = (start + i) % n;
    out.set(x.subarray(r * dim, (r + 1) * dim), i * dim);
  }
  return out;
}

/** Features of a second real set, (count, dim) row-major. */
export interface FloorReference {
  features: Float32Array;
  count: number;
}

export function realFloor(
  features: Float32Array,
  count: number,
  dim: number,
  sizes: FloorSizes,
  what: string,
  reference?: FloorReference,
): RealFloor {
  const { generated: g, reference: r } = sizes;
  if (reference && (g > count || r > reference.count)) {
    throw new Error(
      `${what}: the floor needs ${g} held-out images (floor.generated) and ${r} reference images (floor.reference), the sets have ${count} and ${reference.count}`,
    );
  }
  if (!reference && g + r > count) {
    throw new Error(
      `${what}: the floor needs ${g} + ${r} = ${
        g + r
      } disjoint held-out images (floor.generated + floor.reference), the held-out set has ${count}`,
    );
  }
  const splits = Math.max(1, Math.min(sizes.maxSplits, Math.floor(count / g)));
  const fds: number[] = [];
  let precision = 0, recall = 0;
  for (let k = 0; k < splits; k++) {
    const gen = rowsFrom(features, count, dim, k * g, g);
    const ref = reference
      ? rowsFrom(reference.features, reference.count, dim, k * r, r)
      : rowsFrom(features, count, dim, (k + 1) * g, r);
    fds.push(frechetDistanceOfStats(featureStats(gen, dim), featureStats(ref, dim)));
    const pr = precisionRecall(ref, r, gen, g, dim, { neighborhood: sizes.neighborhood });
    precision += pr.precision / splits;
    recall += pr.recall / splits;
  }
  return {
    generated: g,
    reference: r,
    splits,
    fd: fds.reduce((a, b) => a + b, 0) / splits,
    fdMin: Math.min(...fds),
    fdMax: Math.max(...fds),
    precision,
    recall,
  };
}
