/**
 * FID statistics, Frechet distance, Inception Score and precision/recall against numpy /
 * scipy / torch references (tests/fixtures/make_metric_fixtures.py). Both sides build the
 * same float32 inputs from an integer-hash formula (tests/fixtures/metrics/synthetic.ts);
 * the fixture holds only checksums and results.
 *
 * The d = 2048, n = 5000 cases run on the OpenBLAS/LAPACK path and are skipped without it
 * (the TypeScript eigensolver needs ~30 s at d = 2048); the d = 160 cases run on the pure
 * TypeScript path always.
 */

import { expect, it } from "./lib/test.ts";
import { nativeLapack, withPureTs } from "../core/linalg/mod.ts";
import { frechetDistance, frechetDistanceParts } from "../plugins/metrics/frechet.ts";
import {
  inceptionScore,
  MT19937,
  randomStatePermutation,
} from "../plugins/metrics/inception_score.ts";
import { precisionRecall } from "../plugins/metrics/precision_recall.ts";
import { FeatureStats, type GaussianStats } from "../plugins/metrics/stats.ts";
import {
  type FeatureRecipe,
  type LogitRecipe,
  syntheticFeatures,
  syntheticLogits,
} from "./fixtures/metrics/synthetic.ts";

const FIXTURE = new URL("./fixtures/metrics/metrics_reference.json", import.meta.url);
const reference = JSON.parse(Deno.readTextFileSync(FIXTURE));
const hasLapack = nativeLapack() !== null;

interface Checksums {
  sum: number;
  sumAbs: number;
  sumSquares: number;
  weightedSum: number;
}

interface StatsSummary {
  mu: Checksums & { first: number; last: number };
  sigma: Checksums & { trace: number; probes: [number, number, number][] };
}

interface FidCase {
  name: string;
  a: FeatureRecipe;
  b: FeatureRecipe;
  statsA: StatsSummary;
  statsB: StatsSummary;
  featureChecksumA: Checksums;
  fidEigvals: number;
  fidSymmetric: number;
  fidSqrtm?: number;
}

/** Generated feature sets, kept for reuse across tests (5000 x 2048 takes ~1 s to build). */
const featureCache = new Map<string, Float32Array>();
function features(recipe: FeatureRecipe): Float32Array {
  const key = JSON.stringify(recipe);
  let x = featureCache.get(key);
  if (!x) featureCache.set(key, x = syntheticFeatures(recipe));
  return x;
}

const fidCase = (name: string): FidCase => {
  const found = reference.fid.find((c: FidCase) => c.name === name);
  if (!found) throw new Error(`metrics_reference.json: no FID case "${name}"`);
  return found;
};

/** The fixture script's checksums, with weights ((31 i + 17 j) mod 101) / 101. */
function checksums(x: ArrayLike<number>, rows: number, cols: number): Checksums {
  let sum = 0, sumAbs = 0, sumSquares = 0, weightedSum = 0;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = x[i * cols + j];
      sum += v;
      sumAbs += Math.abs(v);
      sumSquares += v * v;
      weightedSum += v * (((i * 31 + j * 17) % 101) / 101);
    }
  }
  return { sum, sumAbs, sumSquares, weightedSum };
}

function relativeError(got: number, want: number, scale = Math.abs(want)): number {
  return Math.abs(got - want) / scale;
}

function assertClose(got: number, want: number, tol: number, what: string, scale?: number) {
  const err = relativeError(got, want, scale);
  expect(err, `${what}: got ${got}, want ${want}, relative error ${err} > ${tol}`)
    .toBeLessThanOrEqual(tol);
}

