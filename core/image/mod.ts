/** Image layer: codecs, PIL/torchvision-exact transforms, torch/TF1 interpolation, DiGIT pipelines. */

export type { FloatImage, RgbImage } from "./rgb.ts";
export { grayToRgb, makeRgb } from "./rgb.ts";
export { decodeImage, encodePng, readImage, readImageSync, writePng } from "./codec.ts";
export * from "./transforms.ts";
export { interpolateBicubic, type InterpolateOptions } from "./interpolate_torch.ts";
export { resizeBilinearTf1, resizeBilinearTf1Planes } from "./resize_tf1.ts";
export * from "./pipelines.ts";
