/// <reference lib="dom" />
/**
 * The page at GET /web (markup in server/web.ts): generate in this browser on the visitor's
 * WebGPU adapter (or the page's CPU backend when WebGPU is missing or chosen), or on the
 * server through POST /api/generate. Also the parity page at GET /web/parity.
 *
 * Weights are downloaded once per page as safetensors, with one progress bar over the
 * three parts; each backend builds its own copy of the networks the first time it is used.
 * The root element's `data-state` (idle, loading, running, done, error) is what tests wait on.
 */

import type { Backend } from "../core/backend.ts";
import { CpuBackend } from "../core/backends/cpu/mod.ts";
import { createWebGPUBackend, probeWebGPU } from "../core/backends/webgpu/mod.ts";
import type { StateDict } from "../core/io/host_tensor.ts";
import { runParity } from "./parity.ts";
import {
  buildParts,
  generate,
  PART_NAMES,
  type PartName,
  type WebGenerateRequest,
  type WebManifest,
  type WebParts,
} from "./pipeline.ts";
import { readSafetensorsBytes } from "./safetensors.ts";

export type PageDevice = "webgpu" | "cpu";

/** Downloads the three parts' weights; `onBytes` sees the running total. */
export async function downloadWeights(
  manifest: WebManifest,
  onBytes: (done: number, total: number) => void,
): Promise<Record<PartName, StateDict>> {
  const total = PART_NAMES.reduce((s, p) => s + manifest.parts[p].bytes, 0);
  let done = 0;
  onBytes(0, total);
  const out = {} as Record<PartName, StateDict>;
  for (const part of PART_NAMES) {
    const { url, bytes: expected } = manifest.parts[part];
    const res = await fetch(url);
    if (!res.ok || res.body === null) throw new Error(`${url}: HTTP ${res.status}`);
    const buf = new Uint8Array(expected);
    let at = 0;
    const reader = res.body.getReader();
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      if (at + value.byteLength > expected) {
        await reader.cancel();
        throw new Error(`${url}: more than the ${expected} bytes the manifest announced`);
      }
      buf.set(value, at);
      at += value.byteLength;
      done += value.byteLength;
      onBytes(done, total);
    }
    if (at !== expected) {
      throw new Error(`${url}: got ${at} bytes, the manifest announced ${expected}`);
    }
    out[part] = readSafetensorsBytes(buf, url).tensors;
  }
  return out;
}

export interface AdapterInfo {
  available: boolean;
  isFallback: boolean;
  description: string;
}

/** The backend for a device choice; WebGPU accepts software adapters (the visitor chose). */
async function backendFor(device: PageDevice): Promise<Backend> {
  return device === "webgpu"
    ? await createWebGPUBackend({ allowFallbackAdapter: true })
    : new CpuBackend();
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

/** RGB (HWC) pixels to a canvas, scaled up without smoothing so small images stay legible. */
function drawImage(
  rgb: Uint8Array,
  width: number,
  height: number,
  title: string,
): HTMLCanvasElement {
  const canvas = el("canvas", { width, height, title });
  canvas.className = "sample";
  const ctx = canvas.getContext("2d")!;
  const img = ctx.createImageData(width, height);
  for (let i = 0, j = 0; i < width * height; i++, j += 3) {
    img.data[i * 4] = rgb[j];
    img.data[i * 4 + 1] = rgb[j + 1];
    img.data[i * 4 + 2] = rgb[j + 2];
    img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function readRequest(
  form: HTMLFormElement,
): WebGenerateRequest & { where: string; device: PageDevice } {
  const f = new FormData(form);
  const num = (name: string) => Number(f.get(name));
  const cls = String(f.get("classId") ?? "");
  return {
    where: String(f.get("where")),
    device: String(f.get("device")) as PageDevice,
    count: num("count"),
    seed: num("seed"),
    classId: cls === "" ? undefined : Number(cls),
    topK: num("topK"),
    temperature: num("temperature"),
    steps: num("steps"),
  };
}

/** Server-side generation over the existing event-stream API; images arrive as URLs. */
async function generateOnServer(
  request: WebGenerateRequest,
  onEvent: (event: string, data: Record<string, unknown>) => void,
): Promise<void> {
  const res = await fetch("/api/generate", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    // Only the fields the server's schema knows (it refuses unknown keys).
    body: JSON.stringify({
      classId: request.classId,
      seed: request.seed,
      topK: request.topK,
      temperature: request.temperature,
      steps: request.steps,
      count: request.count,
    }),
  });
  if (!res.ok || res.body === null) {
    const body = await res.json().catch(() => ({}));
    throw new Error(
      `server: ${body.error ?? `HTTP ${res.status}`}${
        body.problems ? ` (${body.problems.join("; ")})` : ""
      }`,
    );
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? "message";
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? "{}");
      if (event === "error") throw new Error(`server: ${data.message}`);
      onEvent(event, data);
    }
  }
}

