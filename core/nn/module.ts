/**
 * Module: a tree of named parameters and buffers whose dotted names match PyTorch's
 * state-dict keys, so checkpoints move between the two unchanged.
 */

import type { HostArray } from "../backend.ts";
import { defaultBackend } from "../device.ts";
import { checkStateDict, type StateDictReport } from "../io/state_dict.ts";
import type { HostTensor, StateDict } from "../io/host_tensor.ts";
import type { Tensor } from "../tensor.ts";

/** Base class of layers and models: owns named parameters, buffers and child modules. */
export class Module {
  /** Training mode (e.g. dropout on); set by `train()` and `eval()`. */
  training = true;
  readonly #params = new Map<string, Tensor>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #children = new Map<string, Module>();

  /** Register a trainable parameter (kept outside any tidy scope). */
  protected param(name: string, t: Tensor): Tensor {
    t.keep().requireGrad();
    t.name = name;
    this.#params.set(name, t);
    return t;
  }

  /** Register a non-trainable tensor that is still saved in the state dict. */
  protected buffer(name: string, t: Tensor): Tensor {
    t.keep();
    t.name = name;
    this.#buffers.set(name, t);
    return t;
  }

  /** Register a child module; its parameters appear under `name.`. */
  protected child<M extends Module>(name: string, m: M): M {
    this.#children.set(name, m);
    return m;
  }

  /** Register a list of modules as name.0, name.1, ... (PyTorch's ModuleList). */
  protected list<M extends Module>(name: string, ms: M[]): M[] {
    const holder = new Module();
    ms.forEach((m, i) => holder.child(String(i), m));
    this.#children.set(name, holder);
    return ms;
  }

  /** Trainable parameters with their dotted names, this module's first. */
  namedParameters(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, p] of this.#params) out.push([prefix + n, p]);
    for (const [n, c] of this.#children) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }

  /** Trainable parameters, in `namedParameters` order. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Buffers with their dotted names, this module's first. */
  namedBuffers(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, b] of this.#buffers) out.push([prefix + n, b]);
    for (const [n, c] of this.#children) out.push(...c.namedBuffers(`${prefix}${n}.`));
    return out;
  }

  /** Parameters and buffers by PyTorch key, in registration order. */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /** Total number of trainable parameter elements. */
  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.size, 0);
  }

  /** Set training mode on this module and all children. */
  train(on = true): this {
    this.training = on;
    for (const c of this.#children.values()) c.train(on);
    return this;
  }

  /** Same as `train(false)`. */
  eval(): this {
    return this.train(false);
  }

  /**
   * Copy weights in from host tensors. With `strict`, missing, unexpected and
   * shape-mismatched keys are all listed in one error; otherwise matching keys load
   * and the report is returned.
   */
  loadStateDict(sd: StateDict, opts: { strict?: boolean; what?: string } = {}): StateDictReport {
    const own = this.stateDict();
    const expected = new Map([...own].map(([k, t]) => [k, [...t.shape]]));
    const report = checkStateDict(expected, sd, {
      strict: opts.strict ?? true,
      what: opts.what ?? this.constructor.name,
    });
    const skip = new Set([...report.missing, ...report.mismatched.map((m) => m.key)]);
    for (const [key, t] of own) {
      if (skip.has(key)) continue;
      const src = sd.get(key)!;
      assign(t, src);
    }
    return report;
  }

  /** Free every parameter and buffer. */
  dispose(): void {
    for (const t of this.stateDict().values()) t.dispose();
  }
}

/** Overwrite a parameter's storage with host data of the same shape. */
function assign(dst: Tensor, src: HostTensor): void {
  const b = dst.backend;
  let data: HostArray = src.data;
  if (src.dtype !== dst.dtype) {
    data = dst.dtype === "f32" ? Float32Array.from(src.data) : Int32Array.from(src.data);
  }
  const fresh = b.fromHost(data);
  b.copyInto(dst.view(), { storage: fresh, shape: dst.shape, strides: dst.strides, offset: 0 });
  b.release(fresh);
}

/** Host copy of a module's state dict (for saving). */
export async function hostStateDict(m: Module): Promise<StateDict> {
  const out: StateDict = new Map();
  for (const [k, t] of m.stateDict()) {
    const data = await t.data();
    out.set(k, {
      dtype: t.dtype,
      shape: [...t.shape],
      data: data.slice(),
      sourceDtype: t.dtype === "f32" ? "f32" : "i32",
    });
  }
  return out;
}

export { defaultBackend };
