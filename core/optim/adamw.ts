/**
 * AdamW with decoupled weight decay (PyTorch's torch.optim.AdamW, which is also what
 * fairseq's `adam` optimiser computes): p -= lr*wd*p, then the Adam step.
 */

import type { Storage } from "../backend.ts";
import type { Tensor } from "../tensor.ts";
import type { Optimizer, OptimizerState } from "./optimizer.ts";
import { hostToStorage, storageToHost } from "./optimizer.ts";

/** Hyper-parameters of `AdamW`; defaults as PyTorch's. */
export interface AdamWConfig {
  /** Learning rate. */
  lr: number;
  /** Moment decay rates (default [0.9, 0.999]). */
  betas?: [number, number];
  /** Denominator term (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (default 0.01). */
  weightDecay?: number;
}

/** AdamW over a fixed list of parameters; moments live on each parameter's device. */
export class AdamW implements Optimizer {
  /** Learning rate of the next update (schedules set it each step). */
  lr: number;
  /** First-moment decay. */
  readonly beta1: number;
  /** Second-moment decay. */
  readonly beta2: number;
  /** Denominator term. */
  readonly eps: number;
  /** Decoupled weight decay. */
  readonly weightDecay: number;
  /** Updates done so far. */
  step = 0;
  readonly #m: Storage[];
  readonly #v: Storage[];

  /** Moments start at zero. */
  constructor(readonly params: Tensor[], cfg: AdamWConfig) {
    this.lr = cfg.lr;
    [this.beta1, this.beta2] = cfg.betas ?? [0.9, 0.999];
    this.eps = cfg.eps ?? 1e-8;
    this.weightDecay = cfg.weightDecay ?? 0.01;
    this.#m = params.map((p) => p.backend.fill("f32", p.size, 0));
    this.#v = params.map((p) => p.backend.fill("f32", p.size, 0));
  }

  /** One update from the accumulated `.grad`s, each multiplied by gradScale first. */
  update(gradScale = 1): void {
    this.step++;
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      p.backend.adamw(p.storage, p.grad.storage, this.#m[i], this.#v[i], {
        lr: this.lr,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        weightDecay: this.weightDecay,
        step: this.step,
        gradScale,
      });
    });
  }

  /** Drop the parameters' gradients. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Step, lr and moments, copied to the host for a checkpoint. */
  async state(): Promise<OptimizerState> {
    return {
      kind: "adamw",
      step: this.step,
      lr: this.lr,
      buffers: {
        m: await Promise.all(this.#m.map(storageToHost)),
        v: await Promise.all(this.#v.map(storageToHost)),
      },
    };
  }

  /** Restore a `state()` snapshot taken with the same parameter list. */
  loadState(s: OptimizerState): void {
    if (s.kind !== "adamw") {
      throw new Error(`AdamW: cannot load optimiser state of kind '${s.kind}'`);
    }
    this.step = s.step;
    this.lr = s.lr;
    for (const [name, list] of [["m", this.#m], ["v", this.#v]] as const) {
      const src = s.buffers[name];
      if (src.length !== list.length) {
        throw new Error(
          `AdamW: state has ${src.length} '${name}' buffers, the model has ${list.length} parameters`,
        );
      }
      src.forEach((h, i) => {
        list[i].backend.release(list[i]);
        list[i] = hostToStorage(this.params[i].backend, h, this.params[i].size, `${name}[${i}]`);
      });
    }
  }

  /** Free the moments. */
  dispose(): void {
    for (const s of [...this.#m, ...this.#v]) s.backend.release(s);
  }
}