/** Compares mean/covariance with the fixture's numpy checksums (sums differ in order only). */
function assertStatsMatch(stats: GaussianStats, want: StatsSummary, what: string) {
  const d = stats.dim;
  const mu = checksums(stats.mu, 1, d);
  const sigma = checksums(stats.sigma, d, d);
  // Sums of d^2 terms cancel; scale errors by the sum of magnitudes, not the sum itself.
  for (const key of ["sum", "weightedSum"] as const) {
    assertClose(mu[key], want.mu[key], 1e-12, `${what} mu.${key}`, want.mu.sumAbs);
    assertClose(sigma[key], want.sigma[key], 1e-12, `${what} sigma.${key}`, want.sigma.sumAbs);
  }
  assertClose(mu.sumSquares, want.mu.sumSquares, 1e-12, `${what} mu.sumSquares`);
  assertClose(sigma.sumAbs, want.sigma.sumAbs, 1e-12, `${what} sigma.sumAbs`);
  assertClose(sigma.sumSquares, want.sigma.sumSquares, 1e-12, `${what} sigma.sumSquares`);
  assertClose(stats.mu[0], want.mu.first, 1e-12, `${what} mu[0]`, want.mu.sumAbs / d);
  assertClose(stats.mu[d - 1], want.mu.last, 1e-12, `${what} mu[d-1]`, want.mu.sumAbs / d);
  let trace = 0;
  for (let i = 0; i < d; i++) trace += stats.sigma[i * d + i];
  assertClose(trace, want.sigma.trace, 1e-12, `${what} trace`);
  const typical = want.sigma.trace / d;
  for (const [i, j, v] of want.sigma.probes) {
    assertClose(stats.sigma[i * d + j], v, 1e-12, `${what} sigma[${i}, ${j}]`, typical);
  }
}

function statsOf(features: Float32Array, dim: number, batchRows: number): GaussianStats {
  const stats = new FeatureStats(dim);
  for (let r = 0; r * dim < features.length; r += batchRows) {
    stats.update(features.subarray(r * dim, Math.min(features.length, (r + batchRows) * dim)));
  }
  return stats.finalize();
}

function assertBitIdentical(a: Float64Array, b: Float64Array, what: string) {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) {
      expect.unreachable(`${what}: element ${i} differs: ${a[i]} vs ${b[i]}`);
    }
  }
}

/** Statistics and FID of one case, checked against every reference formula the case has. */
function checkFidCase(name: string, fidTolerance: number) {
  const c = fidCase(name);
  const fa = features(c.a), fb = features(c.b);
  const inputs = checksums(fa, c.a.rows, c.a.dim);
  assertClose(inputs.sumSquares, c.featureChecksumA.sumSquares, 1e-12, `${name} inputs`);
  const sa = statsOf(fa, c.a.dim, 64), sb = statsOf(fb, c.b.dim, 64);
  assertStatsMatch(sa, c.statsA, `${name} A`);
  assertStatsMatch(sb, c.statsB, `${name} B`);
  const parts = frechetDistanceParts(sa.mu, sa.sigma, sb.mu, sb.sigma);
  assertClose(parts.distance, c.fidEigvals, fidTolerance, `${name} FID vs eigvals(S1 S2)`);
  assertClose(parts.distance, c.fidSymmetric, fidTolerance, `${name} FID vs numpy eigh`);
  if (c.fidSqrtm !== undefined) {
    assertClose(parts.distance, c.fidSqrtm, fidTolerance, `${name} FID vs scipy sqrtm`);
  }
  return { sa, sb, fa, parts };
}

// ---- statistics ------------------------------------------------------------------------

it("FeatureStats: mean and covariance match numpy (d = 160, TypeScript path)", () => {
  withPureTs(() => {
    for (const name of ["random_small", "structured_small"]) {
      const c = fidCase(name);
      const fa = features(c.a);
      assertStatsMatch(statsOf(fa, c.a.dim, 600), c.statsA, name);
    }
  });
});

it("FeatureStats: bit-identical for batch sizes 1, 7, 64, all (d = 160, TS path)", () => {
  withPureTs(() => {
    const c = fidCase("structured_small");
    const fa = features(c.a);
    const all = statsOf(fa, c.a.dim, c.a.rows);
    for (const batch of [1, 7, 64]) {
      const s = statsOf(fa, c.a.dim, batch);
      assertBitIdentical(s.mu, all.mu, `mu, batch ${batch}`);
      assertBitIdentical(s.sigma, all.sigma, `sigma, batch ${batch}`);
    }
  });
});

it("FeatureStats: asking for results mid-stream does not change the final result", () => {
  const c = fidCase("random_small");
  const dim = c.a.dim;
  const fa = features(c.a);
  const plain = statsOf(fa, dim, 100);
  const probed = new FeatureStats(dim, { chunkRows: 128 });
  const reference128 = new FeatureStats(dim, { chunkRows: 128 });
  reference128.update(fa);
  for (let r = 0; r < c.a.rows; r += 100) {
    probed.update(fa.subarray(r * dim, Math.min(fa.length, (r + 100) * dim)));
    probed.finalize(); // folds nothing for good
  }
  assertBitIdentical(probed.finalize().sigma, reference128.finalize().sigma, "sigma");
  expect(probed.count).toBe(c.a.rows);
  // A different chunk size only changes rounding.
  const other = probed.finalize().sigma;
  let worst = 0;
  plain.sigma.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - other[i]))));
  expect(worst > 0 && worst < 1e-13 * c.statsA.sigma.trace, `worst difference ${worst}`)
    .toBeTruthy();
});

