/**
 * Serves the preview app with Deno.serve, on 127.0.0.1 unless told otherwise.
 *
 *   const server = startServer({ samplesDir: "outputs/samples", model, port: 8000 });
 *   console.log(server.url); ...; await server.shutdown();
 *
 * `server/main.ts` is the runnable entry point; `digit serve` calls this too.
 */

import { allowedHostsFor, createApp, DEFAULT_LIMITS, type PreviewServerOptions } from "./app.ts";
import { mountWebRoutes } from "./web.ts";

export interface StartServerOptions extends PreviewServerOptions {
  /** Default 127.0.0.1: the preview is for the person at this machine. */
  hostname?: string;
  /** 0 picks a free port. Default 8000. */
  port?: number;
  /** Aborting it shuts the server down. */
  signal?: AbortSignal;
  /**
   * Host header names accepted besides the bound address and loopback (`--allow-host`), for
   * a deliberate public bind; any other Host gets 403 (DNS rebinding).
   */
  allowHosts?: readonly string[];
}

export interface RunningServer {
  url: string;
  port: number;
  /** Settles once the server has stopped. */
  finished: Promise<void>;
  shutdown(): Promise<void>;
}

export function startServer(options: StartServerOptions): RunningServer {
  let allowed: readonly string[] = [];
  const app = createApp({ ...options, allowedHosts: () => allowed });
  // In-browser generation (GET /web and friends): see server/web.ts.
  mountWebRoutes(app, { model: options.model, ...DEFAULT_LIMITS, ...options.limits });
  const hostname = options.hostname ?? "127.0.0.1";
  const server = Deno.serve(
    { hostname, port: options.port ?? 8000, signal: options.signal, onListen: () => {} },
    app.fetch,
  );
  const port = server.addr.port;
  allowed = allowedHostsFor(hostname, port, options.allowHosts);
  const shown = hostname.includes(":") ? `[${hostname}]` : hostname;
  return {
    url: `http://${shown}:${port}/`,
    port,
    finished: server.finished,
    shutdown: () => server.shutdown(),
  };
}
