/**
 * The four roles of the DiGIT pipeline, as plugins implement them.
 *
 *   images --Encoder--> features --(K-Means)--> semantic tokens      (Tokenizer)
 *   [class] --Generator--> semantic tokens --Generator--> VQ tokens   (stage 1, stage 2)
 *   VQ tokens --Decoder--> images                                     (VQGAN)
 *   images --Metric--> numbers                                        (FID, IS, FD-DINOv2)
 *
 * Core defines the shapes of these roles; `plugins/` provides implementations and
 * registers them by name in the registry.
 */

import type { Tensor } from "./tensor.ts";

/** A batch of 8-bit RGB images, NHWC, all the same size. */
export interface ImageBatch {
  /** Pixels, `count * height * width * 3` bytes. */
  data: Uint8Array;
  /** Number of images. */
  count: number;
  /** Image height in pixels. */
  height: number;
  /** Image width in pixels. */
  width: number;
}

/** Grid of integer tokens per image, row-major (raster order). */
export interface TokenGrid {
  /** (count, height*width) token ids, without any dictionary offset. */
  tokens: Int32Array;
  /** Number of grids. */
  count: number;
  /** Grid rows. */
  height: number;
  /** Grid columns. */
  width: number;
}

/** A self-supervised feature extractor: images in, a patch-feature grid out. */
export interface Encoder {
  /** Registered name. */
  readonly name: string;
  /** Side of the square input the encoder expects after its own preprocessing. */
  readonly inputSize: number;
  /** Patch grid side (16 for DINOv2 at 224 px). */
  readonly gridSize: number;
  /** Channels per patch feature. */
  readonly featureDim: number;
  /**
   * uint8 images (already cropped to the pipeline's image size) to the network input:
   * (N, 3, inputSize, inputSize) float, normalised as this encoder wants.
   */
  preprocess(images: ImageBatch): Tensor;
  /** Network input to features (N, gridSize*gridSize, featureDim), raster order. */
  encode(input: Tensor): Tensor;
  /** Frees the encoder's weights; whoever created it calls this when done. */
  dispose?(): void;
}

/** Images to discrete tokens. */
export interface Tokenizer {
  /** Registered name. */
  readonly name: string;
  /** Number of distinct token ids. */
  readonly vocabSize: number;
  /** Token grid side. */
  readonly gridSize: number;
  /** Encode and quantise a batch of images. */
  tokenize(images: ImageBatch): Promise<TokenGrid>;
  /** Features (N, L, D) to token ids (N, L), i32. */
  featuresToTokens(features: Tensor): Tensor;
  /** Frees what the tokenizer holds (its encoder, when it owns it). */
  dispose?(): void;
}

/** What to sample and how; fields a model does not use are ignored. */
export interface SampleOptions {
  /** Number of samples. */
  count: number;
  /** Sampling seed; the same options give the same tokens. */
  seed: number;
  /** Softmax temperature. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or absent: all). */
  topK?: number;
  /** Nucleus sampling mass. */
  topP?: number;
  /** Class ids for class-conditional models, one per sample. */
  classes?: Int32Array;
  /** Classifier-free guidance scale; 1 (or absent) disables it. */
  guidance?: number;
  /** Conditioning tokens (stage 2: semantic tokens). */
  condition?: TokenGrid;
  /** MaskGIT iterations for non-autoregressive decoders. */
  steps?: number;
  /** Called as sampling advances. */
  onProgress?: (done: number, total: number) => void;
}

/** A token-sequence model (stage 1: semantic tokens; stage 2: VQ tokens given semantic). */
export interface Generator {
  /** Registered name. */
  readonly name: string;
  /** Sample `options.count` token grids. */
  sample(options: SampleOptions): Promise<TokenGrid>;
  /** Frees the model's weights. */
  dispose?(): void;
}

/** Tokens to pixels (the VQGAN decoder). */
export interface Decoder {
  /** Registered name. */
  readonly name: string;
  /** Token grid side the decoder expects. */
  readonly gridSize: number;
  /** Side of the square images it produces. */
  readonly imageSize: number;
  /** Decode token grids to images. */
  decode(tokens: TokenGrid): Promise<ImageBatch>;
  /** Frees the model's weights. */
  dispose?(): void;
}

/** Named metric values, e.g. `{ fid: 12.3 }`. */
export type MetricResult = Record<string, number>;

/** Accumulates over batches of uint8 images, then computes. */
export interface Metric {
  /** Registered name. */
  readonly name: string;
  /** Add a batch of generated images. */
  update(images: ImageBatch): Promise<void>;
  /**
   * Add a batch of reference images, before any `update`: a metric scored against reference
   * images takes them here when its caller reads the reference once for all its metrics
   * (`eval`), rather than decoding the folder again for each.
   */
  updateReference?(images: ImageBatch): Promise<void>;
  /** The metric over everything added since the last reset. */
  compute(): Promise<MetricResult>;
  /** Forget everything added. */
  reset(): void;
  /** Frees the weights it loaded (a metric built on its own network). */
  dispose?(): void;
}
