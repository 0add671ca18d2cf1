/**
 * The preview server as a Hono app (served by `server/main.ts`).
 *
 *   GET  /                  the preview page (gallery + generate form; class names from the
 *                           model, else from the samples folder's labels.tsv)
 *   GET  /healthz           { ok, model, busy }
 *   GET  /api/samples       { samples: [{ name, url, bytes, modified }] }, newest first
 *   GET  /samples/:name     one PNG from the samples folder (plain names only)
 *   POST /api/generate      body: { classId?, seed, topK, temperature, steps, count }
 *                           (topK at most the model's vocabulary; an AR stage 2 ignores steps)
 *                           Accept: text/event-stream → events queued/started/progress/image/done/error
 *                           otherwise → JSON { images } once finished
 *
 * Generation goes through an injected PreviewModel; requests queue on it one at a time.
 * Limits (see DEFAULT_LIMITS and `digit serve --help`): images per request, images per
 * minute per client address, requests waiting (429 with Retry-After past either). A request
 * whose client goes away stops: it leaves the queue, or its generation is cancelled, and
 * nothing is saved. With `allowedHosts`, a Host header naming anything else gets 403, so a
 * web page cannot reach the server through DNS rebinding.
 */

import { Hono } from "hono";
import { check, formatProblem, type Infer, s } from "../core/config.ts";
import { readLabelRows } from "../core/data/labels.ts";
import {
  type Logger,
  type PreviewModel,
  type PreviewRequest,
  silentLogger,
} from "../core/registry.ts";
import { renderPage } from "./page.ts";
import { CancelledWhileQueuedError, JobQueue, QueueFullError, RateLimiter } from "./queue.ts";

export type {
  PreviewImage,
  PreviewModel,
  PreviewProgress,
  PreviewRequest,
} from "../core/registry.ts";

export interface PreviewLimits {
  /** Most images per request. */
  maxCount: number;
  /** Most MaskGIT iterations per request. */
  maxSteps: number;
  /** Largest accepted request body. */
  maxBodyBytes: number;
  maxTopK: number;
  maxTemperature: number;
  /** Requests waiting behind the running one; past it, 429 with Retry-After. */
  maxQueue: number;
  /** Images one client address may ask for in any minute; past it, 429 with Retry-After. */
  maxImagesPerMinute: number;
}

export const DEFAULT_LIMITS: PreviewLimits = {
  maxCount: 16,
  maxSteps: 64,
  maxBodyBytes: 4096,
  maxTopK: 65536,
  maxTemperature: 10,
  maxQueue: 8,
  maxImagesPerMinute: 64,
};

/** The limits as `digit serve --help` shows them. */
export function limitsHelp(limits: PreviewLimits = DEFAULT_LIMITS): string[] {
  return [
    `Limits: ${limits.maxCount} images per request, ${limits.maxImagesPerMinute} images per minute ` +
    `per client address, ${limits.maxQueue} requests waiting`,
    "(then 429 with Retry-After), " +
    `${limits.maxSteps} MaskGIT steps, request bodies up to ${limits.maxBodyBytes} bytes.`,
    "A request whose client disconnects is dropped from the queue or cancelled; nothing is saved.",
  ];
}

/**
 * Host header values that name this server when it is bound to `hostname`:`port`: the
 * loopback names (127.0.0.1, localhost, [::1]), the bound address itself, every local
 * interface address for a wildcard bind (0.0.0.0, ::), and each `extra` name (with this port,
 * or bare, as a proxy forwards it; a name with its own port only as given).
 */
export function allowedHostsFor(hostname: string, port: number, extra: readonly string[] = []) {
  const out = new Set<string>();
  const add = (name: string) => {
    const host = name.includes(":") && !name.startsWith("[") ? `[${name}]` : name;
    out.add(`${host}:${port}`.toLowerCase());
    if (port === 80) out.add(host.toLowerCase()); // browsers leave the default port out
  };
  for (const name of ["127.0.0.1", "localhost", "::1"]) add(name);
  if (hostname === "0.0.0.0" || hostname === "::") {
    try {
      for (const i of Deno.networkInterfaces()) add(i.address);
    } catch {
      // no permission to list interfaces: only loopback and --allow-host names then
    }
  } else add(hostname);
  for (const name of extra) {
    const lower = name.trim().toLowerCase();
    if (lower === "") continue;
    if (/^(\[[^\]]*\]|[^:]+):\d+$/.test(lower)) out.add(lower);
    else {
      add(lower);
      out.add(lower.includes(":") && !lower.startsWith("[") ? `[${lower}]` : lower);
    }
  }
  return [...out];
}

