/**
 * The DINOv2 plugin: registers the encoder `dinov2` (DiGIT's tokenizer backbone).
 *
 *   encoder: { name: dinov2, options: { checkpoint: dinov2_vitb14_reg4_pretrain.pth, layer: 3 } }
 */

import { s } from "../../core/config.ts";
import { definePlugin } from "../../core/registry.ts";
import { DINOV2_PRESETS } from "./config.ts";
import { Dinov2Encoder } from "./encoder.ts";
import { loadDinov2 } from "./load.ts";
import { POS_EMBED_RECIPES } from "./pos_embed.ts";

export const dinov2EncoderOptions = s.object({
  checkpoint: s.string({
    nonEmpty: true,
    description:
      "DINOv2 weights (.pth, .safetensors), or a DiGIT checkpoint (pretrained_encoder.*)",
  }),
  arch: s.enum(Object.keys(DINOV2_PRESETS)).optional().describe(
    "expected architecture; default: read from the checkpoint",
  ),
  heads: s.int({ min: 1 }).optional().describe("attention heads, only for non-standard widths"),
  recipe: s.enum(POS_EMBED_RECIPES).default("digit").describe(
    "position-table resize: DiGIT's (scale 16.1/37) or the hub's (antialiased)",
  ),
  layer: s.int({ min: 1 }).default(3).describe(
    "features from the n-th block from the end (DiGIT: 3)",
  ),
  image_size: s.int({ min: 1 }).default(256).describe("side of the crops handed to the encoder"),
  input_size: s.int({ min: 14 }).default(224).describe("side of the network input"),
  prefix: s.string().optional().describe(
    "key prefix to strip (default: 'pretrained_encoder.' when present)",
  ),
});

export default definePlugin({
  name: "digit-dinov2",
  version: "0.1.0",
  description: "DINOv2 ViT/14 feature encoder (DiGIT's 'l3' features)",
  register(r) {
    r.encoder({
      name: "dinov2",
      description: "DINOv2 ViT/14: normalised patch tokens of block depth-layer (DiGIT: l3)",
      options: dinov2EncoderOptions,
      create: async (o) => {
        const model = await loadDinov2(o.checkpoint, {
          arch: o.arch,
          heads: o.heads,
          recipe: o.recipe,
          prefix: o.prefix,
        });
        return new Dinov2Encoder(model, {
          layerFromEnd: o.layer,
          imageSize: o.image_size,
          inputSize: o.input_size,
        });
      },
    });
  },
});
