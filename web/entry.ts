/**
 * The browser bundle's entry (`deno task build:web` -> web/dist/digit.js): the tensor
 * runtime, both browser backends, the generation models, the safetensors reader, the
 * in-page pipeline, the kernel parity suite and the page itself.
 *
 * Only Deno-free modules are imported from here. The Deno-only modules the runtime reaches
 * are replaced at build time through web/import_map.json: core/native/openblas.ts (FFI) and
 * core/backends/webgpu/runtime_dir.ts (process environment) by their web/platform/
 * counterparts, and the `node:` modules of core/io's file readers (imported, never called,
 * by core/nn/module.ts) by stand-ins the bundler drops. tests/browser_bundle_test.ts fails if
 * any `Deno.` reference, import or stand-in reaches the bundle.
 */

// Runtime: tensors, autograd, ops, layers, devices.
export { liveStorages, Tensor, tidy, tidyAsync } from "../core/tensor.ts";
export { backward, noGrad, noGradAsync } from "../core/autograd.ts";
export * as ops from "../core/ops/mod.ts";
export * as nn from "../core/nn/mod.ts";
export { Rng } from "../core/random.ts";
export { cpuBackend, defaultBackend, setDefaultBackend } from "../core/device.ts";
export type { Backend, DType, Storage } from "../core/backend.ts";
export { CpuBackend } from "../core/backends/cpu/mod.ts";
export {
  createWebGPUBackend,
  probeWebGPU,
  WebGPUBackend,
  type WebGPUProbe,
} from "../core/backends/webgpu/mod.ts";

// Models.
export { type Stage1Config, Stage1GPT } from "../plugins/stage1/model.ts";
export { sampleStage1 } from "../plugins/stage1/sampler.ts";
export { type Stage2Config, Stage2Model } from "../plugins/stage2/model.ts";
export { sampleStage2 } from "../plugins/stage2/generator.ts";
export { VQGAN, type VqganConfig } from "../plugins/vqgan/vqgan.ts";

// Weights, pipeline, parity suite, page.
export { readSafetensorsBytes } from "./safetensors.ts";
export * from "./pipeline.ts";
export { parityCases, type ParityResult, runParity } from "./parity.ts";
export { mountPage, runParityPage } from "./ui.ts";
