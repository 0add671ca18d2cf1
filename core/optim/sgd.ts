/** SGD with momentum (PyTorch semantics: buf = mu*buf + g; p -= lr*buf), as DiGIT's linear probe uses. */

import type { Storage } from "../backend.ts";
import type { Tensor } from "../tensor.ts";
import type { Optimizer, OptimizerState } from "./optimizer.ts";
import { hostToStorage, storageToHost } from "./optimizer.ts";

/** SGD with momentum and weight decay over a fixed list of parameters. */
export class SGD implements Optimizer {
  /** Updates done so far. */
  step = 0;
  /** Learning rate of the next update. */
  lr: number;
  /** Momentum factor (0: plain SGD). */
  readonly momentum: number;
  /** L2 penalty added to the gradient. */
  readonly weightDecay: number;
  readonly #buf: Storage[];

  /** Momentum buffers start at zero. */
  constructor(
    readonly params: Tensor[],
    cfg: { lr: number; momentum?: number; weightDecay?: number },
  ) {
    this.lr = cfg.lr;
    this.momentum = cfg.momentum ?? 0;
    this.weightDecay = cfg.weightDecay ?? 0;
    this.#buf = params.map((p) => p.backend.fill("f32", p.size, 0));
  }

  /** One update from the accumulated `.grad`s, each multiplied by gradScale first. */
  update(gradScale = 1): void {
    this.step++;
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      const b = p.backend;
      // g' = scale*g + wd*p ; buf = mu*buf + g' ; p -= lr*buf  (composed from kernels)
      const view = (s: Storage) => ({ storage: s, shape: [p.size], strides: [1], offset: 0 });
      let g = b.affine(p.grad.storage, gradScale, 0);
      if (this.weightDecay) {
        const wp = b.affine(p.storage, this.weightDecay, 0);
        const s = b.binary("add", view(g), view(wp), [p.size], "f32");
        b.release(g);
        b.release(wp);
        g = s;
      }
      let step = g;
      if (this.momentum) {
        const mb = b.affine(this.#buf[i], this.momentum, 0);
        const nb = b.binary("add", view(mb), view(g), [p.size], "f32");
        b.release(mb);
        b.release(g);
        b.release(this.#buf[i]);
        this.#buf[i] = nb;
        step = nb;
      }
      const scaled = b.affine(step, -this.lr, 0);
      const np = b.binary("add", view(p.storage), view(scaled), [p.size], "f32");
      b.copyInto(view(p.storage), view(np));
      b.release(np);
      b.release(scaled);
      if (step !== this.#buf[i]) b.release(step);
    });
  }

  /** Drop the parameters' gradients. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Step, lr and momentum buffers, copied to the host for a checkpoint. */
  async state(): Promise<OptimizerState> {
    return {
      kind: "sgd",
      step: this.step,
      lr: this.lr,
      buffers: { momentum: await Promise.all(this.#buf.map(storageToHost)) },
    };
  }

  /** Restore a `state()` snapshot taken with the same parameter list. */
  loadState(s: OptimizerState): void {
    if (s.kind !== "sgd") throw new Error(`SGD: cannot load optimiser state of kind '${s.kind}'`);
    this.step = s.step;
    this.lr = s.lr;
    s.buffers.momentum.forEach((h, i) => {
      this.#buf[i].backend.release(this.#buf[i]);
      this.#buf[i] = hostToStorage(
        this.params[i].backend,
        h,
        this.params[i].size,
        `momentum[${i}]`,
      );
    });
  }

  /** Free the momentum buffers. */
  dispose(): void {
    for (const s of this.#buf) s.backend.release(s);
  }
}
