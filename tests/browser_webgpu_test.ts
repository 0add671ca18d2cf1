/**
 * The runtime in a web page, on Chromium's WebGPU (Dawn + Tint; SwiftShader on CI), held
 * to the Deno CPU path.
 *
 * 1. GET /web/parity runs the kernel parity suite (web/parity.ts: matmul, attention with a
 *    KV cache, softmax, layer/group norm, conv2d, resize) on the page's WebGPU backend
 *    against the page's pure-TS CPU backend, then generates a fixed-seed batch from the
 *    served random-weight parts on both. Here the same weights (the served safetensors)
 *    run through web/pipeline.ts on Deno's CPU backend: the semantic and VQ tokens must be
 *    identical, and the pixels within PIXEL_TOLERANCE. Both stage-2 variants (AR, MaskGIT).
 * 2. GET /web is used as a visitor would: weights download with a progress bar, images are
 *    drawn in the browser on WebGPU and on the page's CPU path, then made by the server.
 *
 * Skipped, with the reason printed, when chromium is missing or gives no WebGPU adapter.
 * Shapes are tiny: SwiftShader is CPU-hungry and CI machines are shared.
 */

import { expect, it } from "./lib/test.ts";
import { CpuBackend } from "../core/backends/cpu/mod.ts";
import { setDefaultBackend } from "../core/device.ts";
import { DigitPreview } from "../plugins/preview/model.ts";
import { startServer } from "../server/serve.ts";
import type { Stage2Variant } from "../plugins/stage2/model.ts";
import type { ParityResult } from "../web/parity.ts";
import {
  buildParts,
  disposeParts,
  generate,
  PART_NAMES,
  type PartName,
  type WebGenerateRequest,
  type WebManifest,
} from "../web/pipeline.ts";
import { readSafetensorsBytes } from "../web/safetensors.ts";
import { Browser, findChromium } from "../web/tools/chromium.ts";
import { randomParts } from "../web/tools/random_parts.ts";
import type { StateDict } from "../core/io/host_tensor.ts";

/**
 * Pixels: every uint8 channel value within 1 level of the CPU's, and at most 1% of them off
 * at all. The decoder's f32 sums run in another order on the GPU (about 1e-6 relative, see
 * the conv2d cases), which can move a value across a rounding boundary, never further.
 */
const PIXEL_TOLERANCE = { maxLevels: 1, maxFraction: 0.01 };

const chromium = findChromium();

/**
 * Whether this chromium gives a page a WebGPU adapter. Asked on a page from 127.0.0.1:
 * WebGPU exists only in secure contexts, which about:blank and data: URLs are not.
 */
async function probeBrowser(): Promise<{ ok: boolean; why: string }> {
  if (!chromium) return { ok: false, why: "chromium is not installed (apt-get install chromium)" };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response("<!doctype html><title>probe</title>", {
        headers: { "content-type": "text/html" },
      }),
  );
  const b = await Browser.launch(chromium);
  try {
    await b.navigate(`http://127.0.0.1:${server.addr.port}/`);
    await b.waitFor(`document.title === "probe"`, 30_000);
    const info = await b.evaluate<string | null>(`(async () => {
      const a = navigator.gpu && await navigator.gpu.requestAdapter();
      return a ? a.info.vendor + " " + a.info.architecture : null;
    })()`);
    return info ? { ok: true, why: info } : { ok: false, why: "chromium gives no WebGPU adapter" };
  } finally {
    await b.close();
    await server.shutdown();
  }
}

const probe = await probeBrowser();
if (!probe.ok) console.warn(`browser_webgpu_test: skipped: ${probe.why}`);

async function withServer<T>(
  variant: Stage2Variant,
  body: (base: string, model: DigitPreview) => Promise<T>,
): Promise<T> {
  setDefaultBackend(new CpuBackend());
  const model = new DigitPreview(randomParts("tiny", variant, variant === "ar" ? 11 : 12));
  const samples = await Deno.makeTempDir({ prefix: "digit-web-samples-" });
  const server = startServer({ samplesDir: samples, model, port: 0 });
  try {
    return await body(server.url.replace(/\/$/, ""), model);
  } finally {
    await server.shutdown();
    model.dispose();
    await Deno.remove(samples, { recursive: true });
  }
}

