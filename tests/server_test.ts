import { expect, it } from "./lib/test.ts";
import type { PreviewImage, PreviewModel, PreviewProgress, PreviewRequest } from "../server/app.ts";
import { FifoMutex } from "../server/queue.ts";
import { startServer } from "../server/main.ts";

// ---------------------------------------------------------------------------------------------
// Fixtures: a tiny PNG encoder and fake preview models

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

async function zlib(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const stream = new Blob([data]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A solid-colour RGB PNG, enough for a browser to decode. */
async function solidPng(side: number, rgb: [number, number, number]): Promise<Uint8Array> {
  const raw = new Uint8Array(side * (1 + 3 * side));
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) raw.set(rgb, y * (1 + 3 * side) + 1 + 3 * x);
  }
  const chunk = (type: string, data: Uint8Array) => {
    const out = new Uint8Array(12 + data.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, data.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(data, 8);
    view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  };
  const header = new Uint8Array(13);
  new DataView(header.buffer).setUint32(0, side);
  new DataView(header.buffer).setUint32(4, side);
  header.set([8, 2, 0, 0, 0], 8);
  const parts = [
    new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", header),
    chunk("IDAT", await zlib(raw)),
    chunk("IEND", new Uint8Array()),
  ];
  const png = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    png.set(p, at);
    at += p.length;
  }
  return png;
}

/** Resolves when `open()` is called; lets a test hold the model mid-generation. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/** Reports two progress steps, optionally waits on a gate, returns `count` 8×8 PNGs. */
class FakeModel implements PreviewModel {
  readonly name = "fake";
  readonly classes = 10;
  calls: PreviewRequest[] = [];
  active = 0;
  maxActive = 0;
  hold?: { opened: Promise<void> };
  started = gate();
  nameHint = (r: PreviewRequest, i: number) => `s${r.seed}-${i}`;

  async generate(
    r: PreviewRequest,
    onProgress: (p: PreviewProgress) => void,
  ): Promise<PreviewImage[]> {
    this.calls.push(r);
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      this.started.open();
      onProgress({ done: 1, total: 2, stage: "stage 1" });
      if (this.hold) await this.hold.opened;
      onProgress({ done: 2, total: 2, stage: "stage 1" });
      const images: PreviewImage[] = [];
      for (let i = 0; i < r.count; i++) {
        images.push({
          name: this.nameHint(r, i),
          png: await solidPng(8, [r.seed % 256, 40 * i, 200]),
        });
      }
      return images;
    } finally {
      this.active--;
    }
  }
}

async function withServer(
  model: PreviewModel | undefined,
  fn: (base: string, dir: string) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir();
  const dir = `${root}/samples`;
  await Deno.mkdir(dir);
  const server = startServer({ samplesDir: dir, model, port: 0 });
  try {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    await fn(server.url.slice(0, -1), dir);
  } finally {
    await server.shutdown();
    await Deno.remove(root, { recursive: true });
  }
}

