/**
 * Counter-based random numbers: value i of a stream is a pure function of (seed, i).
 *
 * Every backend computes the same hash (the WGSL twin lives in the WebGPU backend), so
 * dropout masks and initialisations agree across devices, and a generator's whole state
 * is two integers that a checkpoint can store for exact resume.
 */

/** PCG output permutation (O'Neill's RXS-M-XS on a 32-bit LCG step). */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** 32 random bits for element `index` of the stream `seed`. */
export function hashBits(seed: number, index: number): number {
  return pcgHash((pcgHash(index >>> 0) + Math.imul(seed >>> 0, 0x9e3779b9)) >>> 0);
}

const TWO_POW_M24 = 1 / 16777216;

/** Uniform in [0, 1) with 24 bits, exactly representable in f32. */
export function uniformAt(seed: number, index: number): number {
  return (hashBits(seed, index) >>> 8) * TWO_POW_M24;
}

/** Standard normal by Box-Muller from two independent streams. */
export function normalAt(seed: number, index: number): number {
  const u1 = ((hashBits(seed, index) >>> 8) + 1) * TWO_POW_M24; // (0, 1]
  const u2 = uniformAt((seed ^ 0x5bd1e995) >>> 0, index);
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** A generator's whole state, for checkpoints. */
export interface RngState {
  /** Stream seed (uint32). */
  seed: number;
  /** Next counter to draw. */
  offset: number;
}

/**
 * A seeded stream. Each draw consumes `n` counters, so the state after any sequence of
 * draws is just (seed, offset).
 */
export class Rng {
  /** Stream seed (uint32). */
  seed: number;
  /** Next counter to draw (wraps at 2^32). */
  offset: number;

  /** Start stream `seed` at counter `offset`. */
  constructor(seed = 0, offset = 0) {
    this.seed = seed >>> 0;
    this.offset = offset;
  }

  /** Reserve `n` counters and return the first; kernels use (seed, start + i). */
  take(n: number): number {
    const start = this.offset;
    this.offset = (this.offset + n) % 0x100000000;
    return start;
  }

  /** One draw, uniform in [0, 1). */
  uniform(): number {
    return uniformAt(this.seed, this.take(1));
  }

  /** One standard normal draw. */
  normal(): number {
    return normalAt(this.seed, this.take(1));
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Fill `out` uniformly in [lo, hi) and return it. */
  fillUniform(out: Float32Array, lo = 0, hi = 1): Float32Array {
    const start = this.take(out.length);
    for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * uniformAt(this.seed, start + i);
    return out;
  }

  /** Fill `out` with normal draws of the given mean and std and return it. */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    const start = this.take(out.length);
    for (let i = 0; i < out.length; i++) out[i] = mean + std * normalAt(this.seed, start + i);
    return out;
  }

  /** Fisher-Yates permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }

  /** Snapshot for `setState`. */
  state(): RngState {
    return { seed: this.seed, offset: this.offset };
  }

  /** Resume from a `state()` snapshot. */
  setState(s: RngState): void {
    this.seed = s.seed >>> 0;
    this.offset = s.offset;
  }

  /** An independent child stream, derived deterministically. */
  fork(tag: number): Rng {
    return new Rng(hashBits(this.seed, 0x7fffffff - tag), 0);
  }
}
