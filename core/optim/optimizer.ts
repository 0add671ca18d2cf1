/** What every optimiser offers, and helpers for saving optimiser state. */

import type { Backend, Storage } from "../backend.ts";

export interface OptimizerState {
  kind: string;
  step: number;
  lr: number;
  /** Named lists of per-parameter state buffers (moments, momentum). */
  buffers: Record<string, Float32Array[]>;
}

export interface Optimizer {
  lr: number;
  step: number;
  update(gradScale?: number): void;
  zeroGrad(): void;
  state(): Promise<OptimizerState>;
  loadState(s: OptimizerState): void;
  dispose(): void;
}

export async function storageToHost(s: Storage): Promise<Float32Array> {
  return (await s.backend.read(s) as Float32Array).slice();
}

export function hostToStorage(b: Backend, h: Float32Array, size: number, what: string): Storage {
  if (h.length !== size) {
    throw new Error(`optimiser state ${what}: ${h.length} values for a parameter of ${size}`);
  }
  return b.fromHost(h);
}
