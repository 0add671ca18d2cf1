// Our checkpoints (safetensors + JSON commit marker) and the strict state-dict check.

import { expect, it } from "./lib/test.ts";
import { thrown } from "./lib/errors.ts";
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

it("saveCheckpoint/loadCheckpoint round trip with metadata; overwrite replaces both files", async () => {
  const dir = tempDir();
  const path = `${dir}/ckpt`;
  expect(await checkpointExists(path)).toBe(false);
  await saveCheckpoint(path, weights(1), { step: 100, lr: 0.5, name: "stage1" });
  expect(await checkpointExists(path)).toBe(true);
  const a = await loadCheckpoint(path);
  expect(a.meta).toEqual({ step: 100, lr: 0.5, name: "stage1" });
  expect([...a.weights.get("layer.weight")!.data]).toEqual([1, 2, 3, 4]);
  expect([...a.weights.get("layer.steps")!.data]).toEqual([1]);
  const first = filesIn(dir);
  expect(first.length).toBe(2);
  expect(first.includes("ckpt.json")).toBeTruthy();
  const firstWeights = first.find((n) => WEIGHTS_NAME.test(n));
  await saveCheckpoint(path, weights(3), { step: 200 });
  const b = await loadCheckpoint(path);
  expect(b.meta).toEqual({ step: 200 });
  expect([...b.weights.get("layer.weight")!.data]).toEqual([3, 6, 9, 12]);
  const second = filesIn(dir);
  expect(second.length, `old weights and temp files removed: ${second}`).toBe(2);
  const secondWeights = second.find((n) => WEIGHTS_NAME.test(n));
  expect(firstWeights && secondWeights, `weights files: ${first}, ${second}`).toBeTruthy();
  expect(secondWeights, "each save writes a new weights file").not.toBe(firstWeights);
  // the weights are an ordinary safetensors file
  expect([...(await loadStateDict(namedWeights(path))).keys()]).toEqual([
    "layer.weight",
    "layer.steps",
  ]);
});

it("a crash at any point of a save leaves the previous or the new checkpoint loadable", async () => {
  const dir = tempDir();
  const path = `${dir}/ckpt`;
  await saveCheckpoint(path, weights(1), { step: 1 });
  const snaps = new Map<SaveStep, string>();
  await saveCheckpoint(path, weights(2), { step: 2 }, {
    afterStep: (step) => void snaps.set(step, snapshot(dir)),
  });
  expect([...snaps.keys()]).toEqual([
    "weights-written",
    "marker-written",
    "committed",
    "cleaned",
  ]);
  const expectScale = { "weights-written": 1, "marker-written": 1, committed: 2, cleaned: 2 };
  for (const [step, snap] of snaps) {
    expect(await checkpointExists(`${snap}/ckpt`), step).toBe(true);
    expect(await scaleOf(`${snap}/ckpt`), `crash after ${step}`).toBe(expectScale[step]);
  }
  // a crash while the new weights were being written: a partial file beside the old checkpoint
  const early = snaps.get("weights-written")!;
  const partial = filesIn(early).filter((n) => WEIGHTS_NAME.test(n))
    .find((n) => `${early}/${n}` !== namedWeights(`${early}/ckpt`))!;
  const bytes = Deno.readFileSync(`${early}/${partial}`);
  Deno.writeFileSync(`${early}/${partial}`, bytes.subarray(0, 20));
  expect(await scaleOf(`${early}/ckpt`)).toBe(1);
  // the next save after a crash removes the strays (partial weights, old weights, temp marker)
  const late = snaps.get("marker-written")!;
  expect(filesIn(late).length, `old+new weights, marker, temp marker: ${filesIn(late)}`).toBe(4);
  for (const snap of [early, late]) {
    await saveCheckpoint(`${snap}/ckpt`, weights(5), { step: 5 });
    expect(filesIn(snap).length, `strays left: ${filesIn(snap)}`).toBe(2);
    expect(await scaleOf(`${snap}/ckpt`)).toBe(5);
  }
});

