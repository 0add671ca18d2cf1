/**
 * The browser bundle (`deno task build:web`): it builds, holds no Deno-only code and no
 * imports, and, loaded as a module, reads safetensors and generates exactly what the
 * source modules generate on the CPU.
 */

import { expect, it } from "./lib/test.ts";
import { CpuBackend } from "../core/backends/cpu/mod.ts";
import { setDefaultBackend } from "../core/device.ts";
import { encodeSafetensors, readSafetensors } from "../core/io/safetensors.ts";
import { hostStateDict } from "../core/nn/module.ts";
import { buildWebBundle, bundleImports, denoMentions } from "../web/build.ts";
import type * as Pipeline from "../web/pipeline.ts";
import { readSafetensorsBytes } from "../web/safetensors.ts";
import { randomParts } from "../web/tools/random_parts.ts";
import type { StateDict } from "../core/io/host_tensor.ts";

const dir = await Deno.makeTempDir({ prefix: "digit-bundle-test-" });
const built = await buildWebBundle(`${dir}/digit.js`);
const text = await Deno.readTextFile(built.path);

it("bundle: no Deno API, no imports, no Node shims in web/dist/digit.js", () => {
  console.log(`bundle: ${(built.bytes / 1024).toFixed(1)} KiB minified`);
  expect(denoMentions(text), "Deno-only code reached the bundle").toEqual([]);
  expect(bundleImports(text), "the bundle must be self-contained").toEqual([]);
  // The node: stand-ins (web/platform/node_unavailable.ts) must be tree-shaken away
  // entirely: if one survives, something in the page's code path calls a file reader.
  expect(text.includes("is not available in a browser"), "a node: stand-in is reachable")
    .toBeFalsy();
  // The FFI module was replaced, not merely left uncalled.
  expect(text.includes("no FFI in a browser")).toBeTruthy();
  expect(text.includes("libopenblas"), "core/native/openblas.ts reached the bundle").toBeFalsy();
  // Sanity bound: a bundle that pulled in everything (training, data, metrics) would be
  // several times larger than the ~220 KiB the runtime and three models take.
  expect(built.bytes, `bundle is ${built.bytes} bytes`).toBeLessThan(600 * 1024);
});

it("bundle: denoMentions and bundleImports see what they are meant to", () => {
  expect(denoMentions(`let a=1;Deno.openSync("x")`).length).toBe(1);
  expect(denoMentions(`const x = "Denominator.5"`).length).toBe(0);
  expect(bundleImports(`import{a as b}from"node:zlib";import"./x.js";const y=import("z")`)).toEqual(
    [
      "node:zlib",
      "./x.js",
      "z",
    ],
  );
  expect(bundleImports(`const important = 1; export{important as i}`)).toEqual([]);
});

it("bundle: readSafetensorsBytes gives what core/io's reader gives", async () => {
  setDefaultBackend(new CpuBackend());
  const parts = randomParts("tiny", "ar", 3);
  try {
    const sd = await hostStateDict(parts.vqgan);
    const bytes = encodeSafetensors(sd, { part: "vqgan" });
    const mine = readSafetensorsBytes(bytes, "vqgan");
    const theirs = await readSafetensors(bytes);
    expect(mine.metadata).toEqual(theirs.metadata);
    expect([...mine.tensors.keys()]).toEqual([...theirs.tensors.keys()]);
    for (const [k, t] of theirs.tensors) {
      expect(mine.tensors.get(k), k).toEqual(t);
    }
    expect(() => readSafetensorsBytes(bytes.subarray(0, bytes.length - 4), "cut")).toThrow(/cut/);
  } finally {
    parts.stage1.dispose();
    parts.stage2.dispose();
    parts.vqgan.dispose();
  }
});