/** The Deno CPU reference: the served manifest and safetensors, through web/pipeline.ts. */
async function denoReference(base: string, request: WebGenerateRequest) {
  const manifest = await (await fetch(`${base}/web/manifest.json`)).json() as WebManifest;
  const weights = {} as Record<PartName, StateDict>;
  for (const part of PART_NAMES) {
    const bytes = new Uint8Array(
      await (await fetch(base + manifest.parts[part].url)).arrayBuffer(),
    );
    expect(bytes.byteLength, `${part}: size as announced`).toBe(manifest.parts[part].bytes);
    weights[part] = readSafetensorsBytes(bytes, part).tensors;
  }
  const parts = buildParts(manifest, weights, new CpuBackend());
  try {
    return await generate(parts, request);
  } finally {
    disposeParts(parts);
  }
}

interface PageRun {
  ms: number;
  semantic: number[];
  codes: number[];
  pixels: number[];
  size: [number, number, number];
}

function pixelReport(got: number[], want: Uint8Array): { maxLevels: number; fraction: number } {
  expect(got.length, "pixel count").toBe(want.length);
  let maxLevels = 0, off = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (d > 0) off++;
    maxLevels = Math.max(maxLevels, d);
  }
  return { maxLevels, fraction: off / want.length };
}

/** A former `t.step`, run inline in its test: its name prefixes a failure. */
async function step(name: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof Error) e.message = `${name}: ${e.message}`;
    throw e;
  }
}

it.skipIf(!probe.ok)(
  "browser: kernel parity and fixed-seed generation on Chromium's WebGPU match the Deno CPU path",
  async () => {
    const b = await Browser.launch(chromium!);
    try {
      for (const variant of ["ar", "nar"] as const) {
        await step(`stage 2 ${variant}`, async () => {
          await withServer(variant, async (base) => {
            const request: WebGenerateRequest = {
              count: 3,
              seed: 7,
              classId: 2,
              topK: 200,
              temperature: 1,
              steps: 4,
            };
            const qs = new URLSearchParams(Object.entries(request).map(([k, v]) => [k, String(v)]));
            await b.navigate(`${base}/web/parity?${qs}`);
            await b.waitFor(
              `document.getElementById("result")?.dataset.state === "done"`,
              300_000,
              "the parity page",
            );
            const r = JSON.parse(
              await b.evaluate<string>(`document.getElementById("result").textContent`),
            );
            expect(r.error, r.error).toBe(undefined);
            expect(r.skipped, r.skipped).toBe(undefined);
            expect(r.probe.available).toBe(true);

            // The kernel suite runs once; its result does not depend on the variant.
            if (variant === "ar") {
              const kernels = r.kernels as ParityResult[];
              console.log(`adapter: ${r.probe.description}`);
              for (const k of kernels) {
                console.log(
                  `  ${k.ok ? "ok  " : "FAIL"} ${k.name}: max |d| ${k.maxAbs.toExponential(1)}, ${
                    (k.worstRatio * 100).toFixed(1)
                  }% of tolerance`,
                );
              }
              const failed = kernels.filter((k) => !k.ok).map((k) => `${k.name}: ${k.detail}`);
              expect(failed, "kernels outside tolerance on Dawn").toEqual([]);
              expect(kernels.length, `only ${kernels.length} kernel cases ran`)
                .toBeGreaterThanOrEqual(30);
              for (
                const family of [
                  "matmul",
                  "attention KV cache",
                  "softmax",
                  "layer norm",
                  "group norm",
                  "conv2d",
                  "resize",
                ]
              ) {
                expect(kernels.some((k) => k.name.startsWith(family)), `no ${family} case`)
                  .toBeTruthy();
              }
            }

            const want = await denoReference(base, request);
            for (const device of ["webgpu", "cpu"]) {
              const run = r.runs[device] as PageRun;
              expect(run.semantic, `${device}: stage-1 tokens`).toEqual(
                Array.from(want.semantic.tokens),
              );
              expect(run.codes, `${device}: stage-2 tokens`).toEqual(Array.from(want.codes.tokens));
              expect(run.size).toEqual([
                want.images.count,
                want.images.height,
                want.images.width,
              ]);
              const px = pixelReport(run.pixels, want.images.data);
              console.log(
                `  ${variant} page ${device}: tokens identical; pixels max ${px.maxLevels} level(s) off, ` +
                  `${(px.fraction * 100).toFixed(2)}% differ (${Math.round(run.ms)} ms)`,
              );
              expect(px.maxLevels, `${device}: a pixel is ${px.maxLevels} levels off`)
                .toBeLessThanOrEqual(PIXEL_TOLERANCE.maxLevels);
              expect(px.fraction, `${device}: ${px.fraction} of pixels differ`).toBeLessThanOrEqual(
                PIXEL_TOLERANCE.maxFraction,
              );
            }
            // Everything the page allocated on the GPU was given back.
            expect(r.gpuLive, "GPU storages left alive in the page").toBe(0);
          });
        });
      }
    } finally {
      await b.close();
    }
  },
);