function post(base: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${base}/api/generate`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Parses a whole text/event-stream body into [event, data] pairs. */
async function events(res: Response): Promise<[string, unknown][]> {
  const text = await res.text();
  return text.split("\n\n").filter((b) => b.trim() !== "").map((block) => {
    const kind = /^event: (.*)$/m.exec(block)![1];
    const data = /^data: (.*)$/m.exec(block)![1];
    return [kind, JSON.parse(data)];
  });
}

/** One raw HTTP/1.1 GET, so that the path reaches the server exactly as written. */
async function rawGet(base: string, path: string): Promise<{ status: number; body: string }> {
  const port = Number(new URL(base).port);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    new TextEncoder().encode(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
    ),
  );
  const text = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
  return { status: Number(text.split(" ")[1]), body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}

// ---------------------------------------------------------------------------------------------

it("FifoMutex runs jobs one at a time in call order, even when one throws", async () => {
  const mutex = new FifoMutex();
  const order: string[] = [];
  let active = 0;
  const job = (name: string, ms: number, fail = false) =>
    mutex.run(async () => {
      active++;
      expect(active).toBe(1);
      order.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, ms));
      order.push(`end ${name}`);
      active--;
      if (fail) throw new Error(name);
      return name;
    });
  const results = await Promise.allSettled([job("a", 15), job("b", 1, true), job("c", 5)]);
  expect(order).toEqual(["start a", "end a", "start b", "end b", "start c", "end c"]);
  expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
  expect(mutex.size).toBe(0);
});

it("healthz, page and gallery listing", async () => {
  await withServer(new FakeModel(), async (base, dir) => {
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({
      ok: true,
      model: "fake",
      busy: 0,
    });
    const page = await fetch(`${base}/`);
    expect(page.headers.get("content-type") ?? "").toMatch(/text\/html/);
    const html = await page.text();
    for (const field of ["classId", "seed", "topK", "temperature", "steps", "count"]) {
      expect(html.includes(`name="${field}"`), field).toBeTruthy();
    }
    expect(html.includes(`"model":"fake","classes":10,"maxCount":16,"maxSteps":64`)).toBeTruthy();
    expect(/<script src=|<link /.test(html), "the page must be self-contained").toBeFalsy();

    expect(await (await fetch(`${base}/api/samples`)).json()).toEqual({ samples: [] });
    const png = await solidPng(4, [1, 2, 3]);
    await Deno.writeFile(`${dir}/old.png`, png);
    await Deno.writeFile(`${dir}/notes.txt`, new Uint8Array([1]));
    await Deno.writeFile(`${dir}/.hidden.png`, png);
    const listed = await (await fetch(`${base}/api/samples`)).json();
    expect(listed.samples.map((
      x: { name: string; url: string; bytes: number },
    ) => [x.name, x.url, x.bytes])).toEqual([
      ["old.png", "/samples/old.png", png.length],
    ]);
    const got = await fetch(`${base}/samples/old.png`);
    expect(got.headers.get("content-type")).toBe("image/png");
    expect(new Uint8Array(await got.arrayBuffer())).toEqual(png);
  });
});

it("sample names cannot leave the samples folder", async () => {
  await withServer(new FakeModel(), async (base, dir) => {
    const secret = "TOP-SECRET-BYTES";
    const parent = dir.slice(0, dir.lastIndexOf("/"));
    await Deno.writeTextFile(`${parent}/secret.png`, secret);
    await Deno.symlink(`${parent}/secret.png`, `${dir}/link.png`);
    const attempts = [
      "/samples/..%2Fsecret.png",
      "/samples/%2e%2e%2fsecret.png",
      "/samples/%2E%2E%2Fsecret.png",
      "/samples/..%252Fsecret.png",
      "/samples/%2e%2e/secret.png",
      "/samples/../secret.png",
      "/samples/..%5Csecret.png",
      "/samples/.hidden.png",
      "/samples/a%00.png",
      "/samples/..png",
      "/samples/x..%2F..%2Fsecret.png",
      `/samples/${encodeURIComponent(`${parent}/secret.png`)}`,
      "/samples/link.png",
      "/samples/missing.png",
    ];
    for (const path of attempts) {
      const { status, body } = await rawGet(base, path);
      expect(status === 400 || status === 404, `${path} gave ${status}`).toBeTruthy();
      expect(body.includes(secret), `${path} leaked the file`).toBeFalsy();
    }
    expect((await rawGet(base, "/samples/..%2Fsecret.png")).status).toBe(400);
  });
});

it("POST /api/generate (JSON): validates, runs the model, saves unique safe names", async () => {
  const model = new FakeModel();
  model.nameHint = (_r, i) => (i === 0 ? "../../evil name" : "dup");
  await withServer(model, async (base, dir) => {
    const res = await post(base, { classId: 3, seed: 7, count: 3, steps: 12 });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.images.map((x: { name: string }) => x.name)).toEqual([
      "evil-name.png",
      "dup.png",
      "dup-2.png",
    ]);
    expect(model.calls).toEqual([{
      classId: 3,
      seed: 7,
      topK: 200,
      temperature: 1,
      steps: 12,
      count: 3,
    }]);
    for (const name of ["evil-name.png", "dup.png", "dup-2.png"]) {
      expect((await Deno.stat(`${dir}/${name}`)).isFile).toBeTruthy();
    }
    const listed = await (await fetch(`${base}/api/samples`)).json();
    expect(listed.samples.length).toBe(3);
    const img = await fetch(`${base}${body.images[1].url}`);
    expect(new Uint8Array(await img.arrayBuffer())).toEqual(await solidPng(8, [7, 40, 200]));
  });
});

it("POST /api/generate rejects bad requests with 400/413/415/422 and a reason", async () => {
  const model = new FakeModel();
  await withServer(model, async (base) => {
    const check = async (res: Response, status: number, error: RegExp, problems?: string[]) => {
      expect(res.status).toBe(status);
      const body = await res.json();
      expect(body.error).toMatch(error);
      if (problems) expect(body.problems).toEqual(problems);
    };
    await check(await post(base, "{not json"), 400, /^body is not valid JSON/);
    await check(await post(base, "[1,2]"), 400, /^body must be a JSON object$/);
    await check(
      await post(base, "{}", { "content-type": "text/plain" }),
      415,
      /expected a JSON body/,
    );
    await check(
      await post(base, { seed: 1, pad: "x".repeat(5000) }),
      413,
      /request body is \d+ bytes; the limit is 4096/,
    );
    // A streamed body without Content-Length is cut off at the limit too.
    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(`{"seed": 1, "pad": "${"y".repeat(6000)}"}`));
        c.close();
      },
    });
    await check(
      await fetch(`${base}/api/generate`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chunked,
      }),
      413,
      /over the limit of 4096 bytes/,
    );
    await check(
      await post(base, {
        count: 100,
        steps: 0,
        classId: 10,
        temperature: 0,
        topK: -1,
        colour: "red",
      }),
      422,
      /^invalid generate request$/,
      [
        "classId: expected an integer between 0 and 9, got 10",
        "topK: expected an integer between 0 and 65536, got -1",
        "temperature: expected a number > 0 and <= 10, got 0",
        "steps: expected an integer between 1 and 64, got 0",
        "count: expected an integer between 1 and 16, got 100",
        "colour: unknown key (allowed: classId, seed, topK, temperature, steps, count)",
      ],
    );
    expect(model.calls.length).toBe(0);
  });
});

it("without a model the server is a gallery only and generate answers 503", async () => {
  await withServer(undefined, async (base) => {
    const res = await post(base, { count: 1 });
    expect(res.status).toBe(503);
    expect((await res.json()).error).toMatch(/no preview model is loaded/);
    expect(await (await fetch(`${base}/`)).text()).toMatch(/"model":null/);
  });
});

it("the page fits the model: class names, top-k bounded by the vocabulary, no steps for AR", async () => {
  // An AR model with a 16-token stage 1 that names its classes (one name needs escaping).
  const ar = Object.assign(new FakeModel(), {
    vocabSize: 16,
    usesSteps: false,
    classNames: ["circle", "<b>square</b>", ...Array.from({ length: 8 }, (_, i) => `c${i + 2}`)],
  });
  await withServer(ar, async (base) => {
    const html = await (await fetch(`${base}/`)).text();
    expect(html.includes(`name="steps"`), "an AR model has no MaskGIT steps field").toBe(false);
    expect(html).toContain(`<select name="classId"><option value="">none</option>`);
    expect(html).toContain(`<option value="1">1: &#60;b&#62;square&#60;/b&#62;</option>`);
    expect(html).toContain(`name="topK" type="number" min="0" max="16"`);
    expect(html).toContain(`"maxTopK":16`);
    expect(html).toContain(`"topK":16`); // the default, 200, is over the vocabulary

    const over = await post(base, { topK: 17, count: 1 });
    expect(over.status).toBe(422);
    expect((await over.json()).problems).toEqual([
      "topK: expected an integer between 0 and 16, got 17",
    ]);
    expect((await post(base, { count: 1 })).status).toBe(200);
    expect(ar.calls.map((c) => c.topK)).toEqual([16]);
  });

  // A model without names: the samples folder's labels.tsv (as the demo writes it) names them.
  await withServer(new FakeModel(), async (base, dir) => {
    expect(await (await fetch(`${base}/`)).text()).toContain(`<input name="classId"`);
    await Deno.writeTextFile(
      `${dir}/labels.tsv`,
      "file\tclass_id\tclass_name\na.png\t0\tcircle\nb.png\t3\ttriangle\n",
    );
    const html = await (await fetch(`${base}/`)).text();
    expect(html).toContain(`<option value="0">0: circle</option><option value="1">1: 1</option>`);
    expect(html).toContain(`<option value="3">3: triangle</option>`);
    expect(html).toContain(`name="steps"`);
  });
});

