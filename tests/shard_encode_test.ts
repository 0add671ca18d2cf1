/**
 * encode-vqgan as a sharded step: three shards plus the merge write the same bytes as one
 * process (shards start on batch boundaries; every shard records the whole run's source),
 * including a shard with an empty slice.
 */

import { expect, it } from "./lib/test.ts";
import { silentLogger } from "../core/registry.ts";
import { mergeShards, runShard } from "../core/shard.ts";
import { loadTask, runTask } from "../core/tasks.ts";
import { registry } from "./shard_fixture_test.ts";

const fixture = new URL("./fixtures/vqgan/tiny.ckpt", import.meta.url).pathname;

async function writeTask(root: string, count: number): Promise<string> {
  const path = `${root}/task.yaml`;
  await Deno.writeTextFile(
    path,
    [
      "name: encode",
      "device: cpu",
      "steps:",
      "  - name: codes",
      "    type: encode-vqgan",
      "    params:",
      `      vqgan: { checkpoint: ${fixture}, norm_groups: 8, resolution: 16 }`,
      "      dataset: { kind: shapes, size: 16, length: 30, seed: 4 }",
      `      first: 3`,
      `      count: ${count}`,
      "      batch_size: 4",
      "",
    ].join("\n"),
  );
  return path;
}

for (const [count, shards] of [[22, 3], [6, 3]] as const) {
  it(`encode-vqgan: ${shards} shards + merge = one process, byte for byte (${count} images, batch 4)`, async () => {
    const root = await Deno.makeTempDir({ prefix: "digit-shard-encode-" });
    try {
      const task = await writeTask(root, count);
      const r = await registry();
      const opts = { registry: r, log: silentLogger, signal: new AbortController().signal };
      const single = await loadTask(task, { registry: r, outputDir: `${root}/single` });
      await runTask(single, opts);
      const sharded = await loadTask(task, { registry: r, outputDir: `${root}/sharded` });
      for (let index = 0; index < shards; index++) {
        expect(await runShard(sharded, "codes", { index, count: shards }, opts)).toBe("ran");
      }
      await mergeShards(sharded, "codes", shards, opts);
      const one = await Deno.readFile(`${root}/single/codes/vq.tokens`);
      const merged = await Deno.readFile(`${root}/sharded/codes/vq.tokens`);
      expect(merged.length).toBeGreaterThan(0);
      expect(merged).toEqual(one);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  });
}
