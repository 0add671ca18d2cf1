/**
 * DINOv2 ViT sizes (facebookresearch/dinov2: models/vision_transformer.py vit_small/base/
 * large/giant2, hub/backbones.py), and reading the size back from a state dict's shapes so
 * a checkpoint of the wrong size is reported by name rather than by a wall of key errors.
 */

import type { StateDict } from "../../core/io/host_tensor.ts";

export interface ViTConfig {
  /** Display name, e.g. "ViT-B/14-reg4". */
  name: string;
  patchSize: number;
  embedDim: number;
  depth: number;
  heads: number;
  /** Hidden width of the feed-forward block (4*D for "mlp"; SwiGLU's is computed). */
  mlpHidden: number;
  /** "mlp": fc1-GELU-fc2 (S, B, L); "swiglu": w12/w3 SwiGLU (giant2). */
  ffn: "mlp" | "swiglu";
  /** Register tokens (0 or 4). */
  registers: number;
  /** Side of the trained position grid: pos_embed holds 1 + posGrid^2 rows (37: 518 px). */
  posGrid: number;
  /** LayerNorm epsilon (1e-6 everywhere in DINOv2). */
  eps: number;
}

/** SwiGLUFFNFused's hidden width: (int(4D * 2/3) + 7) // 8 * 8. */
function swigluHidden(dim: number): number {
  return Math.floor((Math.trunc((4 * dim * 2) / 3) + 7) / 8) * 8;
}

const BASES = {
  vits14: { label: "ViT-S/14", embedDim: 384, depth: 12, heads: 6, ffn: "mlp" },
  vitb14: { label: "ViT-B/14", embedDim: 768, depth: 12, heads: 12, ffn: "mlp" },
  vitl14: { label: "ViT-L/14", embedDim: 1024, depth: 24, heads: 16, ffn: "mlp" },
  vitg14: { label: "ViT-g/14", embedDim: 1536, depth: 40, heads: 24, ffn: "swiglu" },
} as const;

function preset(base: keyof typeof BASES, registers: number): ViTConfig {
  const b = BASES[base];
  return {
    name: registers ? `${b.label}-reg${registers}` : b.label,
    patchSize: 14,
    embedDim: b.embedDim,
    depth: b.depth,
    heads: b.heads,
    mlpHidden: b.ffn === "mlp" ? 4 * b.embedDim : swigluHidden(b.embedDim),
    ffn: b.ffn,
    registers,
    posGrid: 37,
    eps: 1e-6,
  };
}

/** The released backbones, by the names of their hub entry points (without "dinov2_"). */
export const DINOV2_PRESETS: Readonly<Record<string, ViTConfig>> = {
  vits14: preset("vits14", 0),
  vitb14: preset("vitb14", 0),
  vitl14: preset("vitl14", 0),
  vitg14: preset("vitg14", 0),
  vits14_reg: preset("vits14", 4),
  vitb14_reg: preset("vitb14", 4),
  vitl14_reg: preset("vitl14", 4),
  vitg14_reg: preset("vitg14", 4),
};

export function presetConfig(name: string): ViTConfig {
  const cfg = DINOV2_PRESETS[name];
  if (!cfg) {
    throw new Error(
      `dinov2: unknown architecture '${name}' (known: ${Object.keys(DINOV2_PRESETS).join(", ")})`,
    );
  }
  return cfg;
}

/** "ViT-B/14-reg4 (dim 768, depth 12, 4 registers)". */
export function describeConfig(
  c: Pick<ViTConfig, "name" | "embedDim" | "depth" | "registers">,
): string {
  return `${c.name} (dim ${c.embedDim}, depth ${c.depth}, ${c.registers} registers)`;
}

function shapeOf(sd: StateDict, key: string, rank: number): number[] {
  const t = sd.get(key);
  if (!t) {
    const sample = [...sd.keys()].slice(0, 6).join(", ");
    throw new Error(
      `dinov2: the state dict has no '${key}', so it is not a DINOv2 ViT (keys: ${sample}, ...)`,
    );
  }
  if (t.shape.length !== rank) {
    throw new Error(`dinov2: '${key}' has shape [${t.shape}], expected ${rank} dims`);
  }
  return t.shape;
}

/**
 * The architecture a DINOv2 state dict describes, from its shapes alone. The head count is
 * not visible in the weights: it is taken from the preset of the same width, else head dim 64.
 */
export function configFromStateDict(sd: StateDict): ViTConfig {
  const [, , dim] = shapeOf(sd, "cls_token", 3);
  const [, , patch] = shapeOf(sd, "patch_embed.proj.weight", 4);
  const [, positions] = shapeOf(sd, "pos_embed", 3);
  const posGrid = Math.round(Math.sqrt(positions - 1));
  if (posGrid * posGrid !== positions - 1) {
    throw new Error(`dinov2: pos_embed has ${positions} rows, which is not 1 + a square grid`);
  }
  let depth = 0;
  while (sd.has(`blocks.${depth}.norm1.weight`)) depth++;
  const registers = sd.has("register_tokens") ? shapeOf(sd, "register_tokens", 3)[1] : 0;
  const swiglu = sd.has("blocks.0.mlp.w12.weight");
  const mlpHidden = swiglu
    ? shapeOf(sd, "blocks.0.mlp.w3.weight", 2)[1]
    : shapeOf(sd, "blocks.0.mlp.fc1.weight", 2)[0];
  const base = Object.values(BASES).find((b) => b.embedDim === dim);
  const heads = base?.heads ?? Math.max(1, Math.floor(dim / 64));
  const known = base && base.depth === depth && patch === 14;
  const label = known ? base.label : `ViT/${patch}`;
  return {
    name: registers ? `${label}-reg${registers}` : label,
    patchSize: patch,
    embedDim: dim,
    depth,
    heads,
    mlpHidden,
    ffn: swiglu ? "swiglu" : "mlp",
    registers,
    posGrid,
    eps: 1e-6,
  };
}

/** Throws when a checkpoint's size differs from the model's, naming both. */
export function assertSameSize(model: ViTConfig, checkpoint: ViTConfig, source: string): void {
  const same = model.embedDim === checkpoint.embedDim && model.depth === checkpoint.depth &&
    model.registers === checkpoint.registers && model.patchSize === checkpoint.patchSize &&
    model.ffn === checkpoint.ffn && model.mlpHidden === checkpoint.mlpHidden;
  if (!same) {
    throw new Error(
      `dinov2: ${source} holds a ${describeConfig(checkpoint)} but the model is ${
        describeConfig(model)
      }; ` +
        `pick the matching architecture (or leave it out to take the checkpoint's)`,
    );
  }
}
