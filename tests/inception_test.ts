/**
 * The FID Inception-v3 against PyTorch (tests/fixtures/make_inception_fixtures.py): torchvision's
 * Inception3 with the FID patches, full size, with hash-generated weights that both sides build
 * bit-identically. Tolerances:
 *  - state-dict keys and shapes: identical to torch's (less num_batches_tracked);
 *  - TF1 resize of the uint8 inputs to 299: exact (sha256 of the float32 planes);
 *  - pool3 and logits_unbiased: max abs error <= 1e-5 x the largest |value|. Measured: pool3
 *    9.5e-6 abs (2.7e-7 relative, values up to 35), logits 5.7e-6 abs (3.9e-7 relative); torch's
 *    own float32-vs-float64 error on the same input is 8.4e-6 / 6.4e-6 abs. The difference comes
 *    from folding BatchNorm into the convolutions and from GEMM summation order.
 * Plus the weight loader's errors on missing, foreign and damaged files.
 */

import { expect, it } from "./lib/test.ts";
import { encodeNpz } from "../core/io/npy.ts";
import type { StateDict } from "../core/io/host_tensor.ts";
import { loadStateDict } from "../core/io/state_dict.ts";
import { FidInceptionV3, INCEPTION_CLASSES, POOL3_DIM } from "../plugins/inception/model.ts";
import { inceptionInput, resizeForInception } from "../plugins/inception/preprocess.ts";
import { syntheticInceptionWeights } from "../plugins/inception/synthetic_weights.ts";
import {
  loadFidInception,
  loadInceptionStateDict,
  WEIGHT_FILES,
} from "../plugins/inception/weights.ts";

const DIR = new URL("./fixtures/inception/", import.meta.url).pathname;
const meta = JSON.parse(await Deno.readTextFile(DIR + "inception.json"));
const io = await loadStateDict(DIR + "inception_io.npz");
const [N, H, W] = meta.image_shape as number[];
const images = { data: Uint8Array.from(io.get("images")!.data), count: N, height: H, width: W };
const torchKeys = (meta.state_dict as [string, number[]][]).filter(([k]) =>
  !k.endsWith("num_batches_tracked")
);

