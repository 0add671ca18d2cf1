/**
 * Headless Chromium with SwiftShader's WebGPU, driven from Deno over the DevTools protocol
 * (Deno's own WebSocket; nothing to download). Used by tests/browser_webgpu_test.ts and by
 * web/tools/measure.ts. Deno-only: never imported by the bundle.
 */

export const CHROMIUM_CANDIDATES = [
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
];

/** The flags that give headless Chromium a WebGPU adapter on a machine without a GPU. */
export const WEBGPU_FLAGS = [
  "--headless=new",
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--enable-unsafe-swiftshader",
  "--use-webgpu-adapter=swiftshader",
];

export function findChromium(): string | null {
  for (const path of CHROMIUM_CANDIDATES) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // not here
    }
  }
  return null;
}

interface Waiter {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** One browser, one page target, attached in flat mode. */
export class Browser {
  #nextId = 1;
  #pending = new Map<number, Waiter>();
  #sessionId = "";
  /** Console lines from the page, in order. */
  readonly console: string[] = [];
  /** Settles once the DevTools socket has closed, whichever side closed it. */
  readonly #closed: Promise<void>;
  private constructor(
    private readonly child: Deno.ChildProcess,
    private readonly socket: WebSocket,
    private readonly profile: string,
  ) {
    socket.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.method === "Runtime.consoleAPICalled") {
        const args = msg.params.args as { value?: unknown; description?: string }[];
        this.console.push(args.map((a) => String(a.value ?? a.description ?? "")).join(" "));
        return;
      }
      if (msg.method === "Runtime.exceptionThrown") {
        const d = msg.params.exceptionDetails;
        this.console.push(`uncaught: ${d.exception?.description ?? d.text}`);
        return;
      }
      const waiter = this.#pending.get(msg.id);
      if (!waiter) return;
      this.#pending.delete(msg.id);
      if (msg.error) waiter.reject(new Error(JSON.stringify(msg.error)));
      else waiter.resolve(msg.result);
    };
    this.#closed = new Promise((resolve) => {
      socket.onclose = () => {
        for (const w of this.#pending.values()) w.reject(new Error("DevTools socket closed"));
        this.#pending.clear();
        resolve();
      };
    });
  }

  /** Starts Chromium with `extraArgs` and opens a blank page. */
  static async launch(path: string, extraArgs: string[] = WEBGPU_FLAGS): Promise<Browser> {
    const profile = await Deno.makeTempDir({ prefix: "digit-chromium-" });
    const child = new Deno.Command(path, {
      args: [
        ...extraArgs,
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--mute-audio",
        `--user-data-dir=${profile}`,
        "--remote-debugging-port=0",
        "about:blank",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      // Chromium writes the port it picked (and the browser target's path) here.
      let portFile = "";
      const deadline = Date.now() + 30_000;
      while (!portFile.includes("\n")) {
        if (Date.now() > deadline) {
          throw new Error("Chromium did not open a DevTools port within 30 s");
        }
        await new Promise((r) => setTimeout(r, 100));
        portFile = await Deno.readTextFile(`${profile}/DevToolsActivePort`).catch(() => "");
      }
      const [port, wsPath] = portFile.trim().split("\n");
      const socket = new WebSocket(`ws://127.0.0.1:${port}${wsPath}`);
      await new Promise((resolve, reject) => {
        socket.onopen = resolve;
        socket.onerror = () => reject(new Error("cannot connect to Chromium's DevTools socket"));
      });
      const browser = new Browser(child, socket, profile);
      const { targetId } = await browser.send(
        "Target.createTarget",
        { url: "about:blank" },
        false,
      ) as {
        targetId: string;
      };
      const { sessionId } = await browser.send(
        "Target.attachToTarget",
        { targetId, flatten: true },
        false,
      ) as {
        sessionId: string;
      };
      browser.#sessionId = sessionId;
      await browser.send("Runtime.enable");
      await browser.send("Page.enable");
      return browser;
    } catch (e) {
      child.kill("SIGKILL");
      await child.status;
      await Deno.remove(profile, { recursive: true }).catch(() => {});
      throw e;
    }
  }

  send(
    method: string,
    params: Record<string, unknown> = {},
    onPage = true,
    timeoutMs = 60_000,
  ): Promise<unknown> {
    const id = this.#nextId++;
    const msg: Record<string, unknown> = { id, method, params };
    if (onPage) msg.sessionId = this.#sessionId;
    this.socket.send(JSON.stringify(msg));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`DevTools ${method}: no answer within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  }

  async navigate(url: string): Promise<void> {
    await this.send("Page.navigate", { url });
  }

  /** Runs `source` in every document this page loads from now on, before its own scripts. */
  async addInitScript(source: string): Promise<void> {
    await this.send("Page.addScriptToEvaluateOnNewDocument", { source });
  }

  /** Evaluates `expression` in the page (awaiting a promise) and returns its JSON value. */
  async evaluate<T>(expression: string, timeoutMs = 60_000): Promise<T> {
    const r = await this.send(
      "Runtime.evaluate",
      {
        expression,
        awaitPromise: true,
        returnByValue: true,
      },
      true,
      timeoutMs,
    ) as {
      result: { value: T };
      exceptionDetails?: { text?: string; exception?: { description?: string } };
    };
    if (r.exceptionDetails) {
      throw new Error(
        `page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`,
      );
    }
    return r.result.value;
  }

  /** Polls `expression` until it is truthy. */
  async waitFor(expression: string, timeoutMs: number, what = expression): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await this.evaluate<boolean>(expression).catch(() => false)) return;
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs / 1000} s waiting for ${what}; console:\n${
            this.console.join("\n")
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** A PNG of the page as laid out at `width` x `height` CSS pixels. */
  async screenshot(width: number, height: number): Promise<Uint8Array> {
    await this.send("Emulation.setDeviceMetricsOverride", {
      width,
      height,
      deviceScaleFactor: 1,
      mobile: false,
    });
    const { data } = await this.send("Page.captureScreenshot", { format: "png" }) as {
      data: string;
    };
    return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  }

  /** Asks the browser to quit, kills it if it lingers, and removes its profile. */
  async close(): Promise<void> {
    await this.send("Browser.close", {}, false, 5_000).catch(() => {});
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.close();
    await this.#closed;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.child.status.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 5_000))),
    ]);
    clearTimeout(timer);
    if (!exited) {
      this.child.kill("SIGKILL");
      await this.child.status;
    }
    await Deno.remove(this.profile, { recursive: true }).catch(() => {});
  }
}
