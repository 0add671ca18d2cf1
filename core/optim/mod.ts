export * from "./adamw.ts";
export * from "./sgd.ts";
export * from "./clip.ts";
export * from "./schedules.ts";
export type { Optimizer, OptimizerState } from "./optimizer.ts";
