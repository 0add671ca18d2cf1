/**
 * Starting a run outside the task runner (the CLI's `serve`, `DigitPipeline.load`, a script):
 * the one place such a run resolves its device. The task runner does the same once per task
 * run (core/tasks.ts, core/shard.ts), so plugins only read `ctx.backend`.
 */

import { useDevice } from "./device.ts";
import type { RunContext } from "./registry.ts";

/** `o` with its `device` resolved (and made the default backend) as `backend`. */
export async function startRun(o: Omit<RunContext, "backend">): Promise<RunContext> {
  return { ...o, backend: await useDevice(o.device) };
}
