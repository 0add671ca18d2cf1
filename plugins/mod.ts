/** The built-in plugins, loaded by the CLI and the task runner. */
import demo from "./demo/plugin.ts";
import dinov2 from "./dinov2/plugin.ts";
import metrics from "./metrics/plugin.ts";
import preview from "./preview/plugin.ts";
import stage1 from "./stage1/plugin.ts";
import tokenizer from "./tokenizer/plugin.ts";

export default [dinov2, tokenizer, stage1, metrics, demo, preview];
