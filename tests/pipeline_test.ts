/**
 * The generation pipeline: a token file -> stage 2 -> VQGAN -> PNGs, with a contact sheet
 * and the sampled VQ codes; deterministic for a seed whatever the batch size.
 */

import assert from "node:assert/strict";
import { readImage } from "../core/image/codec.ts";
import { writeNpy } from "../core/io/npy.ts";
import { writeTokenFile } from "../core/io/tokens.ts";
import { Generator } from "../core/random.ts";
import { liveStorages } from "../core/tensor.ts";
import { runPipeline } from "../plugins/pipeline/pipeline.ts";
import { parseCodecs, readTokenGrids } from "../plugins/pipeline/tokens.ts";
import { Stage2Model } from "../plugins/stage2/model.ts";
import { VQGAN, VQGAN_PRESETS } from "../plugins/vqgan/vqgan.ts";

const vqgan = new VQGAN({ ...VQGAN_PRESETS.cpu16, chMult: [1, 1, 1], nEmbed: 12 }, new Generator(7)); // 4x4 codes -> 16 px
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
  assert.throws(() => parseCodecs("1 2 x\n", "bad.codecs"), /bad\.codecs:1: expected non-negative integer/);
});

Deno.test("semantic grids are read from core token files (stage-1 samples) and .npy as well", async () => {
  const dir = await Deno.makeTempDir();
  const tokens = Int32Array.from({ length: 3 * 16 }, (_, i) => i % 20);
  await writeTokenFile(`${dir}/samples.tokens`, { tokens, count: 3, height: 4, width: 4, vocab: 20 });
  const a = await readTokenGrids(`${dir}/samples.tokens`);
  assert.deepEqual([a.grid.count, a.grid.height, a.grid.width, a.ids.join()], [3, 4, 4, "0,1,2"]);
  assert.deepEqual(a.grid.tokens, tokens);
  await writeNpy(`${dir}/s.npy`, { dtype: "i32", shape: [3, 16], data: tokens, sourceDtype: "i32" });
  assert.deepEqual((await readTokenGrids(`${dir}/s.npy`)).grid.tokens, tokens);
  await Deno.remove(dir, { recursive: true });
});

for (const variant of ["nar", "ar"] as const) {
  Deno.test(`pipeline (${variant}): token file -> PNGs named by id, contact sheet, same output for any batch size`, async () => {
    const before = liveStorages();
    const stage2 = new Stage2Model({
      variant, clusters: 20, codebookSize: 12, prefixLength: 16, length: 16, layers: 1, dim: 16, heads: 2, ffnDim: 32, dropout: 0,
    }, new Generator(5));
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/sem.codecs`, codecsFile(5, 16, 20));
    const run = (outDir: string, batchSize: number) =>
      runPipeline({ stage2, decoder: vqgan, semantic: `${dir}/sem.codecs`, outDir, seed: 42, batchSize, sampling: { steps: 4 }, sheet: { columns: 3 } });
    const a = await run(`${dir}/a`, 2);
    const b = await run(`${dir}/b`, 3);
    assert.equal(a.count, 5);
    const names = [...Deno.readDirSync(a.resultsDir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["101.png", "102.png", "103.png", "104.png", "105.png"]);
    for (const name of names) {
      const x = await Deno.readFile(`${a.resultsDir}/${name}`), y = await Deno.readFile(`${b.resultsDir}/${name}`);
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
    const other = await runPipeline({ stage2, decoder: vqgan, semantic: `${dir}/sem.codecs`, outDir: `${dir}/d`, seed: 43, sampling: { steps: 4 } });
    const differs = await Promise.all(names.map(async (n) =>
      (await Deno.readFile(`${other.resultsDir}/${n}`)).join() !== (await Deno.readFile(`${a.resultsDir}/${n}`)).join()
    ));
    assert.ok(differs.some((d) => d), "another seed gives other images");
    stage2.dispose();
    assert.equal(liveStorages(), before, "no leaked storages");
    await Deno.remove(dir, { recursive: true });
  });
}
