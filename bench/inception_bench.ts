/**
 * FID Inception-v3 feature throughput: uint8 256x256 batches -> TF1 resize to 299 -> network ->
 * pool3 + logits on the host, ours (default backend) against PyTorch on the CPU with the same
 * thread count, in the same run on the same images. The torch peer is the network of
 * tests/fixtures/make_inception_fixtures.py (torchvision Inception3 + the FID patches + the TF1
 * resize). Weights are the hash-generated ones (speed does not depend on them). Prints both
 * rates (best of the repeats) and the ratio ours / torch (> 1: we are faster).
 *
 *   deno run -A bench/inception_bench.ts [--batch 8] [--size 256] [--repeats 3] [--threads 2]
 *
 * FID statistics + Frechet distance at 5000 x 2048 are benchmarked in bench/fid_bench.ts.
 * The peer is skipped (with a note) when /usr/bin/python3 with torch/torchvision is missing.
 */

import { parseArgs } from "node:util";
import { blasDescription } from "../core/native/openblas.ts";
import { uniformAt } from "../core/random.ts";
import { InceptionFeatureExtractor } from "../plugins/inception/extractor.ts";
import { FidInceptionV3 } from "../plugins/inception/model.ts";
import { syntheticInceptionWeights } from "../plugins/inception/synthetic_weights.ts";
import { loadInceptionStateDict } from "../plugins/inception/weights.ts";

const PYTHON = "/usr/bin/python3";
const { values } = parseArgs({
  options: {
    batch: { type: "string", default: "8" },
    size: { type: "string", default: "256" },
    repeats: { type: "string", default: "3" },
    threads: { type: "string", default: "2" },
  },
});
const batch = Number(values.batch), size = Number(values.size), repeats = Number(values.repeats);
const threads = Number(values.threads);

const data = new Uint8Array(batch * size * size * 3);
for (let i = 0; i < data.length; i++) data[i] = Math.floor(uniformAt(7, i) * 256);

async function ours(): Promise<number> {
  const model = new FidInceptionV3();
  await loadInceptionStateDict(
    model,
    syntheticInceptionWeights([...model.stateDict()].map(([k, t]) => [k, t.shape])),
    "synthetic",
  );
  const extractor = new InceptionFeatureExtractor(model, batch);
  let best = Infinity;
  for (let r = 0; r <= repeats; r++) {
    const images = { data, count: batch, height: size, width: size }; // a new object: no memo hit
    const t0 = performance.now();
    await extractor.extract(images);
    if (r > 0) best = Math.min(best, (performance.now() - t0) / 1000); // r = 0 warms up
  }
  extractor.dispose();
  return batch / best;
}

const PEER_SCRIPT = `
import sys, time, numpy as np, torch
sys.path.insert(0, sys.argv[1])
import make_inception_fixtures as fx
batch, size, repeats, threads = map(int, sys.argv[3:7])
torch.set_num_threads(threads)
x8 = torch.from_numpy(np.fromfile(sys.argv[2], dtype=np.uint8).reshape(batch, size, size, 3)).permute(0, 3, 1, 2)
net = fx.fid_inception()
best = float("inf")
with torch.no_grad():
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        x = (fx.tf1_resize(x8.to(torch.float32), 299, 299) - 128) / 128
        pool3, logits, _ = fx.pool3_and_logits(net, x)
        pool3.numpy(); logits.numpy()
        if r > 0: best = min(best, time.perf_counter() - t0)
print(batch / best)
`;

async function peer(): Promise<number | string> {
  const dir = await Deno.makeTempDir({ prefix: "inception_bench_" });
  try {
    await Deno.writeFile(`${dir}/images.u8`, data);
    const fixtures = new URL("../tests/fixtures/", import.meta.url).pathname;
    const out = await new Deno.Command(PYTHON, {
      args: [
        "-c",
        PEER_SCRIPT,
        fixtures,
        `${dir}/images.u8`,
        `${batch}`,
        `${size}`,
        `${repeats}`,
        `${threads}`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      return `python failed: ${new TextDecoder().decode(out.stderr).trim().split("\n").pop()}`;
    }
    return Number(new TextDecoder().decode(out.stdout).trim());
  } catch (e) {
    return `${PYTHON} not runnable (${e instanceof Error ? e.message : e})`;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

console.log(
  `Inception bench: batch ${batch} of ${size}x${size} uint8 -> 299 -> pool3 + logits; gemm: ${blasDescription()}`,
);
const oursRate = await ours();
console.log(`ours:  ${oursRate.toFixed(2)} images/s`);
const peerRate = await peer();
if (typeof peerRate === "string") console.log(`torch: skipped (${peerRate})`);
else {
  console.log(`torch: ${peerRate.toFixed(2)} images/s (CPU, ${threads} threads)`);
  console.log(`ratio ours/torch: ${(oursRate / peerRate).toFixed(2)}`);
}