it("FeatureStats: too few samples and malformed batches are clear errors", () => {
  const stats = new FeatureStats(4);
  expect(() => stats.mean()).toThrow(/FeatureStats.mean: no samples yet/);
  expect(() => stats.finalize()).toThrow(/needs at least 2 samples, got 0 \(dim 4\)/);
  stats.update(Float32Array.of(1, 2, 3, 4));
  expect(Array.from(stats.mean())).toEqual([1, 2, 3, 4]);
  expect(() => stats.covariance()).toThrow(/needs at least 2 samples, got 1 \(dim 4\)/);
  expect(() => stats.update(new Float32Array(6))).toThrow(
    /6 values is not a whole number of rows of dim 4/,
  );
  expect(() => stats.update(Float32Array.of(0, NaN, 0, 0))).toThrow(
    /non-finite value NaN at row 0, column 1/,
  );
  stats.update(Float32Array.of(3, 2, 1, 0));
  // Two rows: covariance = (x1 - x2)(x1 - x2)^T / 2, np.cov's ddof = 1.
  expect(Array.from(stats.covariance().subarray(0, 4))).toEqual([2, 0, -2, -4]);
  expect(() => new FeatureStats(0)).toThrow(/dim must be a positive integer, got 0/);
});

// ---- Frechet distance --------------------------------------------------------------------

it("frechetDistance: matches scipy sqrtm / eigvals / eigh (d = 160, TS path, 1e-6)", () => {
  withPureTs(() => {
    for (const name of ["random_small", "same_distribution_small", "structured_small"]) {
      checkFidCase(name, 1e-6);
    }
  });
});

it("frechetDistance: singular covariances (n < d) match the eigenvalue formulas", () => {
  withPureTs(() => checkFidCase("singular_small", 1e-6));
});

it("frechetDistance: closed forms (identical, isotropic, diagonal) and shape errors", () => {
  const d = 3;
  const mu1 = Float64Array.of(0, 1, 2), mu2 = Float64Array.of(1, 1, 0);
  const s1 = Float64Array.of(4, 0, 0, 0, 1, 0, 0, 0, 9);
  const s2 = Float64Array.of(1, 0, 0, 0, 1, 0, 0, 0, 4);
  // Diagonal: sum (sqrt(a) - sqrt(b))^2 + |mu1 - mu2|^2 = (1 + 0 + 1) + 5.
  for (const run of [withPureTs, <T>(f: () => T) => f()]) {
    expect(Math.abs(run(() => frechetDistance(mu1, s1, mu2, s2)) - 7)).toBeLessThan(1e-13);
    expect(Math.abs(run(() => frechetDistance(mu1, s1, mu1, s1)))).toBeLessThan(1e-13);
  }
  expect(() => frechetDistance(mu1, s1, new Float64Array(2), s2)).toThrow(/shapes disagree/);
  expect(() => frechetDistance(mu1, s1.map((v, i) => (i === 4 ? NaN : v)), mu2, s2)).toThrow(
    /sigma1\[4\] is NaN/,
  );
  expect(d).toBe(3);
});

it.skipIf(!hasLapack)(
  "FID d = 2048, n = 5000: statistics and FID match numpy/scipy (BLAS path, 1e-6)",
  () => {
    for (const name of ["random_2048", "same_distribution_2048", "structured_2048"]) {
      checkFidCase(name, 1e-6);
    }
  },
);

it.skipIf(!hasLapack)(
  "FeatureStats d = 2048: bit-identical for batch sizes 1, 7, 64, 5000 (BLAS path)",
  () => {
    const c = fidCase("random_2048");
    const fa = features(c.a);
    const all = statsOf(fa, c.a.dim, 5000);
    for (const batch of [1, 7, 64]) {
      const s = statsOf(fa, c.a.dim, batch);
      assertBitIdentical(s.mu, all.mu, `mu, batch ${batch}`);
      assertBitIdentical(s.sigma, all.sigma, `sigma, batch ${batch}`);
    }
  },
);

// ---- Inception Score ---------------------------------------------------------------------