it("a save that fails part-way cleans up after itself and keeps the previous checkpoint", async () => {
  const dir = tempDir();
  const path = `${dir}/ckpt`;
  await saveCheckpoint(path, weights(1), { step: 1 });
  const before = filesIn(dir);
  for (const failAt of ["weights-written", "marker-written"] as SaveStep[]) {
    await expect(() =>
      saveCheckpoint(path, weights(2), {}, {
        afterStep: (step) => {
          if (step === failAt) throw new Error(`disk full after ${step}`);
        },
      })
    ).rejects.toThrow(/disk full/);
    expect(filesIn(dir), `after a failure at ${failAt}`).toEqual(before);
    expect(await scaleOf(path)).toBe(1);
  }
  // meta that JSON cannot hold is refused before anything is written
  await expect(() => saveCheckpoint(`${dir}/ckpt`, weights(1), { n: 1n })).rejects.toThrow(
    /meta is not JSON/,
  );
  expect(filesIn(dir), "a meta error writes nothing").toEqual(before);
});

it("loadCheckpoint refuses a marker without matching weights", async () => {
  const dir = tempDir();
  // no marker at all: weights alone (or a temp marker) are not a checkpoint
  await saveCheckpoint(`${dir}/a`, weights(1), {});
  await Deno.remove(`${dir}/a.json`);
  Deno.writeFileSync(`${dir}/a.json.tmp-1-deadbeef`, new TextEncoder().encode("{"));
  expect(await checkpointExists(`${dir}/a`)).toBe(false);
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
  expect(await checkpointExists(`${dir}/d`)).toBe(false);
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

it("a checkpoint in the earlier layout (<path>.safetensors) loads and is replaced cleanly", async () => {
  const dir = tempDir();
  const path = `${dir}/ckpt`;
  await saveCheckpoint(path, weights(4), { step: 4 });
  // rewrite it as the earlier layout wrote it: fixed weights name, recorded in the marker
  Deno.renameSync(namedWeights(path), `${path}.safetensors`);
  const marker = JSON.parse(Deno.readTextFileSync(`${path}.json`));
  marker.weights.file = "ckpt.safetensors";
  Deno.writeTextFileSync(`${path}.json`, JSON.stringify(marker));
  expect(await scaleOf(path)).toBe(4);
  await saveCheckpoint(path, weights(6), { step: 6 });
  expect(await scaleOf(path)).toBe(6);
  expect(filesIn(dir).length, `left: ${filesIn(dir)}`).toBe(2);
  expect(filesIn(dir).includes("ckpt.safetensors")).toBeFalsy();
});

it("checkStateDict reports missing, unexpected and mismatched keys; strict throws once with all", async () => {
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
  expect(report).toEqual({
    missing: ["norm.weight", "norm.bias"],
    unexpected: ["blocks.0.ls1.gamma"],
    mismatched: [{ key: "pos_embed", expected: [1, 1370, 8], got: [1, 5, 8] }],
  });
  const e = thrown(() => checkStateDict(expected, got, { strict: true, what: "DINOv2" }));
  expect(e).toBeInstanceOf(StateDictError);
  expect((e as StateDictError).report).toEqual(report);
  for (
    const s of [
      "DINOv2",
      "missing keys (2): norm.weight, norm.bias",
      "unexpected keys (1): blocks.0.ls1.gamma",
      "pos_embed: expected [1,1370,8], got [1,5,8]",
    ]
  ) {
    expect(e.message.includes(s), `"${e.message}" lacks "${s}"`).toBeTruthy();
  }
  const exact = new Map([...got].map(([k, t]) => [k, t.shape]));
  expect(checkStateDict(exact, got, { strict: true, what: "x" })).toEqual({
    missing: [],
    unexpected: [],
    mismatched: [],
  });
});
