/** The FID Inception-v3 (pytorch-fid / torch-fidelity variant) and its input pipeline. */

export { BasicConv2d, BN_EPS } from "./basic_conv.ts";
export { InceptionA } from "./inception_a.ts";
export { InceptionB } from "./inception_b.ts";
export { InceptionC } from "./inception_c.ts";
export { InceptionD } from "./inception_d.ts";
export { type EPool, InceptionE } from "./inception_e.ts";
export {
  FidInceptionV3,
  INCEPTION_CLASSES,
  INCEPTION_INPUT_SIZE,
  type InceptionOutputs,
  POOL3_DIM,
} from "./model.ts";
export { checkImageBatch, inceptionInput, resizeForInception } from "./preprocess.ts";
export {
  InceptionFeatureExtractor,
  type InceptionFeatures,
  sharedInceptionExtractor,
} from "./extractor.ts";
export {
  loadFidInception,
  loadInceptionStateDict,
  normalizeInceptionKeys,
  WEIGHT_FILES,
} from "./weights.ts";
export { fnv1a32, syntheticInceptionWeights } from "./synthetic_weights.ts";
