/**
 * The `digit` preview model end to end: a tiny pipeline is trained inside the test by the
 * real step types (train-vqgan, encode-vqgan, train-stage1, train-stage2, a few updates
 * each), the preview plugin finds it by its markers, and the HTTP server generates PNGs
 * with it. The reference for the pixels is the same chain run by hand through the
 * stage-1 sampler and helper A2's batch pipeline (runPipeline), which writes its own PNGs.
 */

import { expect, it } from "./lib/test.ts";
import { rejected } from "./lib/errors.ts";
import { main } from "../cli/main.ts";
import { cpuBackend, setDefaultBackend } from "../core/device.ts";
import { decodePng } from "../core/image/png.ts";
import { readImage } from "../core/image/codec.ts";
import { writeTokenFile } from "../core/io/tokens.ts";
import { Rng } from "../core/random.ts";
import { memoryLogger, type PreviewProgress, Registry, type RunContext } from "../core/registry.ts";
import { planTask, runTask } from "../core/tasks.ts";
import { runPipeline } from "../plugins/pipeline/pipeline.ts";
import { findParts } from "../plugins/pipeline/parts.ts";
import { NoTrainedModelError } from "../plugins/preview/load.ts";
import type { DigitPreview } from "../plugins/preview/model.ts";
import preview from "../plugins/preview/plugin.ts";
import stage1 from "../plugins/stage1/plugin.ts";
import { sampleStage1 } from "../plugins/stage1/sampler.ts";
import stage2 from "../plugins/stage2/plugin.ts";
import vqgan from "../plugins/vqgan/plugin.ts";
import { startServer } from "../server/serve.ts";

const IMAGES = 24;
const CLUSTERS = 8;
const CLASSES = 3;
/** Recorded by the token file, kept by stage 1's checkpoint, listed by the page. */
const CLASS_NAMES = ["disc", "ring", "bar"];
const SIDE = 16; // 16 px images, two halvings: a 4x4 grid of VQ codes
const CODES = 32;
/** A VQGAN small enough to train in a blink, spelled out so preset changes do not move it. */
const TINY_VQGAN = {
  preset: "cpu16",
  ch: 8,
  ch_mult: [1, 2, 2],
  num_res_blocks: 1,
  z_channels: 8,
  n_embed: CODES,
  norm_groups: 4,
  resolution: SIDE,
};

async function registry(): Promise<Registry> {
  const r = new Registry();
  for (const p of [stage1, stage2, vqgan, preview]) await r.use(p);
  return r;
}

function context(
  r: Registry,
  outputDir: string,
): RunContext & { log: ReturnType<typeof memoryLogger> } {
  return {
    registry: r,
    device: "cpu",
    backend: cpuBackend(),
    log: memoryLogger(),
    outputDir,
    signal: new AbortController().signal,
  };
}

/** Trains the tiny pipeline under `out` with the real step types; returns the registry. */
async function trainTinyPipeline(out: string): Promise<Registry> {
  // Semantic tokens stand in for the tokenizer's: random 4x4 grids with class labels.
  await Deno.mkdir(out, { recursive: true });
  const gen = new Rng(7);
  const tokens = Int32Array.from(
    { length: IMAGES * 16 },
    () => Math.floor(gen.uniform() * CLUSTERS),
  );
  const labels = Int32Array.from({ length: IMAGES }, (_, i) => i % CLASSES);
  await writeTokenFile(`${out}/semantic.tokens`, {
    tokens,
    count: IMAGES,
    height: 4,
    width: 4,
    vocab: CLUSTERS,
    labels,
    classNames: CLASS_NAMES,
  });
  const shapes = { kind: "shapes", size: SIDE, length: IMAGES, seed: 0 };
  const r = await registry();
  const fast = { max_update: 2, lr: 1e-3 };
  const plan = planTask(
    {
      name: "tiny",
      steps: [
        {
          name: "vqgan",
          type: "train-vqgan",
          params: {
            model: TINY_VQGAN,
            dataset: { batch_size: 8, source: shapes, train_images: IMAGES, valid_images: 0 },
            optimization: fast,
            preview: { count: 2 },
            output: { dir: "${outputs}/vqgan" },
          },
        },
        {
          name: "encode",
          type: "encode-vqgan",
          // resolution and norm_groups spelled out: the vqgan plugin's loader lets absent
          // options (undefined) override the values recorded in the checkpoint.
          params: {
            vqgan: {
              checkpoint: "${outputs}/vqgan/checkpoints/last",
              resolution: SIDE,
              norm_groups: 4,
            },
            dataset: shapes,
          },
        },
        {
          name: "stage1",
          type: "train-stage1",
          params: {
            task: { tokens: `${out}/semantic.tokens`, target_vocab_size: CLUSTERS },
            dataset: { batch_size: 8 },
            optimization: fast,
            model: { preset: "tiny", dropout: 0, class_conditional: true, num_classes: CLASSES },
          },
        },
        {
          name: "stage2",
          type: "train-stage2",
          params: {
            task: {
              tokens: `${out}/semantic.tokens`,
              vq_tokens: "${steps.encode.outputs.tokens}",
              source_vocab_size: CLUSTERS,
              target_vocab_size: CODES,
            },
            dataset: { batch_size: 8 },
            optimization: fast,
            model: { _name: "st2vtlm_nar", preset: "tiny", dropout: 0 },
            output: { dir: "${outputs}/stage2" },
          },
        },
      ],
    },
    r,
    { file: "preview_test", outputDir: out, device: "cpu" },
  );
  await runTask(plan, { registry: r, log: memoryLogger(), signal: new AbortController().signal });
  return r;
}

