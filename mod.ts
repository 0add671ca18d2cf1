/**
 * digit-ts: DiGIT (Zhu et al., NeurIPS 2024: discrete tokens from a self-supervised
 * encoder, then an autoregressive generator over them) in Deno + TypeScript.
 *
 * This module is the core: tensors with autograd and memory scopes, layers, optimisers,
 * the CPU and WebGPU backends, config schemas, and the plugin registry and task runner
 * that the `digit` CLI drives. The model plugins (DINOv2, K-Means, the GPT stages,
 * VQGAN, metrics) live under `plugins/` and are reached through the registry.
 *
 * @example Tensors and autograd
 * ```ts
 * import { backward, ops, tidy } from "@digit-ts/digit";
 *
 * const w = ops.tensor([1, 2, 3, 4], [2, 2]).requireGrad();
 * // tidy disposes the intermediates (w @ w) and keeps what the callback returns.
 * const y = tidy(() => w.matmul(w).add(1));
 * console.log(await y.data()); // [8, 11, 16, 23]
 * tidy(() => backward(y.sum()));
 * console.log(await w.grad!.data()); // [7, 11, 9, 13]
 * ```
 *
 * @example A plugin step type, run by the task runner
 * ```ts
 * import { Registry, s } from "@digit-ts/digit";
 *
 * const registry = new Registry();
 * await registry.use({
 *   name: "hello",
 *   version: "0.1.0",
 *   register(r) {
 *     r.step({
 *       name: "greet",
 *       params: s.object({ who: s.string() }),
 *       run: (params, ctx) => ctx.log.info(`hello, ${params.who}`),
 *     });
 *   },
 * });
 * console.log(registry.list("steps").map((e) => e.name)); // ["greet"]
 * ```
 *
 * @example Generate images with a trained pipeline
 * ```ts ignore
 * import { DigitPipeline, imagePng } from "@digit-ts/digit";
 *
 * // Run folders, checkpoints, or the released files (fairseq .pt, DiGIT stage-2 .pt, MAGE .ckpt).
 * const pipe = await DigitPipeline.load({
 *   stage1: "outputs/demo/stage1",
 *   stage2: "outputs/demo/stage2",
 *   vqgan: "outputs/demo/vqgan",
 * });
 * const { images } = await pipe.generate({ classes: 3, count: 4, seed: 0 });
 * for (let i = 0; i < images.count; i++) {
 *   await Deno.writeFile(`class3-${i}.png`, imagePng(images, i));
 * }
 * pipe.dispose();
 * ```
 *
 * @module
 */
export * from "./core/mod.ts";
export { DigitPipeline, imagePng } from "./plugins/pipeline/digit_pipeline.ts";
export type {
  DigitPipelineSources,
  GeneratedImages,
  GenerateOptions,
  GenerateProgress,
  PartSource,
} from "./plugins/pipeline/digit_pipeline.ts";
export type {
  DecoderPart,
  Stage1Part,
  Stage2Part,
  Stage2SampleOptions,
} from "./plugins/pipeline/roles.ts";
