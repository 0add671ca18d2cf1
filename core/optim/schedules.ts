/** Learning-rate schedules as pure functions of the update number (1-based). */

/** fairseq's inverse_sqrt: linear warm-up from initLr to lr, then lr*sqrt(warmup/step). */
export function inverseSqrt(
  step: number,
  o: { lr: number; warmup: number; initLr?: number },
): number {
  const init = o.initLr ?? 0;
  if (o.warmup > 0 && step < o.warmup) return init + (o.lr - init) * step / o.warmup;
  return o.lr * Math.sqrt(Math.max(o.warmup, 1) / Math.max(step, 1));
}

/** Cosine from lr to minLr over `total` steps after an optional linear warm-up. */
export function cosine(
  step: number,
  o: { lr: number; total: number; warmup?: number; minLr?: number },
): number {
  const w = o.warmup ?? 0;
  const min = o.minLr ?? 0;
  if (step < w) return o.lr * step / w;
  const t = Math.min(1, (step - w) / Math.max(1, o.total - w));
  return min + 0.5 * (o.lr - min) * (1 + Math.cos(Math.PI * t));
}

/** Linear warm-up to lr, then constant. */
export function linearWarmup(step: number, o: { lr: number; warmup: number }): number {
  return step < o.warmup ? o.lr * step / o.warmup : o.lr;
}

/** A learning-rate schedule as configs describe it. */
export type Schedule =
  | { kind: "inverse_sqrt"; lr: number; warmup: number; initLr?: number }
  | { kind: "cosine"; lr: number; total: number; warmup?: number; minLr?: number }
  | { kind: "linear_warmup"; lr: number; warmup: number }
  | { kind: "constant"; lr: number };

/** The learning rate of update `step` (1-based) under `s`. */
export function lrAt(step: number, s: Schedule): number {
  switch (s.kind) {
    case "inverse_sqrt":
      return inverseSqrt(step, s);
    case "cosine":
      return cosine(step, s);
    case "linear_warmup":
      return linearWarmup(step, s);
    case "constant":
      return s.lr;
  }
}