it("event stream: progress then images; concurrent requests queue in order", async () => {
  const model = new FakeModel();
  const release = gate();
  model.hold = release;
  await withServer(model, async (base) => {
    const sse = { accept: "text/event-stream" };
    const first = post(base, { seed: 1, count: 1 }, sse);
    await model.started.opened;
    const second = post(base, { seed: 2, count: 2 }, sse);
    await waitFor(async () => (await (await fetch(`${base}/healthz`)).json()).busy === 2);
    const third = post(base, { seed: 3, count: 1 }, sse);
    await waitFor(async () => (await (await fetch(`${base}/healthz`)).json()).busy === 3);
    release.open();

    const [a, b, c] = await Promise.all([first, second, third]);
    expect(a.headers.get("content-type") ?? "").toMatch(/^text\/event-stream/);
    const evA = await events(a);
    expect(evA.map(([k]) => k)).toEqual(["started", "progress", "progress", "image", "done"]);
    expect(evA[1][1]).toEqual({ done: 1, total: 2, stage: "stage 1" });
    const evB = await events(b);
    expect(evB.map(([k]) => k)).toEqual([
      "queued",
      "started",
      "progress",
      "progress",
      "image",
      "image",
      "done",
    ]);
    expect(evB[0][1]).toEqual({ ahead: 1 });
    expect(((evB[6][1]) as { images: { name: string }[] }).images.map((x) => x.name)).toEqual([
      "s2-0.png",
      "s2-1.png",
    ]);
    const evC = await events(c);
    expect(evC[0]).toEqual(["queued", { ahead: 2 }]);
    expect(model.calls.map((r) => r.seed)).toEqual([1, 2, 3]);
    expect(model.maxActive).toBe(1);
  });
});

