/**
 * generate-images as a sharded step: the shards plus the merge write the same bytes as one
 * process (every PNG, labels.tsv, vq_tokens.codecs and the contact sheet), including uneven
 * slices, a partial last batch and a shard with an empty slice.
 */

import { expect, it } from "./lib/test.ts";
import { writeTokenFile } from "../core/io/tokens.ts";
import { saveCheckpoint } from "../core/io/checkpoint.ts";
import { hostStateDict, type Module } from "../core/nn/module.ts";
import { Rng } from "../core/random.ts";
import { silentLogger } from "../core/registry.ts";
import { mergeShards, runShard } from "../core/shard.ts";
import { loadTask, runTask } from "../core/tasks.ts";
import { stage2Meta } from "../plugins/stage2/load.ts";
import { type Stage2Config, Stage2Model } from "../plugins/stage2/model.ts";
import { VQGAN, VQGAN_PRESETS, type VqganConfig } from "../plugins/vqgan/vqgan.ts";
import { vqganMeta } from "../plugins/vqgan/load.ts";
import { registry } from "./shard_fixture_test.ts";

const vqganConfig: VqganConfig = {
  ...VQGAN_PRESETS.cpu32,
  ch: 16,
  numResBlocks: 0,
  zChannels: 8,
  embedDim: 8,
  nEmbed: 32,
};
const stage2Config: Stage2Config = {
  variant: "ar",
  clusters: 16,
  codebookSize: 32,
  prefixLength: 16,
  length: 64,
  layers: 1,
  dim: 16,
  heads: 2,
  ffnDim: 32,
  dropout: 0,
};

async function save(model: Module, path: string, meta: object): Promise<void> {
  await Deno.mkdir(`${path}/checkpoints`, { recursive: true });
  await saveCheckpoint(`${path}/checkpoints/last`, await hostStateDict(model), meta);
  model.dispose();
}

/** Seeded parts, `count` semantic grids with labels, and the task file; returns its path. */
async function writeFixture(root: string, count: number): Promise<string> {
  await save(new VQGAN(vqganConfig, new Rng(1)), `${root}/vqgan`, vqganMeta(vqganConfig));
  await save(
    new Stage2Model(stage2Config, new Rng(2)),
    `${root}/stage2`,
    stage2Meta(stage2Config),
  );
  const g = new Rng(3);
  await writeTokenFile(`${root}/semantic.tokens`, {
    tokens: Int32Array.from({ length: count * 16 }, () => g.int(16)),
    count,
    height: 4,
    width: 4,
    vocab: 16,
    labels: Int32Array.from({ length: count }, (_, i) => i % 4),
  });
  const task = `${root}/task.yaml`;
  await Deno.writeTextFile(
    task,
    `name: generate
device: cpu
steps:
  - name: images
    type: generate-images
    params:
      stage2: ${root}/stage2/checkpoints/last
      vqgan: ${root}/vqgan/checkpoints/last
      tokens: ${root}/semantic.tokens
      batch_size: 4
      sheet_count: 9
`,
  );
  return task;
}

async function files(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile) out.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  }
  return out;
}

for (const [count, shards] of [[30, 4], [6, 3]] as const) {
  it(`generate-images: ${shards} shards + merge = one process, byte for byte (${count} images, batch 4)`, async () => {
    const root = await Deno.makeTempDir({ prefix: "digit-shard-generate-" });
    try {
      const task = await writeFixture(root, count);
      const r = await registry();
      const opts = { registry: r, log: silentLogger, signal: new AbortController().signal };
      await runTask(await loadTask(task, { registry: r, outputDir: `${root}/single` }), opts);
      const sharded = await loadTask(task, { registry: r, outputDir: `${root}/sharded` });
      for (let index = 0; index < shards; index++) {
        expect(await runShard(sharded, "images", { index, count: shards }, opts)).toBe("ran");
      }
      await mergeShards(sharded, "images", shards, opts);

      const one = await files(`${root}/single/images/results`);
      const merged = await files(`${root}/sharded/images/results`);
      expect(one.size).toBe(count + 1); // the PNGs and labels.tsv
      expect([...merged.keys()].sort()).toEqual([...one.keys()].sort());
      for (const [name, bytes] of one) expect(merged.get(name), name).toEqual(bytes);
      for (const name of ["vq_tokens.codecs", "contact_sheet.png"]) {
        const a = await Deno.readFile(`${root}/single/images/${name}`);
        expect(a.length, name).toBeGreaterThan(0);
        expect(await Deno.readFile(`${root}/sharded/images/${name}`), name).toEqual(a);
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  });
}

it("generate-images: the merge refuses while a shard is missing, and names it", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-shard-generate-" });
  try {
    const task = await writeFixture(root, 10);
    const r = await registry();
    const opts = { registry: r, log: silentLogger, signal: new AbortController().signal };
    const sharded = await loadTask(task, { registry: r, outputDir: `${root}/sharded` });
    await runShard(sharded, "images", { index: 0, count: 2 }, opts);
    await expect(mergeShards(sharded, "images", 2, opts)).rejects.toThrow(/shard-00001-of-00002/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
