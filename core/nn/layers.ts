/** The basic layers, initialised as PyTorch does, with PyTorch's parameter names. */

import * as ops from "../ops/mod.ts";
import { Generator } from "../random.ts";
import type { Tensor } from "../tensor.ts";
import { Module } from "./module.ts";

/** U(-bound, bound): PyTorch's default (kaiming_uniform with a=sqrt(5)) for Linear/Conv. */
export function uniformInit(shape: number[], bound: number, gen: Generator): Tensor {
  return ops.rand(shape, gen, -bound, bound);
}

export function normalInit(shape: number[], std: number, gen: Generator): Tensor {
  return ops.randn(shape, gen, std);
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean; gen?: Generator } = {},
  ) {
    super();
    const gen = opts.gen ?? new Generator(0);
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.param("weight", uniformInit([outFeatures, inFeatures], bound, gen));
    this.bias = opts.bias === false
      ? null
      : this.param("bias", uniformInit([outFeatures], bound, gen));
  }
  /**
   * x @ weight^T + bias, and optionally the element-wise work a transformer puts right after
   * a Linear (an activation, a LayerScale, the residual add), run as the GEMM's epilogue.
   */
  forward(x: Tensor, epilogue?: ops.FusedLinearOptions): Tensor {
    return epilogue
      ? ops.fusedLinear(x, this.weight, this.bias, epilogue)
      : ops.linear(x, this.weight, this.bias);
  }
}

export class Embedding extends Module {
  readonly weight: Tensor;
  constructor(
    readonly count: number,
    readonly dim: number,
    opts: { gen?: Generator; std?: number } = {},
  ) {
    super();
    this.weight = this.param(
      "weight",
      normalInit([count, dim], opts.std ?? 1, opts.gen ?? new Generator(0)),
    );
  }
  forward(ids: Tensor): Tensor {
    return ops.embedding(this.weight, ids);
  }
}

export class LayerNorm extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  constructor(readonly dim: number, readonly eps = 1e-5, affine = true) {
    super();
    this.weight = affine ? this.param("weight", ops.ones([dim])) : null;
    this.bias = affine ? this.param("bias", ops.zeros([dim])) : null;
  }
  forward(x: Tensor): Tensor {
    return ops.layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export class GroupNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly groups: number, readonly channels: number, readonly eps = 1e-5) {
    super();
    this.weight = this.param("weight", ops.ones([channels]));
    this.bias = this.param("bias", ops.zeros([channels]));
  }
  forward(x: Tensor): Tensor {
    return ops.groupNorm(x, this.groups, this.weight, this.bias, this.eps);
  }
}

export interface Conv2dConfig {
  stride?: number;
  padding?: number;
  groups?: number;
  bias?: boolean;
  gen?: Generator;
}

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: number;
  readonly padding: number;
  readonly groups: number;
  constructor(
    readonly inC: number,
    readonly outC: number,
    readonly kernel: number,
    cfg: Conv2dConfig = {},
  ) {
    super();
    this.stride = cfg.stride ?? 1;
    this.padding = cfg.padding ?? 0;
    this.groups = cfg.groups ?? 1;
    const gen = cfg.gen ?? new Generator(0);
    const fanIn = (inC / this.groups) * kernel * kernel;
    const bound = 1 / Math.sqrt(fanIn);
    this.weight = this.param(
      "weight",
      uniformInit([outC, inC / this.groups, kernel, kernel], bound, gen),
    );
    this.bias = cfg.bias === false ? null : this.param("bias", uniformInit([outC], bound, gen));
  }
  forward(x: Tensor): Tensor {
    return ops.conv2d(x, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      groups: this.groups,
    });
  }
}

/** fc1 -> activation -> fc2, the transformer feed-forward block. */
export class MLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(
    dim: number,
    hidden: number,
    readonly activation: "gelu" | "relu" | "silu" = "gelu",
    gen: Generator = new Generator(0),
  ) {
    super();
    this.fc1 = this.child("fc1", new Linear(dim, hidden, { gen }));
    this.fc2 = this.child("fc2", new Linear(hidden, dim, { gen }));
  }
  forward(x: Tensor): Tensor {
    const h = this.fc1.forward(x);
    const a = this.activation === "gelu"
      ? ops.gelu(h)
      : this.activation === "relu"
      ? ops.relu(h)
      : ops.silu(h);
    h.dispose();
    const y = this.fc2.forward(a);
    a.dispose();
    return y;
  }
}
