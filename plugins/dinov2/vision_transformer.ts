/**
 * DINOv2's DinoVisionTransformer (facebookresearch/dinov2: models/vision_transformer.py)
 * for inference, with the official state-dict keys:
 *
 *   cls_token (1,1,D)  pos_embed (1,1+37*37,D)  register_tokens (1,R,D)  mask_token (1,D)
 *   patch_embed.proj.{weight,bias}  blocks.{i}.{norm1,attn.qkv,attn.proj,ls1.gamma,
 *   norm2,mlp.fc1,mlp.fc2,ls2.gamma}  norm.{weight,bias}
 *
 * Token order is [CLS, registers, patches]; the position table is added to CLS and the
 * patches before the registers are inserted (registers get no position).
 *
 * DiGIT's "l3" feature is `blockTokens(x, depth - 3)` after the final norm, patch tokens
 * only: the blocks after it are never run (its get_intermediate_layers stops early).
 */

import { LayerNorm, Module } from "../../core/nn/mod.ts";
import type { StateDict } from "../../core/io/host_tensor.ts";
import * as ops from "../../core/ops/mod.ts";
import { type Tensor, tidy } from "../../core/tensor.ts";
import { Block } from "./block.ts";
import type { ViTConfig } from "./config.ts";
import { PatchEmbed } from "./patch_embed.ts";
import { type PosEmbedRecipe, resizePosTable } from "./pos_embed.ts";

export interface TokenSplit {
  /** (B, D) */
  cls: Tensor;
  /** (B, R, D); R may be 0 */
  registers: Tensor;
  /** (B, N, D), raster order */
  patches: Tensor;
}

export class DinoVisionTransformer extends Module {
  readonly cls_token: Tensor;
  readonly pos_embed: Tensor;
  readonly register_tokens: Tensor | null;
  readonly mask_token: Tensor;
  readonly patch_embed: PatchEmbed;
  readonly blocks: Block[];
  readonly norm: LayerNorm;
  /** Which position-table resize to use for grids other than 37x37. */
  recipe: PosEmbedRecipe;
  /**
   * Host copy of pos_embed: the zeros it starts as, then what loadStateDict put there, so
   * resizing needs no readback (a GPU backend cannot read synchronously).
   */
  #posHost: Float32Array | null;
  /** Resized position tables, one per "recipe:HxW", on the parameters' device. */
  readonly #posCache = new Map<string, Tensor>();

  constructor(readonly cfg: ViTConfig, opts: { recipe?: PosEmbedRecipe } = {}) {
    super();
    const D = cfg.embedDim;
    this.recipe = opts.recipe ?? "digit";
    this.cls_token = this.param("cls_token", ops.zeros([1, 1, D]));
    this.pos_embed = this.param("pos_embed", ops.zeros([1, 1 + cfg.posGrid * cfg.posGrid, D]));
    this.#posHost = new Float32Array(this.pos_embed.size);
    this.register_tokens = cfg.registers > 0
      ? this.param("register_tokens", ops.zeros([1, cfg.registers, D]))
      : null;
    this.mask_token = this.param("mask_token", ops.zeros([1, D]));
    this.patch_embed = this.child("patch_embed", new PatchEmbed(cfg.patchSize, D));
    this.blocks = this.list("blocks", Array.from({ length: cfg.depth }, () => new Block(cfg)));
    this.norm = this.child("norm", new LayerNorm(D, cfg.eps));
  }

  override loadStateDict(sd: StateDict, opts: { strict?: boolean; what?: string } = {}) {
    const report = super.loadStateDict(sd, { what: `DINOv2 ${this.cfg.name}`, ...opts });
    this.#clearPositions();
    const pos = sd.get("pos_embed");
    if (pos) {
      this.#posHost = pos.dtype === "f32" && !report.mismatched.some((m) => m.key === "pos_embed")
        ? new Float32Array(pos.data)
        : null; // converted or refused: read the parameter itself when first needed
    }
    return report;
  }

  override dispose(): void {
    this.#clearPositions();
    super.dispose();
  }

  #clearPositions(): void {
    for (const t of this.#posCache.values()) t.dispose();
    this.#posCache.clear();
  }