it("randomStatePermutation: bit-identical to numpy RandomState(2020).permutation", () => {
  // First outputs of numpy's MT19937 for seed 2020 (randint(0, 2**32, dtype=uint32)).
  const rng = new MT19937(2020);
  expect([rng.nextUint32(), rng.nextUint32(), rng.nextUint32()]).toEqual([
    4236026720,
    639299976,
    3751189827,
  ]);
  for (const { n, hash, head } of reference.permutations) {
    const p = randomStatePermutation(2020, n);
    let h = 0;
    for (const v of p) h = (h * 31 + v) % 1000000007;
    expect(h, `n=${n}`).toBe(hash);
    expect(Array.from(p.subarray(0, 8)), `n=${n}`).toEqual(head);
  }
});

it("inceptionScore: matches torch-fidelity's isc_features_to_metric (1e-10)", () => {
  for (const c of reference.inceptionScore) {
    const recipe = c.recipe as LogitRecipe;
    const logits = syntheticLogits(recipe);
    const got = inceptionScore(logits, recipe.rows, recipe.classes, c.options);
    // Every value is a sum of exps; measured agreement is ~1e-14, the brief's bound is 1e-5.
    assertClose(got.mean, c.mean, 1e-10, `${c.name} mean`);
    assertClose(got.std, c.std, 1e-8, `${c.name} std`, c.mean);
    got.splitScores.forEach((s, i) =>
      assertClose(s, c.splitScores[i], 1e-10, `${c.name} split ${i}`)
    );
  }
});

it("inceptionScore: closed forms and errors", () => {
  // Uniform predictions everywhere: p = q, KL = 0, IS = 1 exactly.
  const flat = new Float32Array(20 * 5).fill(0.25);
  const flatScore = inceptionScore(flat, 20, 5);
  expect(Math.abs(flatScore.mean - 1) < 1e-15 && flatScore.std < 1e-15).toBeTruthy();
  // One-hot-like predictions spread evenly over C classes: IS -> C per split.
  const C = 4, N = 40;
  const peaked = new Float32Array(N * C).fill(-1000);
  for (let i = 0; i < N; i++) peaked[i * C + (i % C)] = 0;
  const s = inceptionScore(peaked, N, C, { splits: 1 });
  expect(Math.abs(s.mean - C), `${s.mean}`).toBeLessThan(1e-12);
  expect(() => inceptionScore(new Float32Array(10), 5, 3)).toThrow(/expected \(5, 3\)/);
  expect(() => inceptionScore(new Float32Array(9 * 2), 9, 2)).toThrow(/9 samples for 10 splits/);
});

// ---- precision / recall ------------------------------------------------------------------

it("precisionRecall: k = 3 matches exact float64 cdist references, any block size", () => {
  for (const c of reference.precisionRecall) {
    const real = features(c.real), fake = features(c.fake);
    for (const [label, run] of [["ts", withPureTs], ["auto", <T>(f: () => T) => f()]] as const) {
      for (const blockRows of [1024, 97]) {
        const got = run(() =>
          precisionRecall(real, c.real.rows, fake, c.fake.rows, c.real.dim, { blockRows })
        );
        expect(got.precision, `${c.name} ${label} block ${blockRows} precision`).toBe(c.precision);
        expect(got.recall, `${c.name} ${label} block ${blockRows} recall`).toBe(c.recall);
        assertClose(got.fScore, c.fScore, 1e-15, `${c.name} fScore`);
      }
    }
    // The float64 reference is far from ties, so float32 torch-fidelity agrees too.
    expect(c.torchFidelityFloat32.precision.toFixed(6)).toBe(c.precision.toFixed(6));
  }
});

it("precisionRecall: identical sets give 1, disjoint clusters give 0", () => {
  const dim = 2, n = 8;
  const a = Float32Array.from({ length: n * dim }, (_, i) => (i * 7) % 5);
  const same = precisionRecall(a, n, Float64Array.from(a), n, dim);
  expect([same.precision, same.recall]).toEqual([1, 1]);
  const far = a.map((v) => v + 1000);
  const apart = precisionRecall(a, n, far, n, dim);
  expect([apart.precision, apart.recall, apart.fScore]).toEqual([0, 0, 0]);
  expect(() => precisionRecall(a, n, a.subarray(0, 6), 3, dim)).toThrow(
    /generated has 3 samples, need more than k=3/,
  );
});
