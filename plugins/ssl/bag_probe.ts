/**
 * A quick check of what semantic tokens carry, independent of stage 1: multinomial logistic
 * regression on each image's bag of tokens (the histogram of its token ids, as fractions).
 * Plain host arithmetic, full-batch gradient descent with momentum and a small L2 penalty;
 * the problem is convex and tiny (images x K features, 10 classes), so this converges in a
 * few hundred steps.
 */

/** (count, vocab) token fractions per image from (count, length) token ids. */
export function bagOfTokens(tokens: Int32Array, count: number, vocab: number): Float32Array {
  const length = tokens.length / count;
  const out = new Float32Array(count * vocab);
  for (let n = 0; n < count; n++) {
    for (let i = 0; i < length; i++) out[n * vocab + tokens[n * length + i]] += 1 / length;
  }
  return out;
}

export interface LogisticOptions {
  classes: number;
  steps?: number;
  lr?: number;
  l2?: number;
}

export interface LogisticModel {
  /** (classes, dim + 1): weights then the bias. */
  weights: Float64Array;
  dim: number;
  classes: number;
}

/** Row n's class probabilities under the model, into `p`. */
function softmaxRow(m: LogisticModel, x: Float32Array, n: number, p: Float64Array): void {
  const { dim, classes, weights: w } = m;
  let max = -Infinity;
  for (let c = 0; c < classes; c++) {
    let z = w[c * (dim + 1) + dim];
    for (let j = 0; j < dim; j++) z += w[c * (dim + 1) + j] * x[n * dim + j];
    p[c] = z;
    if (z > max) max = z;
  }
  let s = 0;
  for (let c = 0; c < classes; c++) s += p[c] = Math.exp(p[c] - max);
  for (let c = 0; c < classes; c++) p[c] /= s;
}

/** Fits on (x, labels); x is (count, dim) with rows of norm <= 1 (token fractions are). */
export function fitLogistic(
  x: Float32Array,
  labels: Int32Array,
  opts: LogisticOptions,
): LogisticModel {
  const count = labels.length, dim = x.length / count, { classes } = opts;
  const steps = opts.steps ?? 500, lr = opts.lr ?? 1, l2 = opts.l2 ?? 1e-4;
  const m: LogisticModel = { weights: new Float64Array(classes * (dim + 1)), dim, classes };
  const grad = new Float64Array(m.weights.length), velocity = new Float64Array(m.weights.length);
  const p = new Float64Array(classes);
  for (let step = 0; step < steps; step++) {
    grad.fill(0);
    for (let n = 0; n < count; n++) {
      softmaxRow(m, x, n, p);
      p[labels[n]] -= 1;
      for (let c = 0; c < classes; c++) {
        const g = p[c] / count;
        for (let j = 0; j < dim; j++) grad[c * (dim + 1) + j] += g * x[n * dim + j];
        grad[c * (dim + 1) + dim] += g;
      }
    }
    for (let i = 0; i < grad.length; i++) {
      velocity[i] = 0.9 * velocity[i] + grad[i] + l2 * m.weights[i];
      m.weights[i] -= lr * velocity[i];
    }
  }
  return m;
}

/** Top-1 accuracy of the model on (x, labels). */
export function logisticAccuracy(m: LogisticModel, x: Float32Array, labels: Int32Array): number {
  const p = new Float64Array(m.classes);
  let right = 0;
  for (let n = 0; n < labels.length; n++) {
    softmaxRow(m, x, n, p);
    let best = 0;
    for (let c = 1; c < m.classes; c++) if (p[c] > p[best]) best = c;
    if (best === labels[n]) right++;
  }
  return right / labels.length;
}
