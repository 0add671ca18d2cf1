/**
 * The generation pipeline: a token file -> stage 2 -> VQGAN -> PNGs, with a contact sheet
 * and the sampled VQ codes; deterministic for a seed whatever the batch size. And the
 * `sample` step (`deno task sample`) on tiny models trained by the real step types: its
 * images are compared with the same chain run as two other steps (sample-stage1, then
 * generate-images).
 */

import assert from "node:assert/strict";
import { readImage } from "../core/image/codec.ts";
import { loadCheckpoint, saveCheckpoint } from "../core/io/checkpoint.ts";
import { writeNpy } from "../core/io/npy.ts";
import { readTokenFile, writeTokenFile } from "../core/io/tokens.ts";
import { Generator } from "../core/random.ts";
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
  new Generator(7),
); // 4x4 codes -> 16 px
vqgan.eval();

function codecsFile(count: number, L: number, K: number): string {
  const g = new Generator(3);
  const lines = ["S-0\tignored source line"];
  for (let i = 0; i < count; i++) {
    // fairseq-generate style, ids out of order, one row longer than L (late </s>).
    const toks = Array.from({ length: L + (i === 1 ? 2 : 0) }, () => g.int(K));
    lines.push(`D-${100 + (count - i)}\t-1.25\t${toks.join(" ")}`);
  }
  return lines.join("\n") + "\n";
}

Deno.test(".codecs parsing: D- lines, ids, truncation to the common length, bad tokens named", () => {
  const f = parseCodecs("H-3\t0.1\t9 9\nD-3\t-0.5\t1 2 3 4 5\n7\t4 3 2 1\n\n", "x.codecs");
  assert.deepEqual(f.ids, ["3", "7"]);
  assert.deepEqual(Array.from(f.grid.tokens), [1, 2, 3, 4, 4, 3, 2, 1]);
  assert.deepEqual([f.grid.count, f.grid.height, f.grid.width], [2, 2, 2]);
  assert.throws(
    () => parseCodecs("1 2 x\n", "bad.codecs"),
    /bad\.codecs:1: expected non-negative integer/,
  );
});

Deno.test("semantic grids are read from core token files (stage-1 samples) and .npy as well", async () => {
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
  assert.deepEqual([a.grid.count, a.grid.height, a.grid.width, a.ids.join()], [3, 4, 4, "0,1,2"]);
  assert.deepEqual(a.grid.tokens, tokens);
  await writeNpy(`${dir}/s.npy`, {
    dtype: "i32",
    shape: [3, 16],
    data: tokens,
    sourceDtype: "i32",
  });
  assert.deepEqual((await readTokenGrids(`${dir}/s.npy`)).grid.tokens, tokens);
  await Deno.remove(dir, { recursive: true });
});