async function sha256(data: Float32Array): Promise<string> {
  const bytes = new Uint8Array(data.byteLength);
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function relativeError(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
): { maxAbs: number; relative: number } {
  expect(got.length).toBe(want.length);
  let maxAbs = 0, scale = 0;
  for (let i = 0; i < got.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return { maxAbs, relative: maxAbs / scale };
}

/** The synthetic weights, with the extras a torch-saved file carries. */
function fixtureWeights(
  model: FidInceptionV3,
  extras: { counters?: boolean; prefix?: string } = {},
): StateDict {
  const sd = syntheticInceptionWeights(
    [...model.stateDict()].map(([k, t]) => [k, t.shape]),
    meta.seed,
  );
  const out: StateDict = new Map();
  for (const [k, v] of sd) {
    out.set((extras.prefix ?? "") + k, v);
    if (extras.counters && k.endsWith("bn.running_var")) {
      const counter = k.replace(/running_var$/, "num_batches_tracked");
      out.set((extras.prefix ?? "") + counter, {
        dtype: "i32",
        shape: [],
        data: new Int32Array(1),
        sourceDtype: "i64",
      });
    }
  }
  return out;
}

it("state-dict keys and shapes are torchvision's FID Inception3 keys", () => {
  const model = new FidInceptionV3();
  const ours = [...model.stateDict()].map(([k, t]) => [k, [...t.shape]]);
  expect(new Map(ours as [string, number[]][])).toEqual(new Map(torchKeys));
  expect(ours.length).toBe(94 * 5 + 2);
  model.dispose();
});

it("TF1 bilinear resize of the uint8 inputs to 299 matches torch-fidelity's formula exactly", async () => {
  const resized = resizeForInception(images);
  expect(resized.length).toBe(N * 3 * 299 * 299);
  expect(Array.from(resized.subarray(100 * 299 + 150, 100 * 299 + 153))).toEqual(
    meta.resized_sample.slice(0, 3),
  );
  expect(await sha256(resized)).toBe(meta.resized_sha256);
});

it("pool3 features and unbiased logits match PyTorch (loaded through a weight file)", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    // A torch-saved file has num_batches_tracked counters; an .npz under the official name
    // exercises folder lookup, format sniffing and key normalisation.
    const probe = new FidInceptionV3();
    const sd = fixtureWeights(probe, { counters: true });
    probe.dispose();
    await Deno.writeFile(`${tmp}/${WEIGHT_FILES["pytorch-fid"].file}`, encodeNpz(sd));
    const model = await loadFidInception(tmp);
    const x = inceptionInput(images);
    const { pool3, logitsUnbiased } = model.forward(x);
    expect(pool3.shape).toEqual([N, POOL3_DIM]);
    expect(logitsUnbiased.shape).toEqual([N, INCEPTION_CLASSES]);
    const p = relativeError(pool3.dataSync(), io.get("pool3")!.data);
    const l = relativeError(logitsUnbiased.dataSync(), io.get("logits_unbiased")!.data);
    console.log(
      `pool3: max abs ${p.maxAbs.toExponential(2)} (relative ${p.relative.toExponential(2)}); ` +
        `logits_unbiased: max abs ${l.maxAbs.toExponential(2)} (relative ${
          l.relative.toExponential(2)
        })`,
    );
    expect(p.relative, `pool3 relative error ${p.relative}`).toBeLessThanOrEqual(1e-5);
    expect(l.relative, `logits relative error ${l.relative}`).toBeLessThanOrEqual(1e-5);
    for (const t of [x, pool3, logitsUnbiased]) t.dispose();
    model.dispose();
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

it("key normalisation: DataParallel 'module.' prefix and num_batches_tracked are accepted", async () => {
  const model = new FidInceptionV3();
  await loadInceptionStateDict(
    model,
    fixtureWeights(model, { counters: true, prefix: "module." }),
    "wrapped.pth",
  );
  expect(model.ready).toBeTruthy();
  model.dispose();
});

async function loadError(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected an error");
}

it("weight loader: clear errors for missing, foreign and damaged files", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    let msg = await loadError(() => loadFidInception(`${tmp}/nope.pth`));
    expect(msg).toMatch(/nope\.pth' does not exist/);
    expect(msg).toMatch(/pt_inception-2015-12-05-6726825d\.pth/);

    msg = await loadError(() => loadFidInception(tmp));
    expect(msg).toMatch(/holds none of the known files/);

    // A real torch.save file with the official names, but only the stem.
    msg = await loadError(() => loadFidInception(`${DIR}partial_inception.pth`));
    expect(msg).toMatch(/only 5 of the 472 expected keys are present/);
    expect(msg).toMatch(/missing 'Conv2d_2a_3x3\.conv\.weight'/);

    await Deno.writeTextFile(`${tmp}/notes.pth`, "not a checkpoint\n");
    msg = await loadError(() => loadFidInception(`${tmp}/notes.pth`));
    expect(msg).toMatch(/notes\.pth: cannot read/);

    const model = new FidInceptionV3();
    const good = fixtureWeights(model);
    const tiny = (shape: number[]) => ({
      dtype: "f32" as const,
      shape,
      data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
      sourceDtype: "f32",
    });

    const torchvision = new Map(good);
    torchvision.set("AuxLogits.conv0.conv.weight", tiny([128, 768, 1, 1]));
    msg = await loadError(() =>
      loadInceptionStateDict(model, torchvision, "inception_v3_google.pth")
    );
    expect(msg).toMatch(/torchvision's ImageNet Inception-v3/);

    const wrapper: StateDict = new Map([["blocks.0.0.conv.weight", tiny([32, 3, 3, 3])]]);
    msg = await loadError(() => loadInceptionStateDict(model, wrapper, "wrapper.pth"));
    expect(msg).toMatch(/pytorch-fid's InceptionV3 feature wrapper/);

    const badShape = new Map(good);
    badShape.set("Mixed_6b.branch7x7_2.conv.weight", tiny([128, 128, 7, 1]));
    msg = await loadError(() => loadInceptionStateDict(model, badShape, "edited.pth"));
    expect(msg).toMatch(
      /Mixed_6b\.branch7x7_2\.conv\.weight: expected \[128,128,1,7\], got \[128,128,7,1\]/,
    );

    const noFc = new Map(good);
    noFc.delete("fc.weight");
    msg = await loadError(() => loadInceptionStateDict(model, noFc, "nofc.pth"));
    expect(msg).toMatch(/missing keys \(1\): fc\.weight/);

    const dinov2 = await loadStateDict(
      new URL("./fixtures/dinov2/tiny_vit.pth", import.meta.url).pathname,
    );
    msg = await loadError(() => loadInceptionStateDict(model, dinov2, "tiny_vit.pth"));
    expect(msg).toMatch(/not an FID Inception-v3 state dict: only 0 of the 472/);

    const x = inceptionInput(images);
    expect(() => model.forward(x)).toThrow(/not prepared; call prepare\(\) after loading/);
    x.dispose();
    model.dispose();
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

it("inceptionInput rejects malformed batches", () => {
  expect(() => inceptionInput({ data: new Uint8Array(10), count: 1, height: 2, width: 2 })).toThrow(
    /need 12 bytes, got 10/,
  );
  expect(() => inceptionInput(images, 1, 1)).toThrow(/bad range \[1, 1\)/);
});