export interface PreviewServerOptions {
  /** Folder of PNGs shown in the gallery; only read, unless `saveDir` is left out. */
  samplesDir: string;
  /**
   * Where generated images are written (default: `samplesDir`). Shown in the gallery beside
   * `samplesDir`'s. Give it so that the samples folder, which a metric may have scored, stays
   * as it was scored (`digit serve` always does: `--save-dir`).
   */
  saveDir?: string;
  /** Without a model the server is a gallery only and generate answers 503. */
  model?: PreviewModel;
  limits?: Partial<PreviewLimits>;
  log?: Logger;
  /**
   * Host header values to accept (see allowedHostsFor), read per request because the port
   * is known only once the server listens. Left out: every Host is accepted.
   */
  allowedHosts?: () => readonly string[];
}

/** A sample as the API lists it. */
export interface SampleInfo {
  name: string;
  url: string;
  bytes: number;
  /** ISO time, or null when the file system does not say. */
  modified: string | null;
}

/** Names a sample may have: no folders, no dot files, nothing that decodes into either. */
const SAMPLE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,150}\.png$/;

export function isSafeSampleName(name: string): boolean {
  return SAMPLE_NAME.test(name) && !name.includes("..");
}

/** The largest top-k a request may ask for: the limit, or the model's vocabulary when smaller. */
export function maxTopKFor(limits: PreviewLimits, vocabSize?: number): number {
  return Math.min(limits.maxTopK, vocabSize ?? Infinity);
}

export function generateRequestSchema(limits: PreviewLimits, classes?: number, vocabSize?: number) {
  const maxTopK = maxTopKFor(limits, vocabSize);
  return s.object({
    classId: s.int({ min: 0, max: classes !== undefined ? classes - 1 : undefined }).optional()
      .describe("class id; leave out for unconditional sampling"),
    seed: s.int({ min: 0, max: 2 ** 32 - 1 }).default(0),
    topK: s.int({ min: 0, max: maxTopK }).default(Math.min(200, maxTopK)).describe(
      "0 disables top-k",
    ),
    temperature: s.number({ positive: true, max: limits.maxTemperature }).default(1),
    steps: s.int({ min: 1, max: limits.maxSteps }).default(8).describe("MaskGIT iterations"),
    count: s.int({ min: 1, max: Math.min(limits.maxCount, limits.maxImagesPerMinute) }).default(
      Math.min(4, limits.maxCount, limits.maxImagesPerMinute),
    ),
  });
}
export type GenerateRequest = Infer<ReturnType<typeof generateRequestSchema>>;

class HttpProblem extends Error {
  constructor(
    readonly status: 400 | 413 | 415 | 422 | 429,
    message: string,
    readonly problems?: string[],
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** The client's address, as Deno.serve gives it to Hono (`env`); "local" in app.request tests. */
function clientOf(env: unknown): string {
  const addr = (env as { remoteAddr?: { hostname?: string } } | undefined)?.remoteAddr;
  return addr?.hostname ?? "local";
}

/** Reads at most `limit` bytes of body, whatever Content-Length claims. */
async function readBody(request: Request, limit: number): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > limit) {
    throw new HttpProblem(413, `request body is ${declared} bytes; the limit is ${limit}`);
  }
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      throw new HttpProblem(413, `request body is over the limit of ${limit} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

async function parseGenerateRequest(
  request: Request,
  limits: PreviewLimits,
  model: PreviewModel,
): Promise<PreviewRequest> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new HttpProblem(415, "expected a JSON body (content-type: application/json)");
  }
  const text = await readBody(request, limits.maxBodyBytes);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new HttpProblem(400, `body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpProblem(400, "body must be a JSON object");
  }
  const result = check(generateRequestSchema(limits, model.classes, model.vocabSize), body);
  if (result.problems.length > 0) {
    throw new HttpProblem(
      422,
      "invalid generate request",
      result.problems.map((p) => formatProblem("", p)),
    );
  }
  return result.value;
}

