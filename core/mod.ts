/** The core: tensors, autograd, layers, optimisers, devices and the pipeline interfaces. */
export { liveStorages, Tensor, tidy, tidyAsync } from "./tensor.ts";
export type { SharedStorage } from "./tensor.ts";
export { backward, isGradEnabled, noGrad, noGradAsync } from "./autograd.ts";
export type { Node } from "./autograd.ts";
/** Tensor ops as functions (what the `Tensor` methods call), with their gradients. */
export * as ops from "./ops/mod.ts";
/** Modules and layers: `Module`, `Linear`, `Conv2d`, norms, `MultiheadAttention`, `MLP`. */
export * as nn from "./nn/mod.ts";
/** Optimisers, gradient clipping and learning-rate schedules. */
export * as optim from "./optim/mod.ts";
export { Rng } from "./random.ts";
export type { RngState } from "./random.ts";
export { cpuBackend, defaultBackend, setDefaultBackend, useDevice } from "./device.ts";
export type { DeviceName } from "./device.ts";
export type {
  AdamWArgs,
  AttentionArgs,
  AttentionRows,
  Backend,
  BinaryOp,
  Conv2dArgs,
  DType,
  HostArray,
  MatmulArgs,
  Pool2dArgs,
  ReduceOp,
  ResizeArgs,
  ResizeMode,
  Storage,
  TypedArrayFor,
  UnaryOp,
  View,
} from "./backend.ts";
export { ShapeError } from "./backend.ts";
export type * from "./interfaces.ts";

// Plugins, configs and tasks: how plugins register, how configs are checked, how tasks run.
export {
  definePlugin,
  DEVICES,
  KINDS,
  loadPlugins,
  memoryLogger,
  pluginsOf,
  pluginSpecSchema,
  prefixLogger,
  Registry,
  silentLogger,
} from "./registry.ts";
export type {
  Dataset,
  DeviceChoice,
  Entry,
  EntryInfo,
  FactoryDefinition,
  FactoryEntry,
  FactoryKind,
  Kind,
  LabelledBatch,
  LoadedPlugin,
  Logger,
  PipelineSlot,
  Plugin,
  PluginFactory,
  PluginSpec,
  PreviewImage,
  PreviewModel,
  PreviewProgress,
  PreviewRequest,
  Products,
  RunContext,
  ShardableStep,
  StepContext,
  StepDefinition,
  StepEntry,
  StepShard,
} from "./registry.ts";
export {
  applyOverrides,
  check,
  ConfigError,
  deepMerge,
  didYouMean,
  formatPath,
  formatProblem,
  parseOverrides,
  parseYaml,
  readConfig,
  readYaml,
  readYamlWithExtends,
  resolveBeside,
  s,
  Schema,
  schemaHelp,
  validate,
} from "./config.ts";
export type {
  Infer,
  KeyPath,
  Override,
  PathSegment,
  Problem,
  ReadConfigOptions,
  SchemaInfo,
  SchemaKind,
} from "./config.ts";
export {
  InterruptedError,
  loadTask,
  planTask,
  runTask,
  StepFailedError,
  stepStatus,
  taskSchema,
} from "./tasks.ts";
// A run started outside the task runner (a script building a RunContext) resolves its device here.
export { startRun } from "./run_context.ts";
export type {
  LoadTaskOptions,
  PlannedStep,
  RunSummary,
  RunTaskOptions,
  StepStatus,
  TaskFile,
  TaskPlan,
  TaskSpec,
  TaskStepEntry,
  TaskStepSpec,
} from "./tasks.ts";
