/** The built-in plugins, loaded by the CLI and the task runner. */
import demo from "./demo/plugin.ts";
import dinov2 from "./dinov2/plugin.ts";
import domain from "./domain/plugin.ts";
import metrics from "./metrics/plugin.ts";
import pipeline from "./pipeline/plugin.ts";
import preview from "./preview/plugin.ts";
import ssl from "./ssl/plugin.ts";
import stage1 from "./stage1/plugin.ts";
import stage2 from "./stage2/plugin.ts";
import tokenizer from "./tokenizer/plugin.ts";
import vqgan from "./vqgan/plugin.ts";

export default [
  dinov2,
  tokenizer,
  vqgan,
  stage1,
  stage2,
  pipeline,
  metrics,
  domain,
  demo,
  preview,
  ssl,
];
