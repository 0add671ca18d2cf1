/**
 * Stage 1 on the built-in dataset, through the CLI as a user runs it:
 * `train tokenizer` (weight-free encoder + K-Means on `shapes`), `train stage1`, and the
 * linear probe. Validation NLL must fall well below the unigram entropy of the tokens,
 * and the probe must beat chance (10 classes).
 */

import assert from "node:assert/strict";
import { loadCheckpoint } from "../core/io/checkpoint.ts";
import { readTokenFile } from "../core/io/tokens.ts";
import { unigramEntropy } from "../plugins/stage1/data.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function cli(args: string[]): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli/main.ts", ...args, "--device", "cpu"], cwd: ROOT, stdout: "piped", stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`digit ${args.join(" ")} exited ${out.code}:\n${new TextDecoder().decode(out.stderr)}`);
  }
}

Deno.test("stage 1 on shapes tokens: valid NLL well below unigram entropy; probe beats chance", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await cli([
      "train", "tokenizer", "-o", dir, "--set", "dataset.length=768", "--set", "valid_dataset.length=192", "--set", "k=32",
    ]);
    const tok = `${dir}/train-tokenizer`;
    await cli([
      "train", "stage1", "-o", dir, "--set", `task.tokens=${tok}/train.tokens`, "--set", `task.valid_tokens=${tok}/valid.tokens`,
      "--set", "task.target_vocab_size=32", "--set", "optimization.max_update=200", "--set", "checkpoint.save_interval_updates=100",
      // DiGIT probes the unconditional model: its inputs start with </s>, not a class token.
      "--set", "model.class_conditional=false",
    ]);
    const train = await readTokenFile(`${tok}/train.tokens`);
    const baseline = unigramEntropy({ tokens: train.tokens, count: train.count, length: train.height * train.width, clusters: train.vocab });
    const best = (await loadCheckpoint(`${dir}/train-stage1/checkpoints/best`)).meta as { train: { bestValid: number } };
    // Measured: unigram ~3.2 nats, valid NLL ~1.6 after 200 updates of the tiny preset.
    assert.ok(best.train.bestValid < 0.7 * baseline, `valid NLL ${best.train.bestValid} vs unigram ${baseline}`);

    const probeYaml = `${dir}/probe.yaml`;
    await Deno.writeTextFile(probeYaml, [
      "name: probe",
      "steps:",
      "  - name: probe",
      "    type: probe-stage1",
      "    params:",
      `      model: ${dir}/train-stage1`,
      `      train_tokens: ${tok}/train.tokens`,
      `      eval_tokens: ${tok}/valid.tokens`,
      "      epochs: 20",
      "      lr: 0.1",
    ].join("\n"));
    await cli(["run", probeYaml, "-o", dir]);
    const report = JSON.parse(await Deno.readTextFile(`${dir}/probe/probe.json`));
    // Chance is 10%. Measured 15-20%: mean-pooled features of a tiny model over 8x8 tokens of a
    // random-projection encoder carry little class information (see the closing note); the
    // synthetic-token probe in stage1_test.ts shows the probe itself separates classes well.
    assert.ok(report.best.accuracy >= 0.13, `probe accuracy per depth ${report.accuracy}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
