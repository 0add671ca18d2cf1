/** What every optimiser offers, and helpers for saving optimiser state. */

import type { Backend, Storage } from "../backend.ts";

/** An optimiser's state on the host, for checkpoints. */
export interface OptimizerState {
  /** Which optimiser wrote it (`adamw`, `sgd`). */
  kind: string;
  /** Updates done. */
  step: number;
  /** Learning rate at the time. */
  lr: number;
  /** Named lists of per-parameter state buffers (moments, momentum). */
  buffers: Record<string, Float32Array[]>;
}

/** What the trainer needs from an optimiser. */
export interface Optimizer {
  /** Learning rate of the next update. */
  lr: number;
  /** Updates done so far. */
  step: number;
  /** One update from the accumulated `.grad`s, each multiplied by gradScale first. */
  update(gradScale?: number): void;
  /** Drop the parameters' gradients. */
  zeroGrad(): void;
  /** Snapshot for a checkpoint. */
  state(): Promise<OptimizerState>;
  /** Restore a `state()` snapshot. */
  loadState(s: OptimizerState): void;
  /** Free the optimiser's device buffers. */
  dispose(): void;
}

/** A host copy of an f32 storage. */
export async function storageToHost(s: Storage): Promise<Float32Array> {
  return (await s.backend.read(s) as Float32Array).slice();
}

/** `h` on backend `b`; throws, naming `what`, unless it has `size` values. */
export function hostToStorage(b: Backend, h: Float32Array, size: number, what: string): Storage {
  if (h.length !== size) {
    throw new Error(`optimiser state ${what}: ${h.length} values for a parameter of ${size}`);
  }
  return b.fromHost(h);
}
