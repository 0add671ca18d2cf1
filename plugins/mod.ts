/** The built-in plugins, loaded by the CLI and the task runner. */
import stage1 from "./stage1/plugin.ts";

export default [stage1];
