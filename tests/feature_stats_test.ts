/**
 * feature-stats: Inception statistics of a folder by blocks. One process, and three shards
 * plus the merge, write the same bytes; both agree with the streaming statistics of the
 * same features (tests/metrics_eval_test.ts checks those against numpy) to 1e-9.
 */

import { expect, it } from "./lib/test.ts";
import { encodeNpz } from "../core/io/npy.ts";
import { Registry, silentLogger } from "../core/registry.ts";
import { mergeShards, runShard } from "../core/shard.ts";
import { loadTask, runTask } from "../core/tasks.ts";
import { InceptionFeatureExtractor } from "../plugins/inception/extractor.ts";
import { FidInceptionV3 } from "../plugins/inception/model.ts";
import { syntheticInceptionWeights } from "../plugins/inception/synthetic_weights.ts";
import { loadInceptionStateDict, WEIGHT_FILES } from "../plugins/inception/weights.ts";
import { inceptionStats } from "../plugins/metrics/fid.ts";
import { ImageFolder } from "../plugins/metrics/folder.ts";
import metricsPlugin from "../plugins/metrics/plugin.ts";
import { loadStats } from "../plugins/metrics/stats_io.ts";

const FIX = new URL("./fixtures/inception/eval/", import.meta.url).pathname;

it("feature-stats: 3 shards (one empty) + merge = one process, byte for byte, and = the streaming statistics (1e-9)", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-feature-stats-" });
  try {
    // 8 images from the fixture's reference and generated sets, renamed so that they sort;
    // blocks of 4 make the third shard empty.
    await Deno.mkdir(`${root}/images`);
    let n = 0;
    for (const set of ["reference", "generated"]) {
      const names = [...Deno.readDirSync(`${FIX}${set}`)].map((e) => e.name).sort();
      for (const f of names.slice(0, 4)) {
        await Deno.copyFile(
          `${FIX}${set}/${f}`,
          `${root}/images/${String(n++).padStart(3, "0")}.png`,
        );
      }
    }
    const model = new FidInceptionV3();
    const sd = syntheticInceptionWeights([...model.stateDict()].map(([k, t]) => [k, t.shape]), 0);
    const weights = `${root}/${WEIGHT_FILES["torch-fidelity"].file}`;
    await Deno.writeFile(weights, encodeNpz(sd));
    const task = `${root}/task.yaml`;
    await Deno.writeTextFile(
      task,
      [
        "name: stats",
        "device: cpu",
        "steps:",
        "  - name: ref",
        "    type: feature-stats",
        `    params: { images: ${root}/images, weights: ${weights}, batch_size: 2, block: 4 }`,
        "",
      ].join("\n"),
    );
    const r = new Registry();
    await r.use(metricsPlugin);
    const opts = { registry: r, log: silentLogger, signal: new AbortController().signal };
    await runTask(await loadTask(task, { registry: r, outputDir: `${root}/single` }), opts);
    const sharded = await loadTask(task, { registry: r, outputDir: `${root}/sharded` });
    for (let index = 0; index < 3; index++) {
      await runShard(sharded, "ref", { index, count: 3 }, opts);
    }
    await mergeShards(sharded, "ref", 3, opts);
    const one = await Deno.readFile(`${root}/single/ref/stats.npz`);
    expect(await Deno.readFile(`${root}/sharded/ref/stats.npz`)).toEqual(one);

    await loadInceptionStateDict(model, sd, "synthetic");
    const streaming = await inceptionStats(
      new InceptionFeatureExtractor(model),
      (await ImageFolder.open(`${root}/images`)).batches(2),
    );
    const blocks = await loadStats(`${root}/single/ref/stats.npz`);
    expect(blocks.count).toBe(n);
    for (const [a, b] of [[blocks.mu, streaming.mu], [blocks.sigma, streaming.sigma]]) {
      let worst = 0, scale = 0;
      a.forEach((v, i) => {
        worst = Math.max(worst, Math.abs(v - b[i]));
        scale = Math.max(scale, Math.abs(b[i]));
      });
      expect(worst).toBeLessThan(1e-9 * Math.max(1, scale));
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