it.skipIf(!probe.ok)(
  "browser: the /web page downloads the weights, draws images from WebGPU and the CPU path, and asks the server",
  async () => {
    const b = await Browser.launch(chromium!);
    try {
      await withServer("ar", async (base, model) => {
        await b.navigate(`${base}/web`);
        await b.waitFor(
          `document.getElementById("app")?.dataset.state === "idle"`,
          60_000,
          "the page to start",
        );
        const adapter = await b.evaluate<string>(`document.getElementById("adapter").textContent`);
        expect(adapter).toMatch(/^WebGPU adapter: .*swiftshader/);
        expect(adapter).toMatch(/fallback/);
        expect(await b.evaluate<string>(`document.getElementById("model").textContent`)).toMatch(
          new RegExp(model.name.slice(0, 20).replace(/[()]/g, ".")),
        );

        const run = async (where: string, device: string, count: number) => {
          await b.evaluate(`(() => {
            const f = document.getElementById("controls");
            f.elements.where.value = ${JSON.stringify(where)};
            f.elements.device.value = ${JSON.stringify(device)};
            f.elements.count.value = "${count}";
            f.elements.seed.value = "5";
            f.elements.steps.value = "2";
            document.getElementById("go").click();
          })()`);
          await b.waitFor(
            `["done", "error"].includes(document.getElementById("app").dataset.state)`,
            240_000,
            `${where}/${device}`,
          );
          const state = await b.evaluate<string>(`document.getElementById("app").dataset.state`);
          const status = await b.evaluate<string>(`document.getElementById("status").textContent`);
          expect(state, status).toBe("done");
          expect(status).toBe(`done: ${count} image(s)`);
        };

        await run("browser", "webgpu", 2);
        const drawn = await b.evaluate<number[]>(
          `[...document.querySelectorAll("#results canvas")].map((c) => c.width)`,
        );
        expect(drawn).toEqual([16, 16]);
        // The download bar reached the total the manifest announced.
        const bar = await b.evaluate<[number, number]>(
          `[document.getElementById("download").value, document.getElementById("download").max]`,
        );
        const manifest = await (await fetch(`${base}/web/manifest.json`)).json() as WebManifest;
        expect(bar[1]).toBe(PART_NAMES.reduce((s, p) => s + manifest.parts[p].bytes, 0));
        expect(bar[0]).toBe(bar[1]);
        expect(await b.evaluate<string>(`document.getElementById("timing").textContent`)).toMatch(
          /2 image\(s\) in [0-9.]+ s on webgpu/,
        );

        await run("browser", "cpu", 2);
        expect(await b.evaluate<string>(`document.getElementById("timing").textContent`)).toMatch(
          /on cpu: pure TypeScript \(no FFI in a browser\)/,
        );

        await run("server", "webgpu", 2);
        await b.waitFor(
          `[...document.querySelectorAll("#results img")].filter((i) => i.complete && i.naturalWidth === 16).length === 2`,
          30_000,
          "the server's images",
        );

        // A browser without WebGPU (navigator.gpu hidden before the page's scripts run):
        // the page says so, offers only its CPU path, and still generates.
        await b.addInitScript(
          `Object.defineProperty(Navigator.prototype, "gpu", { get: () => undefined, configurable: true });`,
        );
        await b.navigate(`${base}/web`);
        await b.waitFor(
          `document.getElementById("app")?.dataset.state === "idle"`,
          60_000,
          "the page without WebGPU",
        );
        expect(await b.evaluate<string>(`document.getElementById("adapter").textContent`)).toMatch(
          /WebGPU is not available in this browser: generating on the CPU path/,
        );
        expect(
          await b.evaluate<[string, boolean]>(
            `[document.getElementById("device").value, document.querySelector('#device option[value="webgpu"]').disabled]`,
          ),
        ).toEqual(["cpu", true]);
        await run("browser", "cpu", 1);
        expect(await b.evaluate<number>(`document.querySelectorAll("#results canvas").length`))
          .toBe(1);
      });
    } finally {
      await b.close();
    }
  },
);
