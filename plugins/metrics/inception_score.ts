/**
 * Inception Score from classifier logits, computed the way torch-fidelity does
 * (`torch_fidelity/metric_isc.py`, `isc_features_to_metric`):
 *
 *   1. shuffle the N rows with `np.random.RandomState(2020).permutation(N)`;
 *   2. cast to float64, p = softmax(logits), log p = log_softmax(logits);
 *   3. cut into 10 contiguous splits [i N / 10, (i + 1) N / 10);
 *   4. per split: q = mean of p over its rows, score = exp(mean_rows sum_c p (log p - log q));
 *   5. report the mean and the population std (ddof 0) of the split scores.
 *
 * The shuffle matters because the splits do: to reproduce torch-fidelity's number we
 * reimplement numpy's legacy MT19937 `RandomState` and its Fisher-Yates shuffle exactly.
 */

export interface InceptionScoreOptions {
  /** Number of splits (torch-fidelity `isc_splits`, default 10). */
  splits?: number;
  /** Shuffle rows before splitting (torch-fidelity `samples_shuffle`, default true). */
  shuffle?: boolean;
  /** Seed of the numpy RandomState used for the shuffle (torch-fidelity `rng_seed`, 2020). */
  seed?: number;
}

export interface InceptionScore {
  mean: number;
  std: number;
  /** One score per split, in split order. */
  splitScores: number[];
}

/** Inception Score of `logits`, (count, classes) row-major (classes = 1008 for Inception). */
export function inceptionScore(
  logits: Float32Array | Float64Array,
  count: number,
  classes: number,
  options: InceptionScoreOptions = {},
): InceptionScore {
  const splits = options.splits ?? 10;
  const shuffle = options.shuffle ?? true;
  const seed = options.seed ?? 2020;
  if (logits.length !== count * classes) {
    throw new Error(
      `inceptionScore: logits have ${logits.length} values, expected (${count}, ${classes})`,
    );
  }
  if (!Number.isInteger(splits) || splits < 1 || count < splits) {
    throw new Error(
      `inceptionScore: need at least one sample per split, got ${count} samples ` +
        `for ${splits} splits`,
    );
  }
  const order = shuffle ? randomStatePermutation(seed, count) : null;
  const rowOf = (i: number) => (order ? order[i] : i);

  const p = new Float64Array(classes);
  const logP = new Float64Array(classes);
  const q = new Float64Array(classes);
  const splitScores: number[] = [];
  for (let s = 0; s < splits; s++) {
    const start = Math.floor((s * count) / splits);
    const end = Math.floor(((s + 1) * count) / splits);
    // Pass 1: q = mean of the split's probability rows.
    q.fill(0);
    for (let i = start; i < end; i++) {
      softmaxRow(logits, rowOf(i) * classes, classes, p, logP);
      for (let c = 0; c < classes; c++) q[c] += p[c];
    }
    for (let c = 0; c < classes; c++) q[c] = Math.log(q[c] / (end - start));
    // Pass 2: mean KL(p || q) over the split's rows.
    let klSum = 0;
    for (let i = start; i < end; i++) {
      softmaxRow(logits, rowOf(i) * classes, classes, p, logP);
      let kl = 0;
      for (let c = 0; c < classes; c++) kl += p[c] * (logP[c] - q[c]);
      klSum += kl;
    }
    splitScores.push(Math.exp(klSum / (end - start)));
  }
  const mean = splitScores.reduce((a, b) => a + b, 0) / splits;
  const variance = splitScores.reduce((a, b) => a + (b - mean) ** 2, 0) / splits;
  return { mean, std: Math.sqrt(variance), splitScores };
}

/** Float64 softmax and log-softmax of one row, max-shifted like torch's CPU kernels. */
function softmaxRow(
  x: Float32Array | Float64Array,
  offset: number,
  classes: number,
  p: Float64Array,
  logP: Float64Array,
): void {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) max = Math.max(max, x[offset + c]);
  if (!Number.isFinite(max)) {
    throw new Error(`inceptionScore: non-finite logit (max ${max}) in row at offset ${offset}`);
  }
  let sum = 0;
  for (let c = 0; c < classes; c++) {
    const e = Math.exp(x[offset + c] - max);
    p[c] = e;
    sum += e;
  }
  const logSum = Math.log(sum);
  for (let c = 0; c < classes; c++) {
    p[c] /= sum;
    logP[c] = x[offset + c] - max - logSum;
  }
}

// ---------------------------------------------------------------------------------------
// numpy's legacy RandomState: MT19937 seeded by init_genrand, bounded ints by masking
// and rejection (`random_interval`), and shuffle as a Fisher-Yates from the last element.

const MT_N = 624;
const MT_M = 397;

/** The 32-bit Mersenne Twister, seeded like `np.random.RandomState(seed)` for int seeds. */
export class MT19937 {
  #state = new Uint32Array(MT_N);
  #index = MT_N;

  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new Error(`MT19937: seed must be an integer in [0, 2^32), got ${seed}`);
    }
    const mt = this.#state;
    mt[0] = seed >>> 0;
    for (let i = 1; i < MT_N; i++) {
      const prev = mt[i - 1];
      mt[i] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + i) >>> 0;
    }
  }

  /** Next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    if (this.#index >= MT_N) this.#twist();
    let y = this.#state[this.#index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  #twist(): void {
    const mt = this.#state;
    for (let k = 0; k < MT_N; k++) {
      const y = (mt[k] & 0x80000000) | (mt[(k + 1) % MT_N] & 0x7fffffff);
      mt[k] = mt[(k + MT_M) % MT_N] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.#index = 0;
  }

  /** Uniform integer in [0, max] by masking to the next power of two minus one and rejecting. */
  interval(max: number): number {
    if (max === 0) return 0;
    if (max > 0xffffffff) throw new Error(`MT19937.interval: max ${max} needs 64-bit draws`);
    let mask = max;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    mask >>>= 0;
    for (;;) {
      const value = (this.nextUint32() & mask) >>> 0;
      if (value <= max) return value;
    }
  }
}

/** `np.random.RandomState(seed).permutation(n)`, bit for bit. */
export function randomStatePermutation(seed: number, n: number): Int32Array {
  const rng = new MT19937(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i >= 1; i--) {
    const j = rng.interval(i);
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}