async function postJson(url: string, body: unknown): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** The named events of a text/event-stream body, in order. */
async function readEvents(
  response: Response,
): Promise<{ event: string; data: Record<string, unknown> }[]> {
  const text = await response.text();
  return text.split("\n\n").filter((b) => b.trim() !== "").map((block) => {
    const event = /^event: (.*)$/m.exec(block)![1];
    const data = JSON.parse(/^data: (.*)$/m.exec(block)![1]);
    return { event, data };
  });
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

it("digit preview: trained tiny pipeline -> server -> PNGs in the gallery", async () => {
  setDefaultBackend(cpuBackend());
  const root = await Deno.makeTempDir({ prefix: "digit-preview-" });
  try {
    const out = `${root}/experiment`;
    const r = await trainTinyPipeline(out);

    await step("the parts are found by their markers", async () => {
      const found = await findParts(out);
      expect(found.stage1.map((f) => f.dir)).toEqual([`${out}/stage1`]);
      expect(found.stage2.map((f) => f.dir)).toEqual([`${out}/stage2`]);
      expect(found.vqgan.map((f) => f.dir)).toEqual([`${out}/vqgan`]);
    });

    const ctx = context(r, root);
    const model = await r.create("previews", "digit", { dir: out }, ctx) as DigitPreview;
    try {
      expect(model.classes).toBe(CLASSES);
      expect(model.classNames, "the stage-1 checkpoint's class names").toEqual(CLASS_NAMES);
      expect(model.name).toMatch(/stage 2 NAR, 16 px/);

      await step("generate matches stage 1 + runPipeline run by hand", async () => {
        const progress: PreviewProgress[] = [];
        const request = { classId: 2, seed: 5, topK: 4, temperature: 1, steps: 3, count: 3 };
        const images = await model.generate(request, (p) => progress.push(p));
        expect(images.map((i) => i.name)).toEqual([
          "digit-c2-s5-0",
          "digit-c2-s5-1",
          "digit-c2-s5-2",
        ]);

        // Per-stage progress, in pipeline order, each stage ending at its total.
        const stages = [...new Set(progress.map((p) => p.stage))];
        expect(stages).toEqual(["stage 1", "stage 2 (MaskGIT)", "decode"]);
        const last = (s: string) => progress.filter((p) => p.stage === s).at(-1)!;
        expect(last("stage 1")).toEqual({ stage: "stage 1", done: 16, total: 16 });
        expect(last("stage 2 (MaskGIT)")).toEqual({
          stage: "stage 2 (MaskGIT)",
          done: 3,
          total: 3,
        });
        expect(last("decode")).toEqual({ stage: "decode", done: 3, total: 3 });

        // Reference: the same seeds through the stage-1 sampler and A2's batch pipeline.
        const semantic = await sampleStage1(model.parts.stage1, {
          count: 3,
          seed: 5,
          topK: 4,
          temperature: 1,
          classes: new Int32Array(3).fill(2),
        });
        const refDir = `${root}/reference`;
        await runPipeline({
          stage2: model.parts.stage2,
          decoder: model.parts.vqgan,
          semantic,
          outDir: refDir,
          seed: 5,
          batchSize: 3,
          sampling: { steps: 3, temperature: 1 },
        });
        for (let i = 0; i < 3; i++) {
          const ours = decodePng(images[i].png);
          const ref = await readImage(`${refDir}/results/${i}.png`);
          expect(ours.width).toBe(SIDE);
          expect(ours.height).toBe(SIDE);
          expect(ours.data, `image ${i} differs from the hand-run pipeline`).toEqual(ref.data);
        }
      });

      await step(
        "an abort stops generation mid-stage; the model still works afterwards",
        async () => {
          const controller = new AbortController();
          const seen: string[] = [];
          await expect(model.generate(
            { seed: 1, topK: 0, temperature: 1, steps: 2, count: 1, classId: 0 },
            (p) => {
              seen.push(p.stage!);
              if (p.stage === "stage 1" && p.done === 3) {
                controller.abort(new Error("user went away"));
              }
            },
            controller.signal,
          )).rejects.toThrow(/user went away/);
          expect(seen.includes("stage 2 (MaskGIT)"), "stage 2 must not start after the abort")
            .toBeFalsy();
          const again = await model.generate({
            seed: 1,
            topK: 0,
            temperature: 1,
            steps: 2,
            count: 1,
            classId: 0,
          }, () => {});
          expect(again.length).toBe(1);
        },
      );

      await step("the server generates PNGs that appear in /api/samples", async () => {
        const samples = `${root}/samples`;
        const server = startServer({ samplesDir: samples, model, port: 0 });
        try {
          const health = await (await fetch(`${server.url}healthz`)).json();
          expect(health.model).toBe(model.name);
          // The samples folder has no labels.tsv: the names come from the checkpoint.
          const page = await (await fetch(server.url)).text();
          CLASS_NAMES.forEach((name, id) => expect(page).toContain(`>${id}: ${name}</option>`));

          const json = await postJson(`${server.url}api/generate`, {
            classId: 1,
            seed: 9,
            steps: 2,
            count: 2,
          });
          expect(json.status).toBe(200);
          const { images } = await json.json();
          expect(images.map((i: { name: string }) => i.name)).toEqual([
            "digit-c1-s9-0.png",
            "digit-c1-s9-1.png",
          ]);

          const stream = await fetch(`${server.url}api/generate`, {
            method: "POST",
            headers: { "content-type": "application/json", accept: "text/event-stream" },
            body: JSON.stringify({ classId: 0, seed: 9, steps: 2, count: 1 }),
          });
          const events = await readEvents(stream);
          const kinds = events.map((e) => e.event);
          expect(kinds[0]).toBe("started");
          expect(kinds.slice(-2)).toEqual(["image", "done"]);
          const stagesSeen = [
            ...new Set(events.filter((e) => e.event === "progress").map((e) => e.data.stage)),
          ];
          expect(stagesSeen).toEqual(["stage 1", "stage 2 (MaskGIT)", "decode"]);

          // A class the model does not have is refused before anything runs.
          expect((await postJson(`${server.url}api/generate`, { classId: CLASSES })).status).toBe(
            422,
          );
          await (await postJson(`${server.url}api/generate`, { classId: CLASSES })).body?.cancel();

          const listed = (await (await fetch(`${server.url}api/samples`)).json()).samples;
          const names = listed.map((s: { name: string }) => s.name).sort();
          expect(names).toEqual(["digit-c0-s9-0.png", "digit-c1-s9-0.png", "digit-c1-s9-1.png"]);
          for (const s of listed) {
            const png = new Uint8Array(
              await (await fetch(`${server.url}${s.url.slice(1)}`)).arrayBuffer(),
            );
            const img = decodePng(png);
            expect(img.width).toBe(SIDE);
            expect(img.height).toBe(SIDE);
          }
        } finally {
          await server.shutdown();
        }
      });
    } finally {
      model.dispose();
    }

    await step(
      "--outputs and explicit part paths work; a missing part names what to run",
      async () => {
        // No dir: the run's output folder (`serve --outputs`) holding the parts is used.
        const viaOutputs = await r.create("previews", "digit", {}, context(r, out)) as DigitPreview;
        expect(viaOutputs.name).toMatch(new RegExp(`from ${out}$`));
        viaOutputs.dispose();
        const m = await r.create("previews", "digit", {
          stage1: `${out}/stage1/checkpoints/last`,
          stage2: `${out}/stage2`,
          vqgan: `${out}/vqgan/checkpoints/last.json`,
        }, ctx) as DigitPreview;
        m.dispose();
        const empty = `${root}/empty`;
        await Deno.mkdir(empty);
        const e = await rejected(r.create("previews", "digit", { dir: empty }, ctx));
        expect(e).toBeInstanceOf(NoTrainedModelError);
        expect(e.message).toMatch(/found no trained stage 1, stage 2, VQGAN under '.*empty'/);
        expect(e.message).toMatch(/Run `deno task demo` first/);
        // Only stage 2 missing: the message names just that part.
        await expect(r.create("previews", "digit", {
          dir: empty,
          stage1: `${out}/stage1`,
          vqgan: `${out}/vqgan`,
        }, ctx)).rejects.toThrow(/found no trained stage 2 under/);
      },
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

it("findParts: the newest checkpoint wins; folders without a saved checkpoint are skipped", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-preview-find-" });
  try {
    const make = async (dir: string, marker: string, savedAt?: number) => {
      await Deno.mkdir(`${root}/${dir}/checkpoints`, { recursive: true });
      await Deno.writeTextFile(`${root}/${dir}/${marker}`, "{}");
      if (savedAt !== undefined) {
        await Deno.writeTextFile(`${root}/${dir}/checkpoints/last.json`, "{}");
        await Deno.utime(`${root}/${dir}/checkpoints/last.json`, savedAt, savedAt);
      }
    };
    await make("a/old", "model.json", 1_000);
    await make("b/new", "model.json", 2_000);
    await make("c/never-saved", "model.json");
    await make("d/nested/deeper/vq", "vqgan.json", 1_500);
    await make("results/ignored", "stage2.json", 3_000); // sampling outputs are not searched
    const found = await findParts(root);
    expect(found.stage1.map((f) => f.dir)).toEqual([`${root}/b/new`, `${root}/a/old`]);
    expect(found.stage1.map((f) => f.saved)).toEqual([2_000_000, 1_000_000]);
    expect(found.vqgan.map((f) => f.dir)).toEqual([`${root}/d/nested/deeper/vq`]);
    expect(found.stage2).toEqual([]);
    expect((await findParts(`${root}/missing`)).stage1).toEqual([]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

it("serve: with nothing trained, the CLI warns and serves the gallery alone", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-preview-cli-" });
  try {
    const controller = new AbortController();
    let stderr = "";
    const serving = main([
      "serve",
      "--port",
      "0",
      "--samples",
      `${root}/samples`,
      "--set",
      `dir=${root}`,
    ], {
      stdout: () => {},
      stderr: (text) => (stderr += text),
      loadBuiltins: async (r) => {
        await r.use(preview);
        return {};
      },
      signal: controller.signal,
      tty: false,
    });
    while (!stderr.includes("preview at")) {
      if (stderr.includes("error:")) break;
      await new Promise((done) => setTimeout(done, 5));
    }
    expect(stderr).toMatch(
      /warning: preview model 'digit' could not be loaded.*Run `deno task demo` first/,
    );
    const url = /preview at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stderr)![1];
    expect((await (await fetch(`${url}healthz`)).json()).model).toBe(null);
    const refused = await postJson(`${url}api/generate`, { seed: 1 });
    expect(refused.status).toBe(503);
    await refused.body?.cancel();
    controller.abort();
    expect(await serving).toBe(130);

    // Bad options are still an error (exit 2), not a silent gallery.
    let err = "";
    const code = await main(["serve", "--port", "0", "--set", "checkpoint=newest"], {
      stdout: () => {},
      stderr: (text) => (err += text),
      loadBuiltins: async (r) => {
        await r.use(preview);
        return {};
      },
      signal: new AbortController().signal,
      tty: false,
    });
    expect(code).toBe(2);
    expect(err).toMatch(/checkpoint/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
