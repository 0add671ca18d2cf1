/**
 * The preview server under hostile or careless clients: a bounded queue (429 with
 * Retry-After), work cancelled when its client goes away (30 clients that hang up make no
 * PNGs), images per client per minute, and the Host header checked against the bound address
 * (DNS rebinding), with --allow-host for a deliberate public name.
 */

import { expect, it } from "./lib/test.ts";
import type { PreviewImage, PreviewModel, PreviewProgress, PreviewRequest } from "../server/app.ts";
import { RateLimiter } from "../server/queue.ts";
import { startServer, type StartServerOptions } from "../server/serve.ts";
import { main } from "../cli/main.ts";

/** 8 bytes are enough: the server stores what the model returns, it does not decode it. */
const PNG_SIGNATURE = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);

/** Makes one "image" every `msPerImage`, stopping as soon as the signal fires, as the real model does. */
class SlowModel implements PreviewModel {
  readonly name = "slow";
  readonly classes = 10;
  calls = 0;
  cancelled = 0;
  hold?: Promise<void>;
  constructor(readonly msPerImage: number) {}

  async generate(
    r: PreviewRequest,
    onProgress: (p: PreviewProgress) => void,
    signal?: AbortSignal,
  ): Promise<PreviewImage[]> {
    this.calls++;
    if (this.hold) await this.hold;
    const images: PreviewImage[] = [];
    for (let i = 0; i < r.count; i++) {
      await new Promise((ok) => setTimeout(ok, this.msPerImage));
      if (signal?.aborted) {
        this.cancelled++;
        throw new Error("generation cancelled");
      }
      onProgress({ done: i + 1, total: r.count, stage: "fake" });
      images.push({ name: `s${r.seed}-${i}`, png: PNG_SIGNATURE });
    }
    return images;
  }
}

async function withServer(
  options: Omit<StartServerOptions, "samplesDir">,
  fn: (base: string, dir: string, port: number) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "digit-hardening-server-" });
  const dir = `${root}/samples`;
  await Deno.mkdir(dir);
  const server = startServer({ samplesDir: dir, port: 0, ...options });
  try {
    await fn(server.url.slice(0, -1), dir, server.port);
  } finally {
    await server.shutdown();
    await Deno.remove(root, { recursive: true });
  }
}

function post(base: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(`${base}/api/generate`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    ...init,
  });
}

async function pngCount(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".png")) n++;
  return n;
}

async function busy(base: string): Promise<number> {
  return (await (await fetch(`${base}/healthz`)).json()).busy;
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error("timed out waiting for a condition");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One raw HTTP/1.1 request with the Host header exactly as given. */
async function rawGet(port: number, path: string, host: string | null): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const hostLine = host === null ? "" : `Host: ${host}\r\n`;
  await conn.write(
    new TextEncoder().encode(`GET ${path} HTTP/1.1\r\n${hostLine}Connection: close\r\n\r\n`),
  );
  const text = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
  return Number(text.split(" ")[1]);
}

it("a full queue answers 429 with Retry-After at once", async () => {
  const model = new SlowModel(1);
  let release!: () => void;
  model.hold = new Promise((ok) => (release = ok));
  await withServer({ model, limits: { maxQueue: 2 } }, async (base) => {
    const running = post(base, { count: 1, seed: 1 });
    await waitFor(async () => (await busy(base)) === 1);
    const waiting = [post(base, { count: 1, seed: 2 }), post(base, { count: 1, seed: 3 })];
    await waitFor(async () => (await busy(base)) === 3);
    const start = performance.now();
    const refused = await post(base, { count: 1, seed: 4 });
    expect(performance.now() - start, "refused without waiting").toBeLessThan(1000);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after") ?? "").toMatch(/^[1-9]\d*$/);
    expect((await refused.json()).error).toMatch(
      /the generate queue is full \(2 requests waiting\)/,
    );
    release();
    for (const r of await Promise.all([running, ...waiting])) {
      expect(r.status).toBe(200);
      await r.body?.cancel();
    }
    expect(model.calls).toBe(3);
  });
});

it("30 JSON clients that hang up make no PNGs; the queue drains at once", async () => {
  // 16 images at 40 ms each: 640 ms per request, so 30 of them would take 19 s and save 480.
  const model = new SlowModel(40);
  const limits = { maxQueue: 32, maxImagesPerMinute: 100_000 };
  await withServer({ model, limits }, async (base, dir) => {
    const hangUps = Array.from({ length: 30 }, (_, i) => {
      const ctl = new AbortController();
      setTimeout(() => ctl.abort(), 300);
      return post(base, { count: 16, seed: i }, { signal: ctl.signal }).then(
        (r) => r.body?.cancel().then(() => r.status),
        () => "hung up",
      );
    });
    const start = performance.now();
    const outcomes = await Promise.all(hangUps);
    expect(new Set(outcomes)).toEqual(new Set(["hung up"]));
    await waitFor(async () => (await busy(base)) === 0, 5000);
    const drained = performance.now() - start;
    await new Promise((r) => setTimeout(r, 100)); // a cancelled job would save just now
    expect(await pngCount(dir)).toBe(0);
    // The running job stops at its next image; a waiter whose hang-up the server has not
    // seen yet may start, and stops at its first image. Nothing runs to the end.
    expect(model.calls, `${model.calls} of 30 jobs reached the model`).toBeLessThanOrEqual(5);
    expect(model.cancelled, "every job that started was cancelled").toBe(model.calls);
    expect(drained, `drained in ${drained.toFixed(0)} ms`).toBeLessThan(2000);
    console.log(
      `30 hung-up clients: 0 PNGs, ${model.calls} job(s) started and cancelled, queue empty ${
        drained.toFixed(0)
      } ms after they asked`,
    );
  });
});

