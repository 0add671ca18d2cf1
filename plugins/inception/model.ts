/**
 * The FID variant of Inception-v3 (pytorch-fid's `fid_inception_v3`, torch-fidelity's
 * `inception-v3-compat`): torchvision's Inception3 layout with 1008 classes, no auxiliary
 * head, and the FID patches in Mixed_5b..5d, 6b..6e, 7b and 7c.
 *
 *   (N, 3, 299, 299) in [-1, 1]
 *   -> Conv2d_1a_3x3 (s2) -> Conv2d_2a_3x3 -> Conv2d_2b_3x3 (p1) -> max pool 3/2
 *   -> Conv2d_3b_1x1 -> Conv2d_4a_3x3 -> max pool 3/2                 (N, 192, 35, 35)
 *   -> Mixed_5b, 5c, 5d (A) -> Mixed_6a (B)                            (N, 768, 17, 17)
 *   -> Mixed_6b..6e (C) -> Mixed_7a (D)                                (N, 1280, 8, 8)
 *   -> Mixed_7b (E, avg pool) -> Mixed_7c (E, max pool)                (N, 2048, 8, 8)
 *   -> global average pool = "pool3"                                   (N, 2048)
 *   -> pool3 @ fc.weight^T = "logits_unbiased" (what IS uses)          (N, 1008)
 *
 * Parameter names are PyTorch's, so the official weight files load unchanged.
 */

import * as ops from "../../core/ops/mod.ts";
import { Linear, Module } from "../../core/nn/mod.ts";
import { noGrad } from "../../core/autograd.ts";
import type { Tensor } from "../../core/tensor.ts";
import { BasicConv2d, maxPoolReduce } from "./basic_conv.ts";
import { InceptionA } from "./inception_a.ts";
import { InceptionB } from "./inception_b.ts";
import { InceptionC } from "./inception_c.ts";
import { InceptionD } from "./inception_d.ts";
import { InceptionE } from "./inception_e.ts";

export const INCEPTION_INPUT_SIZE = 299;
export const POOL3_DIM = 2048;
export const INCEPTION_CLASSES = 1008;

export interface InceptionOutputs {
  /** (N, 2048) global average pool after Mixed_7c (FID's features). */
  pool3: Tensor;
  /** (N, 1008) pool3 @ fc.weight^T, without the bias (IS's logits). */
  logitsUnbiased: Tensor;
}

export class FidInceptionV3 extends Module {
  readonly Conv2d_1a_3x3 = this.child(
    "Conv2d_1a_3x3",
    new BasicConv2d(3, 32, { kernel: 3, stride: 2 }),
  );
  readonly Conv2d_2a_3x3 = this.child("Conv2d_2a_3x3", new BasicConv2d(32, 32, { kernel: 3 }));
  readonly Conv2d_2b_3x3 = this.child(
    "Conv2d_2b_3x3",
    new BasicConv2d(32, 64, { kernel: 3, padding: 1 }),
  );
  readonly Conv2d_3b_1x1 = this.child("Conv2d_3b_1x1", new BasicConv2d(64, 80, { kernel: 1 }));
  readonly Conv2d_4a_3x3 = this.child("Conv2d_4a_3x3", new BasicConv2d(80, 192, { kernel: 3 }));
  readonly Mixed_5b = this.child("Mixed_5b", new InceptionA(192, 32));
  readonly Mixed_5c = this.child("Mixed_5c", new InceptionA(256, 64));
  readonly Mixed_5d = this.child("Mixed_5d", new InceptionA(288, 64));
  readonly Mixed_6a = this.child("Mixed_6a", new InceptionB(288));
  readonly Mixed_6b = this.child("Mixed_6b", new InceptionC(768, 128));
  readonly Mixed_6c = this.child("Mixed_6c", new InceptionC(768, 160));
  readonly Mixed_6d = this.child("Mixed_6d", new InceptionC(768, 160));
  readonly Mixed_6e = this.child("Mixed_6e", new InceptionC(768, 192));
  readonly Mixed_7a = this.child("Mixed_7a", new InceptionD(768));
  readonly Mixed_7b = this.child("Mixed_7b", new InceptionE(1280, "avg"));
  readonly Mixed_7c = this.child("Mixed_7c", new InceptionE(2048, "max"));
  readonly fc = this.child("fc", new Linear(POOL3_DIM, INCEPTION_CLASSES));
  #ready = false;

  constructor() {
    super();
    this.eval();
  }

  /** Every conv+BN unit, in network order. */
  basicConvs(): BasicConv2d[] {
    const out: BasicConv2d[] = [];
    const walk = (m: object) => {
      for (const v of Object.values(m)) {
        if (v instanceof BasicConv2d) out.push(v);
        else if (v instanceof Module) walk(v);
      }
    };
    walk(this);
    return out;
  }

  /** Folds every BatchNorm into its convolution; call once after loading weights. */
  async prepare(): Promise<void> {
    for (const c of this.basicConvs()) await c.fold();
    this.#ready = true;
  }

  get ready(): boolean {
    return this.#ready;
  }

  /** `x`: (N, 3, H, W) already resized and scaled to [-1, 1] (see preprocess.ts). */
  forward(x: Tensor): InceptionOutputs {
    if (!this.#ready) {
      throw new Error("FidInceptionV3: weights not prepared; call prepare() after loading");
    }
    if (x.ndim !== 4 || x.shape[1] !== 3) {
      throw new Error(`FidInceptionV3: expected input (N, 3, H, W), got [${x.shape.join(", ")}]`);
    }
    const steps: ((t: Tensor) => Tensor)[] = [
      (t) => this.Conv2d_1a_3x3.forward(t),
      (t) => this.Conv2d_2a_3x3.forward(t),
      (t) => this.Conv2d_2b_3x3.forward(t),
      maxPoolReduce,
      (t) => this.Conv2d_3b_1x1.forward(t),
      (t) => this.Conv2d_4a_3x3.forward(t),
      maxPoolReduce,
      ...[
        this.Mixed_5b,
        this.Mixed_5c,
        this.Mixed_5d,
        this.Mixed_6a,
        this.Mixed_6b,
        this.Mixed_6c,
        this.Mixed_6d,
        this.Mixed_6e,
        this.Mixed_7a,
        this.Mixed_7b,
        this.Mixed_7c,
      ]
        .map((block) => (t: Tensor) => block.forward(t)),
    ];
    return noGrad(() => {
      // Free each activation as soon as the next one exists: peak memory stays at two stages.
      let h = x;
      for (const step of steps) {
        const next = step(h);
        if (h !== x) h.dispose();
        h = next;
      }
      const pool3 = ops.mean(h, [2, 3]);
      h.dispose();
      const logitsUnbiased = ops.linear(pool3, this.fc.weight, null);
      return { pool3, logitsUnbiased };
    });
  }
}