/** A stem made safe for the samples folder ("a/b c.png" → "a-b-c"). */
function safeStem(hint: string): string {
  const stem = hint.replace(/\.png$/i, "").replace(/[^A-Za-z0-9._-]+/g, "-").replace(/\.{2,}/g, ".")
    .replace(/^[^A-Za-z0-9]+/, "").slice(0, 100);
  return stem === "" ? "sample" : stem;
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Names for classes 0..classes-1: the model's own, else those the samples folder's labels.tsv
 * gives (the demo writes the dataset's names there); null when neither names a class.
 */
async function classNamesFor(model: PreviewModel, samplesDir: string): Promise<string[] | null> {
  if (!model.classes) return null;
  const names = Array.from({ length: model.classes }, (_, id) => String(id));
  if (model.classNames) {
    model.classNames.slice(0, model.classes).forEach((n, id) => (names[id] = n));
  } else {
    // A labels.tsv that cannot be read only costs the names, not the page.
    const rows = await readLabelRows(samplesDir).catch(() => null);
    for (const r of rows ?? []) if (r.classId < model.classes) names[r.classId] = r.className;
  }
  return names.some((n, id) => n !== String(id)) ? names : null;
}

async function listSamples(dir: string): Promise<SampleInfo[]> {
  const found: SampleInfo[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !isSafeSampleName(entry.name)) continue;
      const info = await Deno.stat(`${dir}/${entry.name}`);
      found.push({
        name: entry.name,
        url: `/samples/${encodeURIComponent(entry.name)}`,
        bytes: info.size,
        modified: info.mtime?.toISOString() ?? null,
      });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  found.sort((a, b) =>
    (b.modified ?? "").localeCompare(a.modified ?? "") || a.name.localeCompare(b.name)
  );
  return found.slice(0, 500);
}

type Send = (event: string, data: unknown) => void;

/** A text/event-stream response fed by `produce`; a client that goes away aborts it. */
function eventStream(produce: (send: Send, signal: AbortSignal) => Promise<void>): Response {
  const encoder = new TextEncoder();
  const gone = new AbortController();
  let closed = false;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const send: Send = (event, data) => {
        if (!closed) {
          controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
        }
      };
      produce(send, gone.signal)
        .catch((e) => send("error", { message: (e as Error).message }))
        .finally(() => {
          if (!closed) {
            closed = true;
            controller.close();
          }
        });
    },
    cancel() {
      closed = true;
      gone.abort();
    },
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
  });
}

