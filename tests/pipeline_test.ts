/**
 * The generation pipeline: a token file -> stage 2 -> VQGAN -> PNGs, with a contact sheet
 * and the sampled VQ codes; deterministic for a seed whatever the batch size. And the
 * `sample` step (`deno task sample`) on tiny models trained by the real step types: its
 * images are compared with the same chain run as two other steps (sample-stage1, then
 * generate-images).
 */

import { expect, it } from "./lib/test.ts";
import { readImage } from "../core/image/codec.ts";
import { loadCheckpoint, saveCheckpoint } from "../core/io/checkpoint.ts";
import { writeNpy } from "../core/io/npy.ts";
import { readTokenFile, writeTokenFile } from "../core/io/tokens.ts";
import { Rng } from "../core/random.ts";
import { memoryLogger, Registry } from "../core/registry.ts";
import { planTask, runTask, stepStatus } from "../core/tasks.ts";
import { liveStorages } from "../core/tensor.ts";
import demo from "../plugins/demo/plugin.ts";
import pipeline from "../plugins/pipeline/plugin.ts";
import {
  resolveSampleSources,
  type SampleParams,
  sampleParams,
} from "../plugins/pipeline/sample.ts";
import stage1 from "../plugins/stage1/plugin.ts";
import stage2Plugin from "../plugins/stage2/plugin.ts";
import vqganPlugin from "../plugins/vqgan/plugin.ts";
import { validate } from "../core/config.ts";
import { runPipeline } from "../plugins/pipeline/pipeline.ts";
import { parseCodecs, readTokenGrids } from "../plugins/pipeline/tokens.ts";
import { Stage2Model } from "../plugins/stage2/model.ts";
import { VQGAN, VQGAN_PRESETS } from "../plugins/vqgan/vqgan.ts";

const vqgan = new VQGAN(
  { ...VQGAN_PRESETS.cpu16, chMult: [1, 1, 1], nEmbed: 12 },
  new Rng(7),
); // 4x4 codes -> 16 px
vqgan.eval();

function codecsFile(count: number, L: number, K: number): string {
  const g = new Rng(3);
  const lines = ["S-0\tignored source line"];
  for (let i = 0; i < count; i++) {
    // fairseq-generate style, ids out of order, one row longer than L (late </s>).
    const toks = Array.from({ length: L + (i === 1 ? 2 : 0) }, () => g.int(K));
    lines.push(`D-${100 + (count - i)}\t-1.25\t${toks.join(" ")}`);
  }
  return lines.join("\n") + "\n";
}

it(".codecs parsing: D- lines, ids, truncation to the common length, bad tokens named", () => {
  const f = parseCodecs("H-3\t0.1\t9 9\nD-3\t-0.5\t1 2 3 4 5\n7\t4 3 2 1\n\n", "x.codecs");
  expect(f.ids).toEqual(["3", "7"]);
  expect(Array.from(f.grid.tokens)).toEqual([1, 2, 3, 4, 4, 3, 2, 1]);
  expect([f.grid.count, f.grid.height, f.grid.width]).toEqual([2, 2, 2]);
  expect(() => parseCodecs("1 2 x\n", "bad.codecs")).toThrow(
    /bad\.codecs:1: expected non-negative integer/,
  );
});

it("semantic grids are read from core token files (stage-1 samples) and .npy as well", async () => {
  const dir = await Deno.makeTempDir();
  const tokens = Int32Array.from({ length: 3 * 16 }, (_, i) => i % 20);
  await writeTokenFile(`${dir}/samples.tokens`, {
    tokens,
    count: 3,
    height: 4,
    width: 4,
    vocab: 20,
  });
  const a = await readTokenGrids(`${dir}/samples.tokens`);
  expect([a.grid.count, a.grid.height, a.grid.width, a.ids.join()]).toEqual([3, 4, 4, "0,1,2"]);
  expect(a.grid.tokens).toEqual(tokens);
  await writeNpy(`${dir}/s.npy`, {
    dtype: "i32",
    shape: [3, 16],
    data: tokens,
    sourceDtype: "i32",
  });
  expect((await readTokenGrids(`${dir}/s.npy`)).grid.tokens).toEqual(tokens);
  await Deno.remove(dir, { recursive: true });
});

