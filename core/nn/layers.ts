/** The basic layers, initialised as PyTorch does, with PyTorch's parameter names. */

import * as ops from "../ops/mod.ts";
import { Rng } from "../random.ts";
import type { Tensor } from "../tensor.ts";
import { Module } from "./module.ts";

/** U(-bound, bound): PyTorch's default (kaiming_uniform with a=sqrt(5)) for Linear/Conv. */
export function uniformInit(shape: number[], bound: number, gen: Rng): Tensor {
  return ops.rand(shape, gen, -bound, bound);
}

/** N(0, std²) initial values. */
export function normalInit(shape: number[], std: number, gen: Rng): Tensor {
  return ops.randn(shape, gen, std);
}

/** Fully connected layer: `x @ weight^T + bias`. */
export class Linear extends Module {
  /** (outFeatures, inFeatures). */
  readonly weight: Tensor;
  /** (outFeatures), or null when built with `bias: false`. */
  readonly bias: Tensor | null;
  /** Initialised as PyTorch's `nn.Linear`, drawing from `opts.gen`. */
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean; gen?: Rng } = {},
  ) {
    super();
    const gen = opts.gen ?? new Rng(0);
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

/** Lookup table from token ids to vectors. */
export class Embedding extends Module {
  /** (count, dim). */
  readonly weight: Tensor;
  /** Initialised N(0, std²) (std 1 by default, as PyTorch). */
  constructor(
    readonly count: number,
    readonly dim: number,
    opts: { gen?: Rng; std?: number } = {},
  ) {
    super();
    this.weight = this.param(
      "weight",
      normalInit([count, dim], opts.std ?? 1, opts.gen ?? new Rng(0)),
    );
  }
  /** Rows of `weight` for each id in `ids` (i32); the result has shape `[...ids.shape, dim]`. */
  forward(ids: Tensor): Tensor {
    return ops.embedding(this.weight, ids);
  }
}

/** Layer normalisation over the last axis. */
export class LayerNorm extends Module {
  /** Scale (dim), or null without `affine`. */
  readonly weight: Tensor | null;
  /** Shift (dim), or null without `affine`. */
  readonly bias: Tensor | null;
  /** `affine: false` leaves out the learnable scale and shift. */
  constructor(readonly dim: number, readonly eps = 1e-5, affine = true) {
    super();
    this.weight = affine ? this.param("weight", ops.ones([dim])) : null;
    this.bias = affine ? this.param("bias", ops.zeros([dim])) : null;
  }
  /** Normalise over the last axis. */
  forward(x: Tensor): Tensor {
    return ops.layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** Group normalisation of (N, C, ...) input. */
export class GroupNorm extends Module {
  /** Scale (channels). */
  readonly weight: Tensor;
  /** Shift (channels). */
  readonly bias: Tensor;
  /** `channels` must be divisible by `groups`. */
  constructor(readonly groups: number, readonly channels: number, readonly eps = 1e-5) {
    super();
    this.weight = this.param("weight", ops.ones([channels]));
    this.bias = this.param("bias", ops.zeros([channels]));
  }
  /** Normalise each group of channels of each image. */
  forward(x: Tensor): Tensor {
    return ops.groupNorm(x, this.groups, this.weight, this.bias, this.eps);
  }
}

/** Overwrites a parameter with zeros in place (a branch that starts switched off). */
export function zeroFill(t: Tensor): void {
  const zeros = ops.zeros(t.shape);
  t.backend.copyInto(t.view(), zeros.view());
  zeros.dispose();
}

/** Options of `Conv2d`. */
export interface Conv2dConfig {
  /** Stride in both directions (default 1). */
  stride?: number;
  /** Zero padding on every side (default 0). */
  padding?: number;
  /** Channel groups (default 1). */
  groups?: number;
  /** False leaves out the bias (default true). */
  bias?: boolean;
  /** Draws the initial weights (default: seed 0). */
  gen?: Rng;
}

/** 2-D convolution of NCHW input with a square kernel. */
export class Conv2d extends Module {
  /** (outC, inC / groups, kernel, kernel). */
  readonly weight: Tensor;
  /** (outC), or null when built with `bias: false`. */
  readonly bias: Tensor | null;
  /** Stride in both directions. */
  readonly stride: number;
  /** Zero padding on every side. */
  readonly padding: number;
  /** Channel groups. */
  readonly groups: number;
  /** Initialised as PyTorch's `nn.Conv2d`. */
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
    const gen = cfg.gen ?? new Rng(0);
    const fanIn = (inC / this.groups) * kernel * kernel;
    const bound = 1 / Math.sqrt(fanIn);
    this.weight = this.param(
      "weight",
      uniformInit([outC, inC / this.groups, kernel, kernel], bound, gen),
    );
    this.bias = cfg.bias === false ? null : this.param("bias", uniformInit([outC], bound, gen));
  }
  /** Convolve (N, inC, H, W) input. */
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
  /** dim to hidden. */
  readonly fc1: Linear;
  /** hidden to dim. */
  readonly fc2: Linear;
  /** `gen` draws the initial weights of both layers. */
  constructor(
    dim: number,
    hidden: number,
    readonly activation: "gelu" | "relu" | "silu" = "gelu",
    gen: Rng = new Rng(0),
  ) {
    super();
    this.fc1 = this.child("fc1", new Linear(dim, hidden, { gen }));
    this.fc2 = this.child("fc2", new Linear(hidden, dim, { gen }));
  }
  /** fc2(activation(fc1(x))). */
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