  /** Block index of DiGIT's `layer: n` (get_intermediate_layers(x, n)[0]): depth - n. */
  blockFromEnd(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > this.cfg.depth) {
      throw new Error(
        `dinov2: layer ${n} from the end is outside 1..${this.cfg.depth} for ${this.cfg.name}`,
      );
    }
    return this.cfg.depth - n;
  }

  /** The (1, 1 + gh*gw, D) position rows for a gh x gw grid, resized once and cached. */
  positions(gridH: number, gridW: number): Tensor {
    const key = `${this.recipe}:${gridH}x${gridW}`;
    let t = this.#posCache.get(key);
    if (!t) {
      this.#posHost ??= new Float32Array(this.pos_embed.dataSync());
      const rows = resizePosTable(this.#posHost, this.cfg.embedDim, gridH, gridW, this.recipe);
      t = ops.tensor(rows, [1, 1 + gridH * gridW, this.cfg.embedDim], {
        backend: this.pos_embed.backend,
      }).keep();
      this.#posCache.set(key, t);
    }
    return t;
  }

  /** Images (B, 3, H, W) to the token sequence [CLS, registers, patches] (B, 1+R+N, D). */
  prepareTokens(x: Tensor): Tensor {
    const B = x.shape[0];
    const D = this.cfg.embedDim;
    const p = this.cfg.patchSize;
    const gridH = x.shape[2] / p, gridW = x.shape[3] / p;
    const patches = this.patch_embed.forward(x);
    const pos = this.positions(gridH, gridW);
    const n = gridH * gridW;
    const cls = ops.expand(ops.add(this.cls_token, ops.slice(pos, 1, 0, 1)), [B, 1, D]);
    const placed = ops.add(patches, ops.slice(pos, 1, 1, 1 + n));
    const parts = this.register_tokens
      ? [cls, ops.expand(this.register_tokens, [B, this.cfg.registers, D]), placed]
      : [cls, placed];
    return ops.cat(parts, 1);
  }

  /**
   * Tokens (B, 1+R+N, D) after block `index` (0-based), running no later block;
   * through the final `norm` unless `norm: false`.
   */
  blockTokens(x: Tensor, index: number, opts: { norm?: boolean } = {}): Tensor {
    if (!Number.isInteger(index) || index < 0 || index >= this.cfg.depth) {
      throw new Error(
        `dinov2: block ${index} is outside 0..${this.cfg.depth - 1} for ${this.cfg.name}`,
      );
    }
    let t = tidy(() => this.prepareTokens(x));
    for (let i = 0; i <= index; i++) {
      const prev = t;
      t = tidy(() => this.blocks[i].forward(prev));
      prev.dispose();
    }
    if (opts.norm === false) return t;
    const normed = this.norm.forward(t);
    t.dispose();
    return normed;
  }

  /** Splits a (B, 1+R+N, D) sequence into contiguous CLS, register and patch tensors. */
  split(tokens: Tensor): TokenSplit {
    const R = this.cfg.registers;
    const T = tokens.shape[1];
    return tidy(() => ({
      cls: ops.reshape(ops.contiguous(ops.slice(tokens, 1, 0, 1)), [
        tokens.shape[0],
        tokens.shape[2],
      ]),
      registers: ops.contiguous(ops.slice(tokens, 1, 1, 1 + R)),
      patches: ops.contiguous(ops.slice(tokens, 1, 1 + R, T)),
    }));
  }

  /** Normalised patch tokens (B, N, D) after block `index`: DiGIT's feature when index = depth-3. */
  patchFeatures(x: Tensor, index: number): Tensor {
    return tidy(() => this.split(this.blockTokens(x, index)).patches);
  }

  /** Normalised CLS token (B, D) after block `index`. */
  clsFeatures(x: Tensor, index: number): Tensor {
    return tidy(() => this.split(this.blockTokens(x, index)).cls);
  }

  /** The full forward (forward_features): every block, then the norm, split. */
  forwardFeatures(x: Tensor): TokenSplit {
    return tidy(() => this.split(this.blockTokens(x, this.cfg.depth - 1)));
  }
}
