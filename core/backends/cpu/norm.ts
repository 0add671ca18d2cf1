/**
 * Layer norm over rows and group norm over (N, C, HW), forward and backward, fused.
 *
 * Statistics use float64 and two passes (mean, then centred variance), biased variance
 * as in PyTorch; rstd = 1/sqrt(var + eps). With xhat = (x - mean) * rstd and g = dy * w,
 *   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
 *   dweight = sum dy * xhat, dbias = sum dy (over everything but the channel).
 * Missing weight/bias act as ones/zeros; dweight and dbias are returned regardless.
 */

export interface NormForward {
  y: Float32Array;
  mean: Float32Array;
  rstd: Float32Array;
}

export interface NormBackward {
  dx: Float32Array;
  dweight: Float32Array;
  dbias: Float32Array;
}

/** Mean and rstd of x[start : start+count] in float64. */
function moments(x: Float32Array, start: number, count: number, eps: number): [number, number] {
  let s = 0;
  for (let i = start, end = start + count; i < end; i++) s += x[i];
  const mean = s / count;
  let ss = 0;
  for (let i = start, end = start + count; i < end; i++) {
    const d = x[i] - mean;
    ss += d * d;
  }
  return [mean, 1 / Math.sqrt(ss / count + eps)];
}

export function layerNorm(
  x: Float32Array,
  weight: Float32Array | null,
  bias: Float32Array | null,
  rows: number,
  cols: number,
  eps: number,
): NormForward {
  const y = new Float32Array(rows * cols);
  const meanOut = new Float32Array(rows);
  const rstdOut = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const [mean, rstd] = moments(x, base, cols, eps);
    meanOut[r] = mean;
    rstdOut[r] = rstd;
    for (let c = 0; c < cols; c++) {
      const xhat = (x[base + c] - mean) * rstd;
      y[base + c] = xhat * (weight ? weight[c] : 1) + (bias ? bias[c] : 0);
    }
  }
  return { y, mean: meanOut, rstd: rstdOut };
}

export function layerNormBackward(
  x: Float32Array,
  weight: Float32Array | null,
  mean: Float32Array,
  rstd: Float32Array,
  dy: Float32Array,
  rows: number,
  cols: number,
): NormBackward {
  const dx = new Float32Array(rows * cols);
  const dw = new Float64Array(cols);
  const db = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const mu = mean[r];
    const rs = rstd[r];
    let sumG = 0;
    let sumGX = 0;
    for (let c = 0; c < cols; c++) {
      const xhat = (x[base + c] - mu) * rs;
      const d = dy[base + c];
      const g = d * (weight ? weight[c] : 1);
      sumG += g;
      sumGX += g * xhat;
      dw[c] += d * xhat;
      db[c] += d;
    }
    const meanG = sumG / cols;
    const meanGX = sumGX / cols;
    for (let c = 0; c < cols; c++) {
      const xhat = (x[base + c] - mu) * rs;
      const g = dy[base + c] * (weight ? weight[c] : 1);
      dx[base + c] = rs * (g - meanG - xhat * meanGX);
    }
  }
  return { dx, dweight: Float32Array.from(dw), dbias: Float32Array.from(db) };
}

export function groupNorm(
  x: Float32Array,
  weight: Float32Array | null,
  bias: Float32Array | null,
  N: number,
  C: number,
  HW: number,
  groups: number,
  eps: number,
): NormForward {
  const perGroup = C / groups;
  const y = new Float32Array(N * C * HW);
  const meanOut = new Float32Array(N * groups);
  const rstdOut = new Float32Array(N * groups);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      const start = (n * C + g * perGroup) * HW;
      const [mean, rstd] = moments(x, start, perGroup * HW, eps);
      meanOut[n * groups + g] = mean;
      rstdOut[n * groups + g] = rstd;
      for (let cg = 0; cg < perGroup; cg++) {
        const c = g * perGroup + cg;
        // Fold the affine into one scale and shift per channel.
        const scale = rstd * (weight ? weight[c] : 1);
        const shift = (bias ? bias[c] : 0) - mean * scale;
        const base = (n * C + c) * HW;
        for (let i = base, end = base + HW; i < end; i++) y[i] = x[i] * scale + shift;
      }
    }
  }
  return { y, mean: meanOut, rstd: rstdOut };
}

export function groupNormBackward(
  x: Float32Array,
  weight: Float32Array | null,
  mean: Float32Array,
  rstd: Float32Array,
  dy: Float32Array,
  N: number,
  C: number,
  HW: number,
  groups: number,
): NormBackward {
  const perGroup = C / groups;
  const count = perGroup * HW;
  const dx = new Float32Array(N * C * HW);
  const dw = new Float64Array(C);
  const db = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      const mu = mean[n * groups + g];
      const rs = rstd[n * groups + g];
      let sumG = 0;
      let sumGX = 0;
      for (let cg = 0; cg < perGroup; cg++) {
        const c = g * perGroup + cg;
        const w = weight ? weight[c] : 1;
        const base = (n * C + c) * HW;
        let sumDy = 0;
        let sumDyX = 0;
        for (let i = base, end = base + HW; i < end; i++) {
          const xhat = (x[i] - mu) * rs;
          sumDy += dy[i];
          sumDyX += dy[i] * xhat;
        }
        dw[c] += sumDyX;
        db[c] += sumDy;
        sumG += w * sumDy;
        sumGX += w * sumDyX;
      }
      const meanG = sumG / count;
      const meanGX = sumGX / count;
      for (let cg = 0; cg < perGroup; cg++) {
        const c = g * perGroup + cg;
        const w = weight ? weight[c] : 1;
        const base = (n * C + c) * HW;
        for (let i = base, end = base + HW; i < end; i++) {
          const xhat = (x[i] - mu) * rs;
          dx[i] = rs * (dy[i] * w - meanG - xhat * meanGX);
        }
      }
    }
  }
  return { dx, dweight: Float32Array.from(dw), dbias: Float32Array.from(db) };
}