/** Wires the page's controls (markup from server/web.ts) inside `root`. */
export async function mountPage(root: HTMLElement): Promise<void> {
  const $ = <T extends HTMLElement>(sel: string) => root.querySelector(sel) as T;
  const form = $<HTMLFormElement>("#controls");
  const go = $<HTMLButtonElement>("#go");
  const status = $<HTMLElement>("#status");
  const stageBar = $<HTMLProgressElement>("#stage-progress");
  const downloadBar = $<HTMLProgressElement>("#download");
  const downloadText = $<HTMLElement>("#download-text");
  const results = $<HTMLElement>("#results");
  const timing = $<HTMLElement>("#timing");
  const adapterLine = $<HTMLElement>("#adapter");
  const deviceSelect = $<HTMLSelectElement>("#device");
  const setState = (s: string) => (root.dataset.state = s);

  const probe: AdapterInfo = await probeWebGPU();
  root.dataset.webgpu = String(probe.available);
  if (probe.available) {
    adapterLine.textContent = `WebGPU adapter: ${probe.description}` +
      (probe.isFallback ? " — a software (fallback) adapter, slower than a GPU" : "");
  } else {
    adapterLine.textContent =
      "WebGPU is not available in this browser: generating on the CPU path in this page";
    const opt = deviceSelect.querySelector<HTMLOptionElement>('option[value="webgpu"]');
    if (opt) opt.disabled = true;
    deviceSelect.value = "cpu";
  }

  let manifest: WebManifest | null = null;
  let weights: Record<PartName, StateDict> | null = null;
  const built = new Map<PageDevice, WebParts>();

  async function manifestOf(): Promise<WebManifest> {
    const m: WebManifest = manifest ?? await fetch("/web/manifest.json").then(async (r) => {
      const body = await r.json();
      if (!r.ok) throw new Error(body.error ?? `manifest: HTTP ${r.status}`);
      return body as WebManifest;
    });
    manifest = m;
    return m;
  }

  async function partsFor(device: PageDevice): Promise<WebParts> {
    const m = await manifestOf();
    if (weights === null) {
      setState("loading");
      weights = await downloadWeights(m, (done, total) => {
        downloadBar.max = total;
        downloadBar.value = done;
        downloadText.textContent = `weights: ${(done / 1048576).toFixed(2)} / ${
          (total / 1048576).toFixed(2)
        } MiB`;
      });
      setState("running");
    }
    let parts = built.get(device);
    if (!parts) {
      status.textContent = `building the networks on ${device}…`;
      parts = buildParts(m, weights, await backendFor(device));
      built.set(device, parts);
    }
    return parts;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const req = readRequest(form);
    go.disabled = true;
    results.replaceChildren();
    timing.textContent = "";
    setState("running");
    const started = performance.now();
    try {
      if (req.where === "server") {
        // Top-k past the vocabulary keeps every token; the server refuses it rather than guess.
        const vocab = (await manifestOf()).parts.stage1.config.clusters;
        await generateOnServer({ ...req, topK: Math.min(req.topK, vocab) }, (event, data) => {
          if (event === "progress") {
            stageBar.max = Number(data.total);
            stageBar.value = Number(data.done);
            status.textContent = `server ${data.stage}: ${data.done} / ${data.total}`;
          } else if (event === "queued") {
            status.textContent = `queued behind ${data.ahead} request(s)`;
          } else if (event === "image") {
            results.append(
              el("img", { src: String(data.url), alt: String(data.name), className: "sample" }),
            );
          }
        });
        timing.textContent = `${req.count} image(s) on the server in ${
          ((performance.now() - started) / 1000).toFixed(2)
        } s`;
      } else {
        const parts = await partsFor(req.device);
        const t0 = performance.now();
        const out = await generate(parts, req, {
          onProgress: (stage, done, total) => {
            stageBar.max = total;
            stageBar.value = done;
            status.textContent = `${stage}: ${done} / ${total}`;
          },
          onImage: (i, rgb, w, h) =>
            results.append(drawImage(rgb, w, h, `seed ${req.seed}, image ${i}`)),
        });
        const s = (ms: number) => (ms / 1000).toFixed(2);
        const total = performance.now() - t0;
        timing.dataset.ms = String(Math.round(total));
        timing.textContent =
          `${req.count} image(s) in ${s(total)} s on ${parts.backend.description} ` +
          `(stage 1 ${s(out.ms.stage1)} s, stage 2 ${s(out.ms.stage2)} s, decode ${
            s(out.ms.decode)
          } s)`;
      }
      status.textContent = `done: ${req.count} image(s)`;
      setState("done");
    } catch (e) {
      status.textContent = `error: ${(e as Error).message}`;
      setState("error");
    } finally {
      go.disabled = false;
    }
  });
  setState("idle");
}