it("an event-stream client that goes away cancels its generation", async () => {
  const model = new SlowModel(40);
  await withServer({ model }, async (base, dir) => {
    const res = await post(base, { count: 16 }, {
      headers: { "content-type": "application/json", accept: "text/event-stream" },
    });
    const reader = res.body!.getReader();
    await reader.read(); // the first event: it has started
    await reader.cancel();
    await waitFor(async () => (await busy(base)) === 0, 3000);
    await new Promise((r) => setTimeout(r, 100));
    expect(model.cancelled).toBe(1);
    expect(await pngCount(dir)).toBe(0);
  });
});

it("images per client per minute: over the cap is 429 with the seconds to wait", async () => {
  const model = new SlowModel(0);
  await withServer({ model, limits: { maxCount: 4, maxImagesPerMinute: 8 } }, async (base, dir) => {
    for (const seed of [1, 2]) {
      const ok = await post(base, { count: 4, seed });
      expect(ok.status).toBe(200);
      await ok.body?.cancel();
    }
    const over = await post(base, { count: 1, seed: 3 });
    expect(over.status).toBe(429);
    const wait = Number(over.headers.get("retry-after"));
    expect(wait >= 1 && wait <= 60, `Retry-After ${wait}`).toBeTruthy();
    expect((await over.json()).error).toMatch(
      /over the limit of 8 images per minute for 127\.0\.0\.1/,
    );
    expect(await pngCount(dir)).toBe(8);
    const tooMany = await post(base, { count: 5 });
    expect(tooMany.status, "more than per request is a bad request").toBe(422);
    await tooMany.body?.cancel();
  });
});

it("RateLimiter: a sliding minute per client; refunds; Retry-After from the oldest grant", () => {
  let now = 0;
  const limiter = new RateLimiter(10, 60_000, 2, () => now);
  expect(limiter.take("a", 6)).toBe(0);
  now = 20_000;
  expect(limiter.take("a", 4)).toBe(0);
  expect(limiter.take("a", 1), "the first grant leaves the window at 60 s").toBe(40);
  expect(limiter.take("b", 10), "another client has its own minute").toBe(0);
  expect(limiter.take("c", 1), "no room to track a third client").toBe(60);
  limiter.refund("a", 4);
  expect(limiter.take("a", 4)).toBe(0);
  now = 60_000;
  expect(limiter.take("a", 6), "6 left the window").toBe(0);
});

it("Host header: only the bound address and loopback names, plus --allow-host names", async () => {
  await withServer({ model: new SlowModel(0) }, async (_base, _dir, port) => {
    for (
      const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `LOCALHOST:${port}`]
    ) {
      expect(await rawGet(port, "/healthz", host), host).toBe(200);
    }
    for (
      const host of [`evil.example:${port}`, "evil.example", `127.0.0.1:${port + 1}`, "localhost"]
    ) {
      expect(await rawGet(port, "/healthz", host), host).toBe(403);
      expect(await rawGet(port, "/api/samples", host), host).toBe(403);
    }
    expect(await rawGet(port, "/healthz", null), "no Host at all").not.toBe(200);
  });
  await withServer(
    { model: new SlowModel(0), allowHosts: ["preview.example.org", "other.example:9"] },
    async (_base, _dir, port) => {
      expect(await rawGet(port, "/healthz", "preview.example.org")).toBe(200);
      expect(await rawGet(port, "/healthz", `preview.example.org:${port}`)).toBe(200);
      expect(await rawGet(port, "/healthz", "other.example:9")).toBe(200);
      expect(await rawGet(port, "/healthz", `other.example:${port}`)).toBe(403);
      expect(await rawGet(port, "/healthz", `evil.example:${port}`)).toBe(403);
    },
  );
});

it("digit serve --help states the limits and --allow-host", async () => {
  let out = "";
  const code = await main(["serve", "--help"], {
    stdout: (t) => (out += t),
    stderr: () => {},
    loadBuiltins: () => Promise.resolve({}),
    signal: new AbortController().signal,
  });
  expect(code).toBe(0);
  expect(out).toMatch(
    /16 images per request, 64 images per minute per client address, 8 requests waiting/,
  );
  expect(out).toMatch(/429 with Retry-After/);
  expect(out).toMatch(/--allow-host NAME/);
});
