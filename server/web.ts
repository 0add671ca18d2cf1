/**
 * Generation in the visitor's browser: the routes that serve the web page, the runtime
 * bundle and the loaded model's weights. Mounted on the preview app by `startServer`.
 *
 *   GET /web                       the page (in-browser or server-side generation)
 *   GET /web/parity                the kernel parity suite + a fixed-seed batch, in-page
 *   GET /web/digit.js              the runtime bundle (built from web/entry.ts on first use)
 *   GET /web/manifest.json         each part's config, weights URL and size; 503 without a model
 *   GET /web/weights/:part         stage1|stage2|vqgan .safetensors (model weights only)
 *
 * The weights are the networks the server itself generates with (a DigitPreview), encoded
 * once on first request and kept in memory.
 */

import type { Hono } from "hono";
import { encodeSafetensors } from "../core/io/safetensors.ts";
import { hostStateDict } from "../core/nn/module.ts";
import type { Module } from "../core/nn/module.ts";
import type { PreviewModel } from "../core/registry.ts";
import { DigitPreview } from "../plugins/preview/model.ts";
import { buildWebBundle } from "../web/build.ts";
import { PART_NAMES, type PartName, type WebManifest } from "../web/pipeline.ts";

export interface WebRoutesOptions {
  model?: PreviewModel;
  /** Defaults for the page's form, and its limits (the server's own for server-side runs). */
  maxCount?: number;
  maxSteps?: number;
  /** The bundle's bytes; default: `deno bundle` into a temporary file, once per process. */
  bundle?: () => Promise<Uint8Array<ArrayBuffer>>;
}

let builtOnce: Promise<Uint8Array<ArrayBuffer>> | null = null;

/** Builds the bundle into a temporary folder (never the checkout) and keeps the bytes. */
function defaultBundle(): Promise<Uint8Array<ArrayBuffer>> {
  builtOnce ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "digit-web-" });
    try {
      const { path } = await buildWebBundle(`${dir}/digit.js`);
      return await Deno.readFile(path);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  })();
  builtOnce.catch(() => (builtOnce = null));
  return builtOnce;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 16px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
