/** DiGIT's semantic tokenizer: KMeansTokenizer and the dump / fit / tokenize commands. */

export {
  acceptedImageSizes,
  KMeansTokenizer,
  type KMeansTokenizerOptions,
} from "./kmeans_tokenizer.ts";
export {
  dumpFeatures,
  type DumpFeaturesOptions,
  type FeatureManifest,
  keptImages,
  MANIFEST,
  readManifest,
  shardFileName,
} from "./dump.ts";
export { fitCentroids, type FitCentroidsOptions } from "./fit.ts";
export { tokenizeDataset, type TokenizeDatasetOptions } from "./tokenize.ts";
export { CROP_MODES, type CropMode, cropTransform, type ImageTransform } from "./transforms.ts";
export { default as plugin } from "./plugin.ts";
