/** DINOv2 (facebookresearch/dinov2) for DiGIT's tokenizer: model, loading, encoder. */

export {
  configFromStateDict,
  describeConfig,
  DINOV2_PRESETS,
  presetConfig,
  type ViTConfig,
} from "./config.ts";
export { DinoVisionTransformer, type TokenSplit } from "./vision_transformer.ts";
export {
  DIGIT_ENCODER_PREFIX,
  encoderWeights,
  loadDinov2,
  type LoadDinov2Options,
} from "./load.ts";
export { Dinov2Encoder, type Dinov2EncoderOptions, normalizeImages } from "./encoder.ts";
export { POS_EMBED_RECIPES, type PosEmbedRecipe, resizePosTable } from "./pos_embed.ts";
export { antialiasWeights, resizeAntialiasBicubic } from "./antialias.ts";
export { default as plugin } from "./plugin.ts";
