// Our checkpoints (safetensors + JSON commit marker) and the strict state-dict check.

import assert from "node:assert/strict";
import { checkpointExists, loadCheckpoint, saveCheckpoint } from "../core/io/checkpoint.ts";
import { makeHostTensor, type StateDict } from "../core/io/host_tensor.ts";
import { checkStateDict, loadStateDict, StateDictError } from "../core/io/state_dict.ts";
import { assertRejects, FIXTURES, tempDir } from "./fixtures/io/helpers.ts";

function weights(scale: number): StateDict {
  return new Map([
    ["layer.weight", makeHostTensor([2, 2], Float32Array.from([1, 2, 3, 4].map((x) => x * scale)))],
    ["layer.steps", makeHostTensor([1], Int32Array.from([scale]))],
  ]);
}

Deno.test("saveCheckpoint/loadCheckpoint round trip with metadata; overwrite replaces both files", async () => {
  const path = `${tempDir()}/ckpt_100`;
  assert.equal(await checkpointExists(path), false);
  await saveCheckpoint(path, weights(1), { step: 100, lr: 0.5, name: "stage1" });
  assert.equal(await checkpointExists(path), true);
  const a = await loadCheckpoint(path);
  assert.deepEqual(a.meta, { step: 100, lr: 0.5, name: "stage1" });
  assert.deepEqual([...a.weights.get("layer.weight")!.data], [1, 2, 3, 4]);
  assert.deepEqual([...a.weights.get("layer.steps")!.data], [1]);
  await saveCheckpoint(path, weights(3), { step: 200 });
  const b = await loadCheckpoint(path);
  assert.deepEqual(b.meta, { step: 200 });
  assert.deepEqual([...b.weights.get("layer.weight")!.data], [3, 6, 9, 12]);
  const left = [...Deno.readDirSync(path.slice(0, path.lastIndexOf("/")))].map((e) => e.name)
    .sort();
  assert.deepEqual(left, ["ckpt_100.json", "ckpt_100.safetensors"], "no temp files left behind");
  // the weights are an ordinary safetensors file
  assert.deepEqual([...(await loadStateDict(`${path}.safetensors`)).keys()], [
    "layer.weight",
    "layer.steps",
  ]);
});

Deno.test("an interrupted save is never taken for a checkpoint", async () => {
  const dir = tempDir();
  // crash before the JSON commit: weights (or a temp file) exist, no marker
  await saveCheckpoint(`${dir}/a`, weights(1), {});
  await Deno.remove(`${dir}/a.json`);
  Deno.writeFileSync(`${dir}/a.json.tmp-1-deadbeef`, new TextEncoder().encode("{"));
  assert.equal(await checkpointExists(`${dir}/a`), false);
  await assertRejects(() => loadCheckpoint(`${dir}/a`), `${dir}/a.json`, "not found");
  // a marker from one save next to weights from another is detected
  await saveCheckpoint(`${dir}/b`, weights(1), { step: 1 });
  const oldMarker = await Deno.readTextFile(`${dir}/b.json`);
  await saveCheckpoint(`${dir}/b`, weights(1), { step: 2 });
  await Deno.writeTextFile(`${dir}/b.json`, oldMarker);
  await assertRejects(() => loadCheckpoint(`${dir}/b`), `${dir}/b.safetensors`, "different saves");
  // truncated weights under a valid marker
  await saveCheckpoint(`${dir}/c`, weights(1), {});
  const full = await Deno.readFile(`${dir}/c.safetensors`);
  await Deno.writeFile(`${dir}/c.safetensors`, full.subarray(0, full.length - 4));
  await assertRejects(() => loadCheckpoint(`${dir}/c`), `${dir}/c.safetensors`, "size");
  await assert.rejects(() => saveCheckpoint(`${dir}/d`, weights(1), { n: 1n }), /meta is not JSON/);
  assert.equal(await checkpointExists(`${dir}/d`), false);
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