form { display: flex; flex-wrap: wrap; gap: 12px; align-items: end; padding: 12px; border: 1px solid #ddd; border-radius: 8px; }
fieldset { border: 0; padding: 0; margin: 0; display: flex; gap: 10px; font-size: 13px; }
label { display: flex; flex-direction: column; font-size: 12px; color: #555; }
fieldset label { flex-direction: row; gap: 4px; color: #222; align-items: center; }
input[type=number] { width: 6em; padding: 4px; }
button { padding: 6px 16px; }
progress { width: 260px; }
#adapter { color: #555; margin: 4px 0 12px; }
.bars { display: flex; gap: 24px; align-items: center; margin: 12px 0; font-size: 12px; color: #555; }
#results { display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: 8px; }
.sample { width: 100%; image-rendering: pixelated; border-radius: 4px; background: #eee; }
#timing { color: #555; font-size: 12px; margin-top: 10px; }
`;

function renderWebPage(
  o: { model: string | null; classes: number | null; maxCount: number; maxSteps: number },
): string {
  const num = (name: string, label: string, value: number, attrs: string) =>
    `<label>${label}<input type="number" name="${name}" value="${value}" ${attrs} required></label>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>DiGIT in the browser</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${STYLE}</style></head>
<body><main id="app" data-state="starting">
<h1>DiGIT in your browser</h1>
<p id="model">${
    o.model
      ? `model: ${escapeHtml(o.model)}`
      : "no model loaded: in-browser generation is unavailable"
  }</p>
<p id="adapter">looking for a WebGPU adapter…</p>
<form id="controls">
  <fieldset><legend>run</legend>
    <label><input type="radio" name="where" value="browser" checked> in this browser</label>
    <label><input type="radio" name="where" value="server"> on the server</label>
  </fieldset>
  <label>device (in browser)<select id="device" name="device">
    <option value="webgpu">WebGPU</option><option value="cpu">CPU (TypeScript + WASM)</option></select></label>
  <label>class<input type="number" name="classId" min="0" ${
    o.classes ? `max="${o.classes - 1}" value="0"` : 'value="" disabled'
  }></label>
  ${num("seed", "seed", 0, 'min="0" max="4294967295"')}
  ${num("count", "images", 4, `min="1" max="${o.maxCount}"`)}
  ${num("topK", "top-k", 200, 'min="0"')}
  ${num("temperature", "temperature", 1, 'min="0.01" max="10" step="0.01"')}
  ${num("steps", "MaskGIT steps", 8, `min="1" max="${o.maxSteps}"`)}
  <button id="go" type="submit" ${o.model ? "" : "disabled"}>Generate</button>
</form>
<div class="bars">
  <span><progress id="download" value="0" max="1"></progress> <span id="download-text">weights: not downloaded</span></span>
  <span><progress id="stage-progress" value="0" max="1"></progress> <span id="status">ready</span></span>
</div>
<div id="results"></div>
<p id="timing"></p>
</main>
<script type="module">
import { mountPage } from "/web/digit.js";
mountPage(document.getElementById("app")).catch((e) => {
  document.getElementById("status").textContent = "error: " + e.message;
  document.getElementById("app").dataset.state = "error";
});
</script></body></html>`;
}

function renderParityPage(request: Record<string, number | undefined>): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>DiGIT kernel parity</title></head>
<body><h1>WebGPU kernel parity and a fixed-seed batch</h1><pre id="result" data-state="running">running…</pre>
<script type="module">
import { runParityPage } from "/web/digit.js";
runParityPage(document.getElementById("result"), ${JSON.stringify(request)});
</script></body></html>`;
}

/** Adds the /web routes to the preview app. */
export function mountWebRoutes(app: Hono, options: WebRoutesOptions): void {
  const model = options.model instanceof DigitPreview ? options.model : null;
  const bundle = options.bundle ?? defaultBundle;
  const encoded = new Map<PartName, Promise<Uint8Array<ArrayBuffer>>>();
  const modules = (m: DigitPreview): Record<PartName, Module> => m.parts;

  function weightsOf(part: PartName): Promise<Uint8Array<ArrayBuffer>> {
    let p = encoded.get(part);
    if (!p) {
      // encodeSafetensors allocates a fresh (non-shared) buffer.
      p = hostStateDict(modules(model!)[part]).then((sd) =>
        encodeSafetensors(sd, { part }) as Uint8Array<ArrayBuffer>
      );
      encoded.set(part, p);
    }
    return p;
  }

  app.get("/web", (c) =>
    c.html(renderWebPage({
      model: model?.name ?? null,
      classes: model?.classes ?? null,
      maxCount: options.maxCount ?? 16,
      maxSteps: options.maxSteps ?? 64,
    })));

  app.get("/web/parity", (c) => {
    const q = (k: string, d: number | undefined) => {
      const v = c.req.query(k);
      const n = v === undefined || v === "" ? d : Number(v);
      return n === undefined || Number.isFinite(n) ? n : d;
    };
    return c.html(renderParityPage({
      count: q("count", 2),
      seed: q("seed", 0),
      classId: q("classId", undefined),
      topK: q("topK", 200),
      temperature: q("temperature", 1),
      steps: q("steps", 8),
    }));
  });

  app.get("/web/digit.js", async (c) =>
    c.body(await bundle(), 200, {
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": "no-cache",
    }));

  app.get("/web/manifest.json", async (c) => {
    if (!model) {
      return c.json({
        error: "no DiGIT model is loaded on this server, so there are no weights to send",
      }, 503);
    }
    const parts = model.parts;
    const entry = async (part: PartName) => ({
      url: `/web/weights/${part}.safetensors`,
      bytes: (await weightsOf(part)).byteLength,
    });
    const manifest: WebManifest = {
      name: model.name,
      classes: model.classes ?? null,
      parts: {
        stage1: { config: parts.stage1.cfg, ...await entry("stage1") },
        stage2: { config: parts.stage2.cfg, ...await entry("stage2") },
        vqgan: { config: parts.vqgan.cfg, ...await entry("vqgan") },
      },
    };
    return c.json(manifest, 200, { "cache-control": "no-cache" });
  });

  app.get("/web/weights/:file", async (c) => {
    const m = /^(stage1|stage2|vqgan)\.safetensors$/.exec(c.req.param("file"));
    if (!m || !(PART_NAMES as readonly string[]).includes(m[1])) {
      return c.json({ error: "expected stage1, stage2 or vqgan .safetensors" }, 404);
    }
    if (!model) return c.json({ error: "no DiGIT model is loaded on this server" }, 503);
    const bytes = await weightsOf(m[1] as PartName);
    return c.body(bytes, 200, {
      "content-type": "application/octet-stream",
      "content-length": String(bytes.byteLength),
      "cache-control": "no-cache",
    });
  });
}
