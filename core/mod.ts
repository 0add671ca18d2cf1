/** The core: tensors, autograd, layers, optimisers, devices and the pipeline interfaces. */
export { liveStorages, Tensor, tidy, tidyAsync } from "./tensor.ts";
export { backward, isGradEnabled, noGrad, noGradAsync } from "./autograd.ts";
export * as ops from "./ops/mod.ts";
export * as nn from "./nn/mod.ts";
export * as optim from "./optim/mod.ts";
export { Generator } from "./random.ts";
export { cpuBackend, defaultBackend, setDefaultBackend, useDevice } from "./device.ts";
export type { DeviceName } from "./device.ts";
export type { Backend, DType, Storage } from "./backend.ts";
export { ShapeError } from "./backend.ts";
export type * from "./interfaces.ts";
