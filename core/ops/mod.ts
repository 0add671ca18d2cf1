/** All tensor ops, re-exported for `core/tensor.ts` and for users. */
export * from "./creation.ts";
export * from "./elementwise.ts";
export * from "./reduce.ts";
export * from "./shape.ts";
export * from "./linalg.ts";
export {
  attention,
  avgPool2d,
  conv2d,
  crossEntropy,
  dropout,
  embedding,
  groupNorm,
  indexSelect,
  interpolate,
  layerNorm,
  logSoftmax,
  maxPool2d,
  scatterAdd,
  softmax,
} from "./nn.ts";
export type {
  AttentionOptions,
  Conv2dOptions,
  CrossEntropyOptions,
  InterpolateOptions,
  Pool2dOptions,
} from "./nn.ts";
