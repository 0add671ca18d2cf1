/**
 * A training step whose architecture changed since its checkpoint was written is refused
 * before any training, with the step's name and the way out (--force-step), instead of a
 * state-dict dump from the resume path; --force-step then trains the new architecture.
 */

import { expect, it } from "./lib/test.ts";
import { parseOverrides } from "../core/config.ts";
import { writeTokenFile } from "../core/io/tokens.ts";
import { silentLogger } from "../core/registry.ts";
import { loadTask, runTask, StepFailedError } from "../core/tasks.ts";
import { registry } from "./shard_fixture_test.ts";

it("a changed architecture is refused before training, naming the step and --force-step", async () => {
  const root = await Deno.makeTempDir({ prefix: "digit-arch-" });
  try {
    const count = 8, L = 4;
    await writeTokenFile(`${root}/train.tokens`, {
      tokens: Int32Array.from({ length: count * L }, (_, i) => (i * 7) % 16),
      count,
      height: 2,
      width: 2,
      vocab: 16,
    });
    const task = `${root}/task.yaml`;
    await Deno.writeTextFile(
      task,
      [
        "name: arch",
        "device: cpu",
        "steps:",
        "  - name: gpt",
        "    type: train-stage1",
        "    params:",
        `      task: { tokens: ${root}/train.tokens, target_vocab_size: 16 }`,
        "      model: { preset: tiny, dropout: 0.0 }",
        "      dataset: { batch_size: 4 }",
        "      optimization: { max_update: 2, lr: 1.0e-3 }",
        "      checkpoint: { save_interval_updates: 2 }",
        "",
      ].join("\n"),
    );
    const r = await registry();
    const run = async (sets: string[], force: boolean | string[] = false) =>
      await runTask(
        await loadTask(task, {
          registry: r,
          outputDir: `${root}/out`,
          overrides: parseOverrides(sets),
        }),
        { registry: r, log: silentLogger, signal: new AbortController().signal, force },
      );
    expect((await run([])).ran).toEqual(["gpt"]);
    const deeper = ["steps[0].params.model.decoder_layers=3"];
    const err = await run(deeper).then(() => null, (e) => e);
    expect(err, `expected a StepFailedError, got ${err}`).toBeInstanceOf(StepFailedError);
    expect(err.message).toMatch(
      /was trained with another architecture than the one configured now/,
    );
    expect(err.message).toMatch(/tensor\(s\) differ; e\.g\. decoder\.layers\.2\.\S+ is new/);
    expect(err.message).toMatch(/--force-step gpt/);
    expect((await run(deeper, ["gpt"])).ran).toEqual(["gpt"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
