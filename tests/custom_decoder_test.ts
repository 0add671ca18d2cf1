/**
 * A third-party decoder (examples/custom-decoder) replaces the VQGAN in `DigitPipeline`, the
 * `sample` step (`deno task sample --plugin ...`) and the preview model behind `serve`, with no
 * change to plugins/pipeline: its checkpoint says `kind: patch-decoder`, the plugin registers
 * a decoder of that name, and the composer builds it through the registry. The images must be
 * the decoder's own patches laid out by the sampled codes.
 */

import { expect, it } from "./lib/test.ts";
import { main } from "../cli/main.ts";
import { DigitPipeline, memoryLogger, Registry, Rng } from "../mod.ts";
import { cpuBackend } from "../core/device.ts";
import { saveCheckpoint } from "../core/io/checkpoint.ts";
import { readImage } from "../core/image/codec.ts";
import { decodePng } from "../core/image/png.ts";
import { hostStateDict, type Module } from "../core/nn/module.ts";
import builtins from "../plugins/mod.ts";
import { readTokenGrids } from "../plugins/pipeline/tokens.ts";
import { stage1Meta } from "../plugins/stage1/load.ts";
import { Stage1GPT } from "../plugins/stage1/model.ts";
import { stage2Meta } from "../plugins/stage2/load.ts";
import { Stage2Model } from "../plugins/stage2/model.ts";
import patchPlugin, {
  fitPatchDecoder,
  loadPatchDecoder,
  type PatchDecoder,
  savePatchDecoder,
} from "../examples/custom-decoder/plugin.ts";

const PLUGIN = new URL("../examples/custom-decoder/plugin.ts", import.meta.url).pathname;
const CODES = 12, GRID = 4, PATCH = 4, SIDE = GRID * PATCH;
const TINY = { layers: 1, dim: 16, heads: 2, ffnDim: 32, dropout: 0 };

async function save(model: Module, dir: string, meta: unknown): Promise<void> {
  await Deno.mkdir(`${dir}/checkpoints`, { recursive: true });
  await saveCheckpoint(`${dir}/checkpoints/last`, await hostStateDict(model), meta);
  model.dispose();
}

/** `<root>/run/{stage1,stage2,decoder}`: our two stages and a patch decoder fitted on noise. */
async function writeRun(root: string): Promise<PatchDecoder> {
  const s1 = { ...TINY, clusters: 6, classes: 3, length: GRID * GRID };
  const s2 = {
    ...TINY,
    variant: "ar" as const,
    clusters: 6,
    codebookSize: CODES,
    prefixLength: GRID * GRID,
    length: GRID * GRID,
  };
  await save(new Stage1GPT(s1, new Rng(1)), `${root}/run/stage1`, stage1Meta(s1));
  await save(new Stage2Model(s2, new Rng(2)), `${root}/run/stage2`, stage2Meta(s2));
  const n = 8, rand = new Rng(3);
  const images = {
    data: Uint8Array.from({ length: n * SIDE * SIDE * 3 }, () => rand.int(256)),
    count: n,
    height: SIDE,
    width: SIDE,
  };
  const tokens = Int32Array.from({ length: n * GRID * GRID }, (_, i) => i % CODES);
  const decoder = fitPatchDecoder(images, { tokens, count: n, height: GRID, width: GRID }, CODES);
  await savePatchDecoder(decoder, `${root}/run/decoder`);
  return decoder;
}

/** Every PATCH x PATCH cell of an image is one of the decoder's patches. */
function madeOfPatches(image: Uint8Array, decoder: PatchDecoder): boolean {
  const size = PATCH * PATCH * 3;
  const known = new Set<string>();
  for (let c = 0; c < CODES; c++) {
    known.add(decoder.patches.subarray(c * size, (c + 1) * size).join(","));
  }
  for (let cell = 0; cell < GRID * GRID; cell++) {
    const y0 = Math.floor(cell / GRID) * PATCH, x0 = (cell % GRID) * PATCH;
    const rows: number[] = [];
    for (let y = 0; y < PATCH; y++) {
      const at = ((y0 + y) * SIDE + x0) * 3;
      rows.push(...image.subarray(at, at + PATCH * 3));
    }
    if (!known.has(rows.join(","))) return false;
  }
  return true;
}

