/**
 * Entry point: `deno run -A server/main.ts [--port 8000] [--samples DIR] [--model NAME]` is
 * the same as `digit serve`. The server itself is `startServer` in `./serve.ts`.
 */

export { type RunningServer, startServer, type StartServerOptions } from "./serve.ts";

if (import.meta.main) {
  const { main } = await import("../cli/main.ts");
  Deno.exit(await main(["serve", ...Deno.args]));
}