/**
 * GET /web/parity: the kernel parity suite on this browser's WebGPU against the page's CPU
 * backend, then a fixed-seed batch from the served parts on both, tokens and pixels returned.
 * The result is written as JSON into #result (and logged), for tests/browser_webgpu_test.ts.
 */
export async function runParityPage(
  out: HTMLElement,
  request: WebGenerateRequest,
): Promise<void> {
  const log = (line: string) => {
    console.log(line);
    out.dataset.log = (out.dataset.log ?? "") + line + "\n";
  };
  const finish = (result: unknown) => {
    out.textContent = JSON.stringify(result);
    out.dataset.state = "done";
  };
  try {
    const probe = await probeWebGPU();
    if (!probe.available) return finish({ skipped: "no WebGPU adapter in this browser", probe });
    const gpu = await createWebGPUBackend({ allowFallbackAdapter: true });
    const cpu = new CpuBackend();
    const kernels = await runParity(gpu, cpu, (r) => log(`${r.ok ? "ok" : "FAIL"} ${r.name}`));
    const manifest = await fetch("/web/manifest.json").then((r) => r.json()) as WebManifest;
    const weights = await downloadWeights(manifest, () => {});
    const runs: Record<string, unknown> = {};
    for (const [name, backend] of [["webgpu", gpu], ["cpu", cpu]] as const) {
      const parts = buildParts(manifest, weights, backend);
      const t0 = performance.now();
      const r = await generate(parts, request);
      runs[name] = {
        ms: performance.now() - t0,
        semantic: Array.from(r.semantic.tokens),
        codes: Array.from(r.codes.tokens),
        pixels: Array.from(r.images.data),
        size: [r.images.count, r.images.height, r.images.width],
      };
      log(`generated on ${name} in ${Math.round(performance.now() - t0)} ms`);
      parts.stage1.dispose();
      parts.stage2.dispose();
      parts.vqgan.dispose();
    }
    finish({ probe, kernels, runs, gpuLive: gpu.liveStorages() });
  } catch (e) {
    finish({ error: (e as Error).stack ?? String(e) });
  }
}