it("a model failure reaches the client as an error event", async () => {
  const model: PreviewModel = {
    name: "broken",
    generate: () => Promise.reject(new Error("out of memory")),
  };
  await withServer(model, async (base) => {
    const ev = await events(await post(base, { count: 1 }, { accept: "text/event-stream" }));
    expect(ev).toEqual([["started", { count: 1 }], ["error", { message: "out of memory" }]]);
    const json = await post(base, { count: 1 });
    expect(json.status).toBe(500);
    expect(await json.json()).toEqual({ error: "out of memory" });
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error("timed out waiting for a condition");
    await new Promise((r) => setTimeout(r, 25));
  }
}

// ---------------------------------------------------------------------------------------------
// The page in a real browser, driven over the DevTools protocol

const CHROMIUM = "/usr/bin/chromium";
const haveChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();

/** The smallest DevTools client: one page session, Runtime.evaluate. */
class DevTools {
  #nextId = 1;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  sessionId = "";
  /** Settles when the socket closes, whoever closes it (the browser may go first). */
  readonly closed: Promise<void>;
  private constructor(readonly socket: WebSocket) {
    this.closed = new Promise((resolve) => {
      socket.onclose = () => {
        for (const waiter of this.#pending.values()) {
          waiter.reject(new Error("DevTools socket closed"));
        }
        this.#pending.clear();
        resolve();
      };
    });
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      const waiter = this.#pending.get(message.id);
      if (!waiter) return;
      this.#pending.delete(message.id);
      if (message.error) waiter.reject(new Error(JSON.stringify(message.error)));
      else waiter.resolve(message.result);
    };
  }

  static async connect(url: string): Promise<DevTools> {
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
    return new DevTools(socket);
  }

  send(method: string, params: Record<string, unknown> = {}, session = true): Promise<unknown> {
    const id = this.#nextId++;
    const message: Record<string, unknown> = { id, method, params };
    if (session && this.sessionId) message.sessionId = this.sessionId;
    this.socket.send(JSON.stringify(message));
    // Never wait forever on a browser that went away or hung.
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`DevTools ${method}: no answer within 20 s`));
      }, 20_000);
      this.#pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  }

  async evaluate<T>(expression: string): Promise<T> {
    const result = await this.send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    }) as {
      result: { value: T };
      exceptionDetails?: unknown;
    };
    if (result.exceptionDetails) {
      throw new Error(`page error: ${JSON.stringify(result.exceptionDetails)}`);
    }
    return result.result.value;
  }

  async close(): Promise<void> {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.close();
    await this.closed;
  }
}