for (const variant of ["nar", "ar"] as const) {
  it(`pipeline (${variant}): token file -> PNGs named by id, contact sheet, same output for any batch size`, async () => {
    const before = liveStorages();
    const stage2 = new Stage2Model({
      variant,
      clusters: 20,
      codebookSize: 12,
      prefixLength: 16,
      length: 16,
      layers: 1,
      dim: 16,
      heads: 2,
      ffnDim: 32,
      dropout: 0,
    }, new Rng(5));
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/sem.codecs`, codecsFile(5, 16, 20));
    const run = (outDir: string, batchSize: number) =>
      runPipeline({
        stage2,
        decoder: vqgan,
        semantic: `${dir}/sem.codecs`,
        outDir,
        seed: 42,
        batchSize,
        sampling: { steps: 4 },
        sheet: { columns: 3 },
      });
    const a = await run(`${dir}/a`, 2);
    const b = await run(`${dir}/b`, 3);
    expect(a.count).toBe(5);
    const names = [...Deno.readDirSync(a.resultsDir)].map((e) => e.name).sort();
    expect(names).toEqual(["101.png", "102.png", "103.png", "104.png", "105.png"]);
    for (const name of names) {
      const x = await Deno.readFile(`${a.resultsDir}/${name}`),
        y = await Deno.readFile(`${b.resultsDir}/${name}`);
      expect(x, `${name} differs between batch sizes 2 and 3`).toEqual(y);
      const img = await readImage(`${a.resultsDir}/${name}`);
      expect([img.width, img.height]).toEqual([16, 16]);
    }
    // The sampled codes are written too, and decoding them again gives the saved pixels.
    const vq = await readTokenGrids(a.vqTokens);
    expect(vq.ids).toEqual(["105", "104", "103", "102", "101"]);
    expect(vq.grid.tokens.every((t) => t >= 0 && t < 12)).toBeTruthy();
    const again = await vqgan.decode(vq.grid);
    const first = await readImage(`${a.resultsDir}/105.png`);
    expect(again.data.subarray(0, 16 * 16 * 3)).toEqual(first.data);
    // Contact sheet: 3 columns x 2 rows of 16 px cells with 2 px gaps.
    const sheet = await readImage(a.contactSheet!);
    expect([sheet.width, sheet.height]).toEqual([3 * 18 + 2, 2 * 18 + 2]);
    const c = await run(`${dir}/c`, 5).then(() => Deno.readFile(`${dir}/c/results/101.png`));
    expect(c).toEqual(await Deno.readFile(`${a.resultsDir}/101.png`));
    const other = await runPipeline({
      stage2,
      decoder: vqgan,
      semantic: `${dir}/sem.codecs`,
      outDir: `${dir}/d`,
      seed: 43,
      sampling: { steps: 4 },
    });
    const differs = await Promise.all(
      names.map(async (n) =>
        (await Deno.readFile(`${other.resultsDir}/${n}`)).join() !==
          (await Deno.readFile(`${a.resultsDir}/${n}`)).join()
      ),
    );
    expect(differs.some((d) => d), "another seed gives other images").toBeTruthy();
    stage2.dispose();
    expect(liveStorages(), "no leaked storages").toBe(before);
    await Deno.remove(dir, { recursive: true });
  });
}

/** The tiny pipeline: 16 px shapes, 4x4 grids of 8 clusters / 32 codes, 3 classes, 2 updates per part. */
function tinySteps(semanticFile: string) {
  const shapes = { kind: "shapes", size: 16, length: 24, seed: 0 };
  const fast = { max_update: 2, lr: 1e-3 };
  return [
    {
      name: "vqgan",
      type: "train-vqgan",
      params: {
        model: {
          preset: "cpu16",
          ch: 8,
          ch_mult: [1, 2, 2],
          num_res_blocks: 1,
          z_channels: 8,
          n_embed: 32,
          norm_groups: 4,
        },
        dataset: { batch_size: 8, source: shapes, train_images: 24, valid_images: 0 },
        optimization: fast,
        preview: { count: 2 },
      },
    },
    {
      name: "encode",
      type: "encode-vqgan",
      params: { vqgan: { checkpoint: "${steps.vqgan.outputs.checkpoint}" }, dataset: shapes },
    },
    {
      name: "stage1",
      type: "train-stage1",
      params: {
        task: { tokens: semanticFile, target_vocab_size: 8 },
        dataset: { batch_size: 8 },
        optimization: fast,
        model: { preset: "tiny", dropout: 0, class_conditional: true, num_classes: 3 },
      },
    },
    {
      name: "stage2",
      type: "train-stage2",
      params: {
        task: {
          tokens: semanticFile,
          vq_tokens: "${steps.encode.outputs.tokens}",
          source_vocab_size: 8,
          target_vocab_size: 32,
        },
        dataset: { batch_size: 8 },
        optimization: fast,
        model: { _name: "st2vtlm_nar", preset: "tiny", dropout: 0 },
      },
    },
    // Never-trained copies beside the trained parts: `sample` must pass them over.
    {
      name: "untrained",
      type: "untrained-models",
      params: {
        stage1: "${steps.stage1.dir}",
        stage2: "${steps.stage2.dir}",
        vqgan: "${steps.vqgan.dir}",
      },
    },
    // The reference chain: stage-1 grids as a token file, then generate-images.
    {
      name: "semantic",
      type: "sample-stage1",
      params: {
        model: "${steps.stage1.dir}",
        count: 5,
        seed: 3,
        classes: [0, 2],
        top_k: 4,
        batch_size: 2,
      },
    },
    {
      name: "reference",
      type: "generate-images",
      params: {
        stage2: "${steps.stage2.dir}/checkpoints/last",
        vqgan: "${steps.vqgan.dir}/checkpoints/last",
        tokens: "${steps.semantic.outputs.tokens}",
        seed: 3,
        steps: 3,
        batch_size: 2,
      },
    },
    // What `deno task sample --set dir=...` runs: every part found under the folder.
    {
      name: "sample",
      type: "sample",
      params: {
        dir: "${outputs}",
        count: 5,
        seed: 3,
        classes: [0, 2],
        top_k: 4,
        stage2_steps: 3,
        batch_size: 2,
      },
    },
    // Stage 1 replaced by the reference's token file; the other parts named.
    {
      name: "from-tokens",
      type: "sample",
      params: {
        stage1: "${steps.semantic.outputs.tokens}",
        stage2: "${steps.stage2.dir}",
        vqgan: "${steps.vqgan.dir}",
        seed: 3,
        stage2_steps: 3,
        batch_size: 4,
      },
    },
  ];
}

it("sample step: tiny trained parts found by their markers -> the same PNGs as sample-stage1 + generate-images", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-sample-" });
  const out = `${root}/exp`;
  await Deno.mkdir(out, { recursive: true });
  const g = new Rng(11);
  await writeTokenFile(`${out}/semantic.tokens`, {
    tokens: Int32Array.from({ length: 24 * 16 }, () => g.int(8)),
    count: 24,
    height: 4,
    width: 4,
    vocab: 8,
    labels: Int32Array.from({ length: 24 }, (_, i) => i % 3),
  });
  const r = new Registry();
  for (const p of [vqganPlugin, stage1, stage2Plugin, pipeline, demo]) await r.use(p);
  const plan = planTask({ name: "tiny", steps: tinySteps(`${out}/semantic.tokens`) }, r, {
    file: "pipeline_test",
    outputDir: out,
    device: "cpu",
  });
  const log = memoryLogger();
  const run = () => runTask(plan, { registry: r, log, signal: new AbortController().signal });
  await run();

  // The sampled images are those of the two-step chain, under zero-padded ids.
  const ids = ["0000", "0001", "0002", "0003", "0004"];
  // labels.tsv (core/data/labels.ts) names the class each image was sampled for.
  expect([...Deno.readDirSync(`${out}/sample/results`)].map((e) => e.name).sort()).toEqual([
    ...ids.map((id) => `${id}.png`),
    "labels.tsv",
  ]);
  const classColumn = async (dir: string) =>
    (await Deno.readTextFile(`${dir}/labels.tsv`)).trim().split("\n").slice(1).map((l) =>
      l.split("\t")[1]
    );
  expect(await classColumn(`${out}/sample/results`)).toEqual(
    await classColumn(`${out}/reference/results`),
  );
  for (const [i, id] of ids.entries()) {
    const ours = await readImage(`${out}/sample/results/${id}.png`);
    const ref = await readImage(`${out}/reference/results/${i}.png`);
    expect([ours.width, ours.height]).toEqual([16, 16]);
    expect(ours.data, `image ${id} differs from sample-stage1 + generate-images`).toEqual(ref.data);
    const fromTokens = await readImage(`${out}/from-tokens/results/${i}.png`);
    expect(fromTokens.data, `image ${i} from the token file differs`).toEqual(ref.data);
  }
  const semantic = await readTokenFile(`${out}/sample/semantic.tokens`),
    refSemantic = await readTokenFile(`${out}/semantic/samples.tokens`);
  expect(semantic.tokens).toEqual(refSemantic.tokens);
  expect(Array.from(semantic.labels!)).toEqual([0, 2, 0, 2, 0]);
  const sheet = await readImage(`${out}/sample/contact_sheet.png`);
  expect(sheet.width > 16 && sheet.height > 16, "contact sheet").toBeTruthy();
  // Progress of both phases reached its end (5 images of 16 tokens).
  expect(log.lines.some((l) => /stage 1 80\/80$/.test(l)), "stage-1 progress").toBeTruthy();
  expect(log.lines.some((l) => /stage 2 \+ VQGAN 5\/5$/.test(l)), "stage-2 progress").toBeTruthy();

  // The trained parts were loaded, not the never-trained copies written after them.
  const sources = JSON.parse(await Deno.readTextFile(`${out}/sample/sources.json`));
  expect([sources.stage1.model, sources.stage2, sources.vqgan]).toEqual([
    `${out}/stage1/checkpoints/last`,
    `${out}/stage2/checkpoints/last`,
    `${out}/vqgan/checkpoints/last`,
  ]);

  // With nothing given, the parts come from the demo task's output folder.
  const demoTask = new URL(`file://${root}/demo.yaml`);
  await Deno.writeTextFile(demoTask, `name: demo\noutputs: ${out}\nsteps: []\n`);
  const defaults = await resolveSampleSources(validate(sampleParams, {}, "test"), log, demoTask);
  expect(defaults).toEqual({
    stage1: { dir: `${out}/stage1`, which: "last" },
    stage2: `${out}/stage2/checkpoints/last`,
    vqgan: `${out}/vqgan/checkpoints/last`,
    root: out,
  });

  // Finished: a re-run skips it, until a part is saved again (same params, new weights).
  const sampleStep = plan.steps.find((s) => s.name === "sample")!;
  expect(await stepStatus(sampleStep)).toBe("done");
  const ck = await loadCheckpoint(`${out}/stage2/checkpoints/last`);
  await saveCheckpoint(`${out}/stage2/checkpoints/last`, ck.weights, ck.meta);
  expect(await stepStatus(sampleStep), "stage 2 was saved again: the samples are stale").toBe(
    "incomplete",
  );
  const again = await run();
  expect(again.ran.includes("sample") && again.ran.includes("from-tokens"), `re-ran ${again.ran}`)
    .toBeTruthy();
  expect(
    again.skipped.includes("reference") && again.skipped.includes("stage2"),
    `skipped ${again.skipped}`,
  ).toBeTruthy();
  expect(await stepStatus(sampleStep)).toBe("done");
  await Deno.remove(root, { recursive: true });
});

it("sample step: without trained parts, the error says to run `deno task demo` first", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-sample-" });
  const params = (o: Record<string, unknown>) => validate(sampleParams, o, "test") as SampleParams;
  const log = memoryLogger();
  const noDemo = new URL(`file://${root}/tasks/demo.yaml`);
  await expect(resolveSampleSources(params({}), log, noDemo)).rejects.toThrow(
    /demo\.yaml does not exist.*Run `deno task demo` first/,
  );
  // A demo task whose output folder holds nothing trained (only an untrained copy).
  await Deno.mkdir(`${root}/tasks`);
  await Deno.writeTextFile(noDemo, `name: demo\noutputs: ${root}/outputs/demo\nsteps: []\n`);
  await Deno.mkdir(`${root}/outputs/demo/untrained/stage1/checkpoints`, { recursive: true });
  await Deno.writeTextFile(`${root}/outputs/demo/untrained/stage1/model.json`, "{}");
  await Deno.writeTextFile(
    `${root}/outputs/demo/untrained/stage1/checkpoints/last.json`,
    JSON.stringify({ saveId: "x", meta: { untrained: true } }),
  );
  await expect(resolveSampleSources(params({}), log, noDemo)).rejects.toThrow(
    /found no trained stage 1, stage 2, VQGAN under '.*outputs\/demo'.*Run `deno task demo` first/,
  );
  // Parts given explicitly need no search; a part that does not exist is named.
  await expect(resolveSampleSources(params({ stage1: `${root}/nope` }), log, noDemo)).rejects
    .toThrow(/stage1 '.*nope' does not exist/);
  await Deno.mkdir(`${root}/s1`);
  const given = await resolveSampleSources(
    params({ stage1: `${root}/s1`, stage2: `${root}/digit.pt` }),
    log,
    noDemo,
  );
  expect(given).toEqual({
    stage1: { dir: `${root}/s1`, which: "last" },
    stage2: `${root}/digit.pt`,
    vqgan: null,
    root: null,
  });
  await Deno.remove(root, { recursive: true });
});