for (const variant of ["nar", "ar"] as const) {
  Deno.test(`pipeline (${variant}): token file -> PNGs named by id, contact sheet, same output for any batch size`, async () => {
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
    }, new Generator(5));
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
    assert.equal(a.count, 5);
    const names = [...Deno.readDirSync(a.resultsDir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["101.png", "102.png", "103.png", "104.png", "105.png"]);
    for (const name of names) {
      const x = await Deno.readFile(`${a.resultsDir}/${name}`),
        y = await Deno.readFile(`${b.resultsDir}/${name}`);
      assert.deepEqual(x, y, `${name} differs between batch sizes 2 and 3`);
      const img = await readImage(`${a.resultsDir}/${name}`);
      assert.deepEqual([img.width, img.height], [16, 16]);
    }
    // The sampled codes are written too, and decoding them again gives the saved pixels.
    const vq = await readTokenGrids(a.vqTokens);
    assert.deepEqual(vq.ids, ["105", "104", "103", "102", "101"]);
    assert.ok(vq.grid.tokens.every((t) => t >= 0 && t < 12));
    const again = await vqgan.decode(vq.grid);
    const first = await readImage(`${a.resultsDir}/105.png`);
    assert.deepEqual(again.data.subarray(0, 16 * 16 * 3), first.data);
    // Contact sheet: 3 columns x 2 rows of 16 px cells with 2 px gaps.
    const sheet = await readImage(a.contactSheet!);
    assert.deepEqual([sheet.width, sheet.height], [3 * 18 + 2, 2 * 18 + 2]);
    const c = await run(`${dir}/c`, 5).then(() => Deno.readFile(`${dir}/c/results/101.png`));
    assert.deepEqual(c, await Deno.readFile(`${a.resultsDir}/101.png`));
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
    assert.ok(differs.some((d) => d), "another seed gives other images");
    stage2.dispose();
    assert.equal(liveStorages(), before, "no leaked storages");
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

Deno.test("sample step: tiny trained parts found by their markers -> the same PNGs as sample-stage1 + generate-images", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-sample-" });
  const out = `${root}/exp`;
  await Deno.mkdir(out, { recursive: true });
  const g = new Generator(11);
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
  assert.deepEqual([...Deno.readDirSync(`${out}/sample/results`)].map((e) => e.name).sort(), [
    ...ids.map((id) => `${id}.png`),
    "labels.tsv",
  ]);
  const classColumn = async (dir: string) =>
    (await Deno.readTextFile(`${dir}/labels.tsv`)).trim().split("\n").slice(1).map((l) =>
      l.split("\t")[1]
    );
  assert.deepEqual(
    await classColumn(`${out}/sample/results`),
    await classColumn(`${out}/reference/results`),
  );
  for (const [i, id] of ids.entries()) {
    const ours = await readImage(`${out}/sample/results/${id}.png`);
    const ref = await readImage(`${out}/reference/results/${i}.png`);
    assert.deepEqual([ours.width, ours.height], [16, 16]);
    assert.deepEqual(
      ours.data,
      ref.data,
      `image ${id} differs from sample-stage1 + generate-images`,
    );
    const fromTokens = await readImage(`${out}/from-tokens/results/${i}.png`);
    assert.deepEqual(fromTokens.data, ref.data, `image ${i} from the token file differs`);
  }
  const semantic = await readTokenFile(`${out}/sample/semantic.tokens`),
    refSemantic = await readTokenFile(`${out}/semantic/samples.tokens`);
  assert.deepEqual(semantic.tokens, refSemantic.tokens);
  assert.deepEqual(Array.from(semantic.labels!), [0, 2, 0, 2, 0]);
  const sheet = await readImage(`${out}/sample/contact_sheet.png`);
  assert.ok(sheet.width > 16 && sheet.height > 16, "contact sheet");
  // Progress of both phases reached its end (5 images of 16 tokens).
  assert.ok(log.lines.some((l) => /stage 1 80\/80$/.test(l)), "stage-1 progress");
  assert.ok(log.lines.some((l) => /stage 2 \+ VQGAN 5\/5$/.test(l)), "stage-2 progress");

  // The trained parts were loaded, not the never-trained copies written after them.
  const sources = JSON.parse(await Deno.readTextFile(`${out}/sample/sources.json`));
  assert.deepEqual([sources.stage1.model, sources.stage2, sources.vqgan], [
    `${out}/stage1/checkpoints/last`,
    `${out}/stage2/checkpoints/last`,
    `${out}/vqgan/checkpoints/last`,
  ]);

  // With nothing given, the parts come from the demo task's output folder.
  const demoTask = new URL(`file://${root}/demo.yaml`);
  await Deno.writeTextFile(demoTask, `name: demo\noutputs: ${out}\nsteps: []\n`);
  const defaults = await resolveSampleSources(validate(sampleParams, {}, "test"), log, demoTask);
  assert.deepEqual(defaults, {
    stage1: { dir: `${out}/stage1`, which: "last" },
    stage2: `${out}/stage2/checkpoints/last`,
    vqgan: `${out}/vqgan/checkpoints/last`,
    root: out,
  });

  // Finished: a re-run skips it, until a part is saved again (same params, new weights).
  const sampleStep = plan.steps.find((s) => s.name === "sample")!;
  assert.equal(await stepStatus(sampleStep), "done");
  const ck = await loadCheckpoint(`${out}/stage2/checkpoints/last`);
  await saveCheckpoint(`${out}/stage2/checkpoints/last`, ck.weights, ck.meta);
  assert.equal(
    await stepStatus(sampleStep),
    "incomplete",
    "stage 2 was saved again: the samples are stale",
  );
  const again = await run();
  assert.ok(
    again.ran.includes("sample") && again.ran.includes("from-tokens"),
    `re-ran ${again.ran}`,
  );
  assert.ok(
    again.skipped.includes("reference") && again.skipped.includes("stage2"),
    `skipped ${again.skipped}`,
  );
  assert.equal(await stepStatus(sampleStep), "done");
  await Deno.remove(root, { recursive: true });
});

Deno.test("sample step: without trained parts, the error says to run `deno task demo` first", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-sample-" });
  const params = (o: Record<string, unknown>) => validate(sampleParams, o, "test") as SampleParams;
  const log = memoryLogger();
  const noDemo = new URL(`file://${root}/tasks/demo.yaml`);
  await assert.rejects(
    resolveSampleSources(params({}), log, noDemo),
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
  await assert.rejects(
    resolveSampleSources(params({}), log, noDemo),
    /found no trained stage 1, stage 2, VQGAN under '.*outputs\/demo'.*Run `deno task demo` first/,
  );
  // Parts given explicitly need no search; a part that does not exist is named.
  await assert.rejects(
    resolveSampleSources(params({ stage1: `${root}/nope` }), log, noDemo),
    /stage1 '.*nope' does not exist/,
  );
  await Deno.mkdir(`${root}/s1`);
  const given = await resolveSampleSources(
    params({ stage1: `${root}/s1`, stage2: `${root}/digit.pt` }),
    log,
    noDemo,
  );
  assert.deepEqual(given, {
    stage1: { dir: `${root}/s1`, which: "last" },
    stage2: `${root}/digit.pt`,
    vqgan: null,
    root: null,
  });
  await Deno.remove(root, { recursive: true });
});