it("custom decoder: the checkpoint round-trips and decodes codes to its patches", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-patch-" });
  try {
    const decoder = await writeRun(root);
    const loaded = await loadPatchDecoder(`${root}/run/decoder/checkpoints/last.json`);
    expect(loaded.config).toEqual({ codebookSize: CODES, gridSize: GRID, patch: PATCH });
    expect(loaded.patches).toEqual(decoder.patches);
    const grid = {
      tokens: new Int32Array(GRID * GRID).fill(5),
      count: 1,
      height: GRID,
      width: GRID,
    };
    const { data } = await loaded.decode(grid);
    const size = PATCH * PATCH * 3;
    expect(Array.from(data.subarray(0, PATCH * 3)))
      .toEqual(Array.from(decoder.patches.subarray(5 * size, 5 * size + PATCH * 3)));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

it("custom decoder: DigitPipeline builds it by its kind and generates through it", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-patch-" });
  try {
    const decoder = await writeRun(root);
    const given = {
      stage1: `${root}/run/stage1`,
      stage2: `${root}/run/stage2`,
      vqgan: `${root}/run/decoder`,
      device: "cpu" as const,
    };
    // Without the plugin nothing builds the kind, and the error says so.
    await expect(DigitPipeline.load(given)).rejects.toThrow(
      /kind 'patch-decoder', which no loaded plugin builds/,
    );
    const pipe = await DigitPipeline.load({ ...given, plugins: [patchPlugin] });
    try {
      expect(pipe.sources.vqgan.kind).toBe("patch-decoder");
      expect(pipe.imageSize).toBe(SIDE);
      const out = await pipe.generate({ classes: 1, count: 3, seed: 2, topK: 0 });
      expect(out.images.data).toEqual((await decoder.decode(out.codes)).data);
    } finally {
      pipe.dispose();
    }
    // dir= finds the decoder by its kind, next to the stages.
    const found = await DigitPipeline.load({ dir: `${root}/run`, plugins: [patchPlugin] });
    expect(found.sources.vqgan).toEqual({
      path: `${root}/run/decoder/checkpoints/last`,
      kind: "patch-decoder",
    });
    found.dispose();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

it("custom decoder: `deno task sample --plugin` writes the decoder's images", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-patch-" });
  try {
    const decoder = await writeRun(root);
    let err = "";
    const args = ["sample", "--outputs", `${root}/out`, "--device", "cpu"];
    const sets = ["--set", `dir=${root}/run`, "--set", "count=3", "--set", "top_k=0"];
    const code = await main([...args, "--plugin", PLUGIN, ...sets], {
      stdout: () => {},
      stderr: (t) => (err += t),
      tty: false,
    });
    expect({ code, err }).toMatchObject({ code: 0 });
    // The parts given one by one (--stage1/--stage2/--vqgan) load the same decoder.
    const given = await main([
      ...args.slice(0, 2),
      `${root}/given`,
      "--plugin",
      PLUGIN,
      "--stage1",
      `${root}/run/stage1`,
      "--stage2",
      `${root}/run/stage2/checkpoints/last`,
      "--vqgan",
      `${root}/run/decoder`,
      "--set",
      "count=2",
    ], { stdout: () => {}, stderr: (t) => (err += t), tty: false });
    expect({ given, err }).toMatchObject({ given: 0 });
    const sourcesGiven = JSON.parse(await Deno.readTextFile(`${root}/given/sample/sources.json`));
    expect(sourcesGiven.vqgan).toBe(`${root}/run/decoder/checkpoints/last`);
    const step = `${root}/out/sample`;
    const sources = JSON.parse(await Deno.readTextFile(`${step}/sources.json`));
    expect(sources.vqgan).toBe(`${root}/run/decoder/checkpoints/last`);
    const { grid, ids } = await readTokenGrids(`${step}/vq_tokens.codecs`);
    expect(ids.length).toBe(3);
    const expected = await decoder.decode(grid);
    const per = SIDE * SIDE * 3;
    for (const [i, id] of ids.entries()) {
      const png = await readImage(`${step}/results/${id}.png`);
      expect(png.data).toEqual(expected.data.subarray(i * per, (i + 1) * per));
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

it("custom decoder: its task file is valid (run --dry-run)", async () => {
  let out = "";
  const task = new URL("../examples/custom-decoder/task.yaml", import.meta.url).pathname;
  const code = await main(["run", task, "--dry-run"], {
    stdout: (t) => (out += t),
    stderr: (t) => (out += t),
    tty: false,
  });
  expect({ code, out }).toMatchObject({ code: 0 });
  expect(out).toMatch(/fit \(fit-patch-decoder\)/);
});

it("custom decoder: the preview model behind `serve` generates through it", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-patch-" });
  try {
    const decoder = await writeRun(root);
    const registry = new Registry();
    for (const p of builtins) await registry.use(p);
    await registry.use(patchPlugin);
    const log = memoryLogger();
    const ctx = {
      registry,
      device: "cpu" as const,
      backend: cpuBackend(),
      log,
      outputDir: root,
      signal: new AbortController().signal,
    };
    const model = await registry.create("previews", "digit", { dir: `${root}/run` }, ctx);
    const request = { classId: 2, seed: 1, topK: 0, temperature: 1, steps: 2, count: 2 };
    const images = await model.generate(request, () => {});
    expect(images.length).toBe(2);
    for (const { png } of images) {
      const image = decodePng(png);
      expect([image.width, image.height]).toEqual([SIDE, SIDE]);
      expect(madeOfPatches(image.data, decoder)).toBe(true);
    }
    expect(log.lines.join("\n")).toContain(`VQGAN ${root}/run/decoder/checkpoints/last`);
    (model as { dispose?: () => void }).dispose?.();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