// the bundle's WASM kernels keep their instances for the process (node:test's `it` has no
// resource sanitizer)
it("bundle: loaded as a module, it generates what the source modules generate (CPU)", async () => {
  const web = await import(new URL(`file://${built.path}`).href) as typeof Pipeline & {
    CpuBackend: typeof CpuBackend;
    readSafetensorsBytes: typeof readSafetensorsBytes;
  };
  setDefaultBackend(new CpuBackend());
  const parts = randomParts("tiny", "nar", 4);
  try {
    const manifest = {
      parts: {
        stage1: { config: parts.stage1.cfg, url: "", bytes: 0 },
        stage2: { config: parts.stage2.cfg, url: "", bytes: 0 },
        vqgan: { config: parts.vqgan.cfg, url: "", bytes: 0 },
      },
    };
    const weights = {} as Record<Pipeline.PartName, StateDict>;
    const fromBundle = {} as Record<Pipeline.PartName, StateDict>;
    for (const p of ["stage1", "stage2", "vqgan"] as const) {
      const bytes = encodeSafetensors(await hostStateDict(parts[p]));
      weights[p] = readSafetensorsBytes(bytes).tensors;
      fromBundle[p] = web.readSafetensorsBytes(bytes).tensors;
    }
    const request = { count: 2, seed: 9, classId: 1, topK: 5, temperature: 1, steps: 3 };
    const { buildParts, generate, disposeParts } = await import("../web/pipeline.ts");
    const a = buildParts(manifest, weights, new CpuBackend());
    const want = await generate(a, request);
    disposeParts(a);
    const b = web.buildParts(manifest, fromBundle, new web.CpuBackend());
    const got = await web.generate(b, request);
    web.disposeParts(b);
    expect(got.semantic).toEqual(want.semantic);
    expect(got.codes).toEqual(want.codes);
    // Source modules may use OpenBLAS here, the bundle never does: sums in another
    // order may move a uint8 value by one level, no more.
    let worst = 0;
    for (let i = 0; i < want.images.data.length; i++) {
      worst = Math.max(worst, Math.abs(got.images.data[i] - want.images.data[i]));
    }
    expect(worst, `pixels differ by ${worst} levels`).toBeLessThanOrEqual(1);
  } finally {
    parts.stage1.dispose();
    parts.stage2.dispose();
    parts.vqgan.dispose();
  }
});

globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

it("web routes: manifest and weights of the served model; 503 without one; 404 for other names", async () => {
  const { createApp } = await import("../server/app.ts");
  const { mountWebRoutes } = await import("../server/web.ts");
  const { DigitPreview } = await import("../plugins/preview/model.ts");
  setDefaultBackend(new CpuBackend());
  const model = new DigitPreview(randomParts("tiny", "ar", 5));
  const bundle = () => Promise.resolve(new TextEncoder().encode("export {};"));
  try {
    const app = createApp({ samplesDir: dir, model });
    mountWebRoutes(app, { model, bundle });
    const manifest = await (await app.request("/web/manifest.json")).json() as Pipeline.WebManifest;
    expect(manifest.name).toBe(model.name);
    expect(manifest.classes).toBe(4);
    for (const p of ["stage1", "stage2", "vqgan"] as const) {
      const res = await app.request(manifest.parts[p].url);
      expect(res.status).toBe(200);
      const bytes = new Uint8Array(await res.arrayBuffer());
      expect(bytes.byteLength).toBe(manifest.parts[p].bytes);
      // The weights are the served networks' own, key for key.
      const sd = readSafetensorsBytes(bytes, p).tensors;
      const own = await hostStateDict(model.parts[p]);
      expect([...sd.keys()]).toEqual([...own.keys()]);
      for (const [k, t] of own) expect(sd.get(k)!.data, `${p}.${k}`).toEqual(t.data);
    }
    expect(manifest.parts.stage2.config).toEqual(model.parts.stage2.cfg);
    expect((await app.request("/web/weights/stage3.safetensors")).status).toBe(404);
    expect((await app.request("/web/weights/..%2Fx")).status).toBe(404);
    const page = await (await app.request("/web")).text();
    expect(page).toMatch(/import \{ mountPage \} from "\/web\/digit.js"/);
    expect(await (await app.request("/web/digit.js")).text()).toBe("export {};");

    const bare = createApp({ samplesDir: dir });
    mountWebRoutes(bare, { bundle });
    expect((await bare.request("/web/manifest.json")).status).toBe(503);
    expect((await bare.request("/web/weights/stage1.safetensors")).status).toBe(503);
    expect(await (await bare.request("/web")).text()).toMatch(/no model loaded/);
  } finally {
    model.dispose();
  }
});
