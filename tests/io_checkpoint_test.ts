// Our checkpoints (safetensors + JSON commit marker) and the strict state-dict check.

import assert from "node:assert/strict";
import {
  checkpointExists,
  loadCheckpoint,
  saveCheckpoint,
  type SaveStep,
} from "../core/io/checkpoint.ts";
import { makeHostTensor, type StateDict } from "../core/io/host_tensor.ts";
import { checkStateDict, loadStateDict, StateDictError } from "../core/io/state_dict.ts";
import { assertRejects, FIXTURES, tempDir } from "./fixtures/io/helpers.ts";

function weights(scale: number): StateDict {
  return new Map([
    ["layer.weight", makeHostTensor([2, 2], Float32Array.from([1, 2, 3, 4].map((x) => x * scale)))],
    ["layer.steps", makeHostTensor([1], Int32Array.from([scale]))],
  ]);
}

const WEIGHTS_NAME = /^ckpt\.[0-9a-f]{16}\.safetensors$/;

function filesIn(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/** Copies every file of `dir` into a fresh folder: what a crash at this moment would leave. */
function snapshot(dir: string): string {
  const out = tempDir();
  for (const name of filesIn(dir)) Deno.copyFileSync(`${dir}/${name}`, `${out}/${name}`);
  return out;
}

/** The weights file the committed marker names. */
function namedWeights(path: string): string {
  const marker = JSON.parse(Deno.readTextFileSync(`${path}.json`));
  return `${path.slice(0, path.lastIndexOf("/"))}/${marker.weights.file}`;
}

async function scaleOf(path: string): Promise<number> {
  return (await loadCheckpoint(path)).weights.get("layer.steps")!.data[0];
}

Deno.test("saveCheckpoint/loadCheckpoint round trip with metadata; overwrite replaces both files", async () => {
  const dir = tempDir();
  const path = `${dir}/ckpt`;
  assert.equal(await checkpointExists(path), false);
  await saveCheckpoint(path, weights(1), { step: 100, lr: 0.5, name: "stage1" });
  assert.equal(await checkpointExists(path), true);
  const a = await loadCheckpoint(path);
  assert.deepEqual(a.meta, { step: 100, lr: 0.5, name: "stage1" });
  assert.deepEqual([...a.weights.get("layer.weight")!.data], [1, 2, 3, 4]);
  assert.deepEqual([...a.weights.get("layer.steps")!.data], [1]);
  const first = filesIn(dir);
  assert.equal(first.length, 2);
  assert.ok(first.includes("ckpt.json"));
  const firstWeights = first.find((n) => WEIGHTS_NAME.test(n));
  await saveCheckpoint(path, weights(3), { step: 200 });
  const b = await loadCheckpoint(path);
  assert.deepEqual(b.meta, { step: 200 });
  assert.deepEqual([...b.weights.get("layer.weight")!.data], [3, 6, 9, 12]);
  const second = filesIn(dir);
  assert.equal(second.length, 2, `old weights and temp files removed: ${second}`);
  const secondWeights = second.find((n) => WEIGHTS_NAME.test(n));
  assert.ok(firstWeights && secondWeights, `weights files: ${first}, ${second}`);
  assert.notEqual(secondWeights, firstWeights, "each save writes a new weights file");
  // the weights are an ordinary safetensors file
  assert.deepEqual([...(await loadStateDict(namedWeights(path))).keys()], [
    "layer.weight",
    "layer.steps",
  ]);
});

Deno.test("a crash at any point of a save leaves the previous or the new checkpoint loadable", async () => {
  const dir = tempDir();
  const path = `${dir}/ckpt`;
  await saveCheckpoint(path, weights(1), { step: 1 });
  const snaps = new Map<SaveStep, string>();
  await saveCheckpoint(path, weights(2), { step: 2 }, {
    afterStep: (step) => void snaps.set(step, snapshot(dir)),
  });
  assert.deepEqual([...snaps.keys()], [
    "weights-written",
    "marker-written",
    "committed",
    "cleaned",
  ]);
  const expectScale = { "weights-written": 1, "marker-written": 1, committed: 2, cleaned: 2 };
  for (const [step, snap] of snaps) {
    assert.equal(await checkpointExists(`${snap}/ckpt`), true, step);
    assert.equal(await scaleOf(`${snap}/ckpt`), expectScale[step], `crash after ${step}`);
  }
  // a crash while the new weights were being written: a partial file beside the old checkpoint
  const early = snaps.get("weights-written")!;
  const partial = filesIn(early).filter((n) => WEIGHTS_NAME.test(n))
    .find((n) => `${early}/${n}` !== namedWeights(`${early}/ckpt`))!;
  const bytes = Deno.readFileSync(`${early}/${partial}`);
  Deno.writeFileSync(`${early}/${partial}`, bytes.subarray(0, 20));
  assert.equal(await scaleOf(`${early}/ckpt`), 1);
  // the next save after a crash removes the strays (partial weights, old weights, temp marker)
  const late = snaps.get("marker-written")!;
  assert.equal(filesIn(late).length, 4, `old+new weights, marker, temp marker: ${filesIn(late)}`);
  for (const snap of [early, late]) {
    await saveCheckpoint(`${snap}/ckpt`, weights(5), { step: 5 });
    assert.equal(filesIn(snap).length, 2, `strays left: ${filesIn(snap)}`);
    assert.equal(await scaleOf(`${snap}/ckpt`), 5);
  }
});

Deno.test("a save that fails part-way cleans up after itself and keeps the previous checkpoint", async () => {
  const dir = tempDir();
  const path = `${dir}/ckpt`;
  await saveCheckpoint(path, weights(1), { step: 1 });
  const before = filesIn(dir);
  for (const failAt of ["weights-written", "marker-written"] as SaveStep[]) {
    await assert.rejects(
      () =>
        saveCheckpoint(path, weights(2), {}, {
          afterStep: (step) => {
            if (step === failAt) throw new Error(`disk full after ${step}`);
          },
        }),
      /disk full/,
    );
    assert.deepEqual(filesIn(dir), before, `after a failure at ${failAt}`);
    assert.equal(await scaleOf(path), 1);
  }
  // meta that JSON cannot hold is refused before anything is written
  await assert.rejects(
    () => saveCheckpoint(`${dir}/ckpt`, weights(1), { n: 1n }),
    /meta is not JSON/,
  );
  assert.deepEqual(filesIn(dir), before, "a meta error writes nothing");
});

Deno.test("loadCheckpoint refuses a marker without matching weights", async () => {
  const dir = tempDir();
  // no marker at all: weights alone (or a temp marker) are not a checkpoint
  await saveCheckpoint(`${dir}/a`, weights(1), {});
  await Deno.remove(`${dir}/a.json`);
  Deno.writeFileSync(`${dir}/a.json.tmp-1-deadbeef`, new TextEncoder().encode("{"));
  assert.equal(await checkpointExists(`${dir}/a`), false);
  await assertRejects(() => loadCheckpoint(`${dir}/a`), `${dir}/a.json`, "not found");
  // weights of another save under the marker's file name
  await saveCheckpoint(`${dir}/b`, weights(1), { step: 1 });
  await saveCheckpoint(`${dir}/other`, weights(1), { step: 2 });
  Deno.copyFileSync(namedWeights(`${dir}/other`), namedWeights(`${dir}/b`));
  await assertRejects(
    () => loadCheckpoint(`${dir}/b`),
    namedWeights(`${dir}/b`),
    "different saves",
  );
  // truncated weights under a valid marker
  await saveCheckpoint(`${dir}/c`, weights(1), {});
  const full = await Deno.readFile(namedWeights(`${dir}/c`));
  await Deno.writeFile(namedWeights(`${dir}/c`), full.subarray(0, full.length - 4));
  await assertRejects(() => loadCheckpoint(`${dir}/c`), namedWeights(`${dir}/c`), "size");
  // weights deleted
  await saveCheckpoint(`${dir}/d`, weights(1), {});
  const gone = namedWeights(`${dir}/d`);
  await Deno.remove(gone);
  assert.equal(await checkpointExists(`${dir}/d`), false);
  await assertRejects(() => loadCheckpoint(`${dir}/d`), gone, "missing");
  // a marker naming a path outside its folder
  await Deno.writeTextFile(
    `${dir}/e.json`,
    JSON.stringify({
      format: "digit-ts-checkpoint",
      version: 1,
      saveId: "x",
      weights: { file: "../x.safetensors", bytes: 1, tensors: 1 },
      meta: null,
    }),
  );
  await assertRejects(() => loadCheckpoint(`${dir}/e`), "not a bare file name");
});

Deno.test("a checkpoint in the earlier layout (<path>.safetensors) loads and is replaced cleanly", async () => {
  const dir = tempDir();
  const path = `${dir}/ckpt`;
  await saveCheckpoint(path, weights(4), { step: 4 });
  // rewrite it as the earlier layout wrote it: fixed weights name, recorded in the marker
  Deno.renameSync(namedWeights(path), `${path}.safetensors`);
  const marker = JSON.parse(Deno.readTextFileSync(`${path}.json`));
  marker.weights.file = "ckpt.safetensors";
  Deno.writeTextFileSync(`${path}.json`, JSON.stringify(marker));
  assert.equal(await scaleOf(path), 4);
  await saveCheckpoint(path, weights(6), { step: 6 });
  assert.equal(await scaleOf(path), 6);
  assert.equal(filesIn(dir).length, 2, `left: ${filesIn(dir)}`);
  assert.ok(!filesIn(dir).includes("ckpt.safetensors"));
});

Deno.test("checkStateDict reports missing, unexpected and mismatched keys; strict throws once with all", async () => {
  const got = await loadStateDict(FIXTURES + "dinov2_like.pth");
  const expected = new Map<string, number[]>([
    ["cls_token", [1, 1, 8]],
    ["pos_embed", [1, 1370, 8]], // mismatched
    ["register_tokens", [1, 4, 8]],
    ["mask_token", [1, 8]],
    ["patch_embed.proj.weight", [8, 3, 2, 2]],
    ["patch_embed.proj.bias", [8]],
    ["norm.weight", [8]], // missing
    ["norm.bias", [8]], // missing
  ]);
  const report = checkStateDict(expected, got, { strict: false, what: "DINOv2" });
  assert.deepEqual(report, {
    missing: ["norm.weight", "norm.bias"],
    unexpected: ["blocks.0.ls1.gamma"],
    mismatched: [{ key: "pos_embed", expected: [1, 1370, 8], got: [1, 5, 8] }],
  });
  assert.throws(
    () => checkStateDict(expected, got, { strict: true, what: "DINOv2" }),
    (e: unknown) => {
      assert.ok(e instanceof StateDictError);
      assert.deepEqual(e.report, report);
      for (
        const s of [
          "DINOv2",
          "missing keys (2): norm.weight, norm.bias",
          "unexpected keys (1): blocks.0.ls1.gamma",
          "pos_embed: expected [1,1370,8], got [1,5,8]",
        ]
      ) {
        assert.ok(e.message.includes(s), `"${e.message}" lacks "${s}"`);
      }
      return true;
    },
  );
  const exact = new Map([...got].map(([k, t]) => [k, t.shape]));
  assert.deepEqual(checkStateDict(exact, got, { strict: true, what: "x" }), {
    missing: [],
    unexpected: [],
    mismatched: [],
  });
});