export function createApp(options: PreviewServerOptions): Hono {
  const limits: PreviewLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const { samplesDir, model } = options;
  const saveDir = options.saveDir ?? samplesDir;
  /** The gallery's folders: generated images first, so a name is served from where it was saved. */
  const galleryDirs = saveDir === samplesDir ? [samplesDir] : [saveDir, samplesDir];
  const log = options.log ?? silentLogger;
  const queue = new JobQueue(limits.maxQueue);
  const perClient = new RateLimiter(limits.maxImagesPerMinute);
  const app = new Hono();

  /**
   * Admits a request or throws 429: first the client's images per minute, then a place in
   * the queue. Both are checked before any response starts, and nothing is awaited between
   * the check and `queue.run`, so the place cannot be taken in between.
   */
  function admit(request: PreviewRequest, client: string): void {
    const wait = perClient.take(client, request.count);
    if (wait > 0) {
      throw new HttpProblem(
        429,
        `over the limit of ${limits.maxImagesPerMinute} images per minute for ${client}; ` +
          `retry in ${wait} s`,
        undefined,
        wait,
      );
    }
    if (queue.full) {
      perClient.refund(client, request.count);
      const wait = Math.min(600, Math.max(1, Math.ceil(queue.lastJobSeconds * queue.size)));
      throw new HttpProblem(
        429,
        `the generate queue is full (${limits.maxQueue} requests waiting); retry in ${wait} s`,
        undefined,
        wait,
      );
    }
  }

  /**
   * Runs one admitted request on the model (in queue order) and saves its images. `signal`
   * is the client going away: a waiting job leaves the queue, a running one is cancelled
   * (the model checks the signal), and images of a cancelled job are not saved.
   */
  function generate(
    request: PreviewRequest,
    client: string,
    send: Send,
    signal: AbortSignal,
  ): Promise<SampleInfo[]> {
    if (queue.size > 0) send("queued", { ahead: queue.size });
    const job = queue.run(async () => {
      if (signal.aborted) throw new CancelledWhileQueuedError();
      send("started", { count: request.count });
      const started = performance.now();
      const images = await model!.generate(request, (p) => send("progress", p), signal);
      if (signal.aborted) throw new Error("request cancelled: the client went away");
      await Deno.mkdir(saveDir, { recursive: true });
      const saved: SampleInfo[] = [];
      for (const image of images) {
        if (!(image?.png instanceof Uint8Array)) {
          throw new Error("the model returned an image without PNG bytes");
        }
        const stem = safeStem(String(image.name ?? ""));
        let name = `${stem}.png`;
        const taken = async (name: string) => {
          for (const dir of galleryDirs) if (await fileExists(`${dir}/${name}`)) return true;
          return false;
        };
        for (let n = 2; await taken(name); n++) name = `${stem}-${n}.png`;
        await Deno.writeFile(`${saveDir}/${name}`, image.png);
        const info: SampleInfo = {
          name,
          url: `/samples/${encodeURIComponent(name)}`,
          bytes: image.png.byteLength,
          modified: new Date().toISOString(),
        };
        saved.push(info);
        send("image", info);
      }
      log.info(
        `generated ${saved.length} image(s) in ${
          ((performance.now() - started) / 1000).toFixed(1)
        } s`,
      );
      return saved;
    }, signal);
    return job.catch((e) => {
      // A request that never ran does not count against its client's images per minute.
      if (e instanceof CancelledWhileQueuedError) perClient.refund(client, request.count);
      if (e instanceof QueueFullError) perClient.refund(client, request.count);
      throw e;
    });
  }

  if (options.allowedHosts) {
    const allowed = options.allowedHosts;
    app.use("*", async (c, next) => {
      const host = (c.req.header("host") ?? "").toLowerCase();
      const hosts = allowed();
      if (!hosts.includes(host)) {
        return c.json({
          error: `Host '${host.slice(0, 100)}' is not this server (expected one of ` +
            `${hosts.slice(0, 6).join(", ")}${hosts.length > 6 ? ", ..." : ""}); ` +
            "serve with --allow-host NAME to accept another name",
        }, 403);
      }
      await next();
    });
  }

  app.onError((err, c) => {
    if (err instanceof HttpProblem) {
      return c.json(
        { error: err.message, ...(err.problems ? { problems: err.problems } : {}) },
        err.status,
        err.retryAfter !== undefined ? { "retry-after": String(err.retryAfter) } : {},
      );
    }
    // A client that hung up is not the server's problem: no warning per cancelled request.
    if (c.req.raw.signal.aborted || err instanceof CancelledWhileQueuedError) {
      log.debug(`${c.req.method} ${c.req.path}: ${err.message}`);
    } else log.warn(`${c.req.method} ${c.req.path}: ${err.message}`);
    return c.json({ error: err.message }, 500);
  });

  app.get("/", async (c) => {
    const maxTopK = maxTopKFor(limits, model?.vocabSize);
    return c.html(renderPage({
      model: model ? (model.name ?? "preview model") : null,
      classes: model?.classes ?? null,
      maxCount: limits.maxCount,
      maxSteps: limits.maxSteps,
      maxTopK,
      classNames: model ? await classNamesFor(model, samplesDir) : null,
      usesSteps: model?.usesSteps !== false,
      defaults: { seed: 0, topK: Math.min(200, maxTopK), temperature: 1, steps: 8, count: 4 },
    }));
  });

  app.get(
    "/healthz",
    (c) =>
      c.json({ ok: true, model: model ? (model.name ?? "preview model") : null, busy: queue.size }),
  );

  app.get("/api/samples", async (c) => {
    const all = (await Promise.all(galleryDirs.map(listSamples))).flat();
    all.sort((a, b) =>
      (b.modified ?? "").localeCompare(a.modified ?? "") || a.name.localeCompare(b.name)
    );
    return c.json({ samples: all.slice(0, 500) });
  });

  app.get("/samples/:name", async (c) => {
    const name = c.req.param("name");
    if (!isSafeSampleName(name)) return c.json({ error: "not a sample name" }, 400);
    let path: string | null = null;
    for (const dir of galleryDirs) {
      const info = await Deno.lstat(`${dir}/${name}`).catch(() => null);
      if (info?.isFile) {
        path = `${dir}/${name}`;
        break;
      }
    }
    if (path === null) return c.json({ error: `no sample '${name}'` }, 404);
    return c.body(await Deno.readFile(path), 200, {
      "content-type": "image/png",
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
    });
  });

  app.post("/api/generate", async (c) => {
    if (!model) {
      return c.json(
        { error: "no preview model is loaded; the server shows the gallery only" },
        503,
      );
    }
    const request = await parseGenerateRequest(c.req.raw, limits, model);
    const client = clientOf(c.env);
    admit(request, client);
    if ((c.req.header("accept") ?? "").includes("text/event-stream")) {
      // The stream's cancel is the client going away (Deno aborts the request's own signal
      // as soon as the response starts).
      return eventStream(async (send, signal) => {
        const images = await generate(request, client, send, signal);
        send("done", { images });
      });
    }
    // No response is sent before the images are made, so the request's signal fires only
    // when the client disconnects.
    const images = await generate(request, client, () => {}, c.req.raw.signal);
    return c.json({ images });
  });

  return app;
}