/** Opens `url` in a fresh headless Chromium and runs `fn` on the page; the browser always quits. */
async function inChromium(url: string, fn: (t: DevTools) => Promise<void>): Promise<void> {
  const profile = await Deno.makeTempDir();
  const browser = new Deno.Command(CHROMIUM, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      "about:blank",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  let tools: DevTools | undefined;
  try {
    // Chromium writes the port it chose into the profile folder.
    let portFile = "";
    await waitFor(async () => {
      portFile = await Deno.readTextFile(`${profile}/DevToolsActivePort`).catch(() => "");
      return portFile.includes("\n");
    }, 30_000);
    const [port, path] = portFile.trim().split("\n");
    tools = await DevTools.connect(`ws://127.0.0.1:${port}${path}`);
    const { targetId } = await tools.send(
      "Target.createTarget",
      { url: "about:blank" },
      false,
    ) as {
      targetId: string;
    };
    const { sessionId } = await tools.send(
      "Target.attachToTarget",
      { targetId, flatten: true },
      false,
    ) as {
      sessionId: string;
    };
    tools.sessionId = sessionId;
    await tools.send("Page.navigate", { url });
    await fn(tools);
  } finally {
    // Ask the browser to quit (it then takes its helper processes along); kill it if not.
    tools?.send("Browser.close", {}, false).catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const quit = await Promise.race([
      browser.status.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 5000))),
    ]);
    clearTimeout(timer);
    if (!quit) browser.kill("SIGKILL");
    await browser.status;
    await tools?.close().catch(() => {});
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

it.skipIf(!haveChromium)(
  "the page in headless Chromium shows progress, then the generated images",
  async () => {
    const model = new FakeModel();
    const release = gate();
    model.hold = release;
    await withServer(model, async (base, dir) => {
      await Deno.writeFile(`${dir}/earlier.png`, await solidPng(8, [0, 255, 0]));
      await inChromium(`${base}/`, async (t) => {
        await waitFor(() =>
          t.evaluate<boolean>(`document.querySelectorAll("#gallery img").length === 1`)
        );

        await t.evaluate(`(() => {
          const f = document.getElementById("generate");
          f.elements.count.value = "3";
          f.elements.seed.value = "5";
          f.elements.classId.value = "2";
          document.getElementById("go").click();
        })()`);
        await waitFor(() =>
          t.evaluate<boolean>(`document.getElementById("status").textContent === "stage 1: 1 / 2"`)
        );
        expect(await t.evaluate<boolean>(`document.getElementById("go").disabled`)).toBe(true);
        release.open();
        await waitFor(() =>
          t.evaluate<boolean>(`(() => {
            const imgs = [...document.querySelectorAll("#results img")];
            return imgs.length === 3 && imgs.every((i) => i.complete && i.naturalWidth === 8);
          })()`)
        );
        expect(await t.evaluate<string>(`document.getElementById("status").textContent`)).toBe(
          "done: 3 image(s)",
        );
        expect(await t.evaluate<number>(`document.querySelectorAll("#gallery img").length`)).toBe(
          4,
        );
        expect(model.calls).toEqual([{
          classId: 2,
          seed: 5,
          topK: 200,
          temperature: 1,
          steps: 8,
          count: 3,
        }]);

        // A request the server rejects shows its reason on the page (browser-side checks off,
        // as they would be for a client that does not know the limits).
        await t.evaluate(`(() => {
          document.getElementById("generate").noValidate = true;
          document.getElementById("generate").elements.count.value = "99";
          document.getElementById("go").click();
        })()`);
        await waitFor(() =>
          t.evaluate<boolean>(
            `document.getElementById("status").textContent.includes("count: expected an integer between 1 and 16, got 99")`,
          )
        );
      });
    });
  },
);

it.skipIf(!haveChromium)(
  "the page in headless Chromium for an AR model: a class list, no steps field",
  async () => {
    const ar = Object.assign(new FakeModel(), {
      vocabSize: 16,
      usesSteps: false,
      classNames: Array.from({ length: 10 }, (_, i) => `class ${i}`),
    });
    await withServer(ar, async (base) => {
      await inChromium(`${base}/`, async (t) => {
        await waitFor(() => t.evaluate<boolean>(`document.getElementById("go") !== null`));
        expect(
          await t.evaluate<string[]>(`(() => {
          const f = document.getElementById("generate");
          return [f.elements.classId.tagName, f.elements.topK.max, f.elements.topK.value,
            String(f.elements.namedItem("steps"))];
        })()`),
        ).toEqual(["SELECT", "16", "16", "null"]);
        await t.evaluate(`(() => {
          const f = document.getElementById("generate");
          f.elements.classId.value = "2";
          f.elements.count.value = "1";
          document.getElementById("go").click();
        })()`);
        await waitFor(() =>
          t.evaluate<boolean>(
            `document.getElementById("status").textContent === "done: 1 image(s)"`,
          )
        );
        // No steps in the request: the server's default, which an AR model ignores.
        expect(ar.calls).toEqual([{
          classId: 2,
          seed: 0,
          topK: 16,
          temperature: 1,
          steps: 8,
          count: 1,
        }]);
      });
    });
  },
);
