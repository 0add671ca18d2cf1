/**
 * Image preprocessing throughput on the 100 ImageNet sample photos: JPEG decode,
 * Resize(256, bicubic), CenterCrop(224), ToTensor + Normalize (ours: normalizeBatch, what the
 * encoders use; the peer: T.ToTensor then T.Normalize) — ours vs PIL + torchvision
 * (torch.set_num_threads(1): both sides single-threaded) in the same run, on the same bytes
 * already in memory. Prints images/s per stage and overall (wall clock), the overall rate
 * by process CPU time ("cpu", steadier on a busy machine), and the ratio ours / peer.
 *
 *   deno run -A bench/image_bench.ts [--passes 3]
 *
 * `decode` uses what decodeImage uses (libjpeg-turbo through FFI where installed); the
 * `ts-jpeg` line times our bit-exact TypeScript decoder, the fallback, on its own.
 *
 * Skips cleanly when ../shared/data/imagenet-sample is absent, and skips the peer when
 * /usr/bin/python3 with torch/torchvision is missing.
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { decodeImage } from "../core/image/codec.ts";
import { decodeJpeg } from "../core/image/jpeg.ts";
import { jpegDescription } from "../core/native/turbojpeg.ts";
import type { RgbImage } from "../core/image/rgb.ts";
import { normalizeBatch } from "../core/image/pipelines.ts";
import { centerCrop, resizeShortSide } from "../core/image/transforms.ts";
import { runPeer } from "./peer.ts";

const { values } = parseArgs({ options: { passes: { type: "string", default: "3" } } });
const passes = Number(values.passes);
const dir = new URL("../../shared/data/imagenet-sample/", import.meta.url).pathname;

let names: string[] = [];
try {
  names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => /\.jpe?g$/i.test(n)).sort();
} catch {
  console.log(`image_bench: ${dir} absent, skipped`);
  Deno.exit(0);
}
const files = names.map((n) => Deno.readFileSync(dir + n));
const n = files.length;

/** Best-of-passes seconds per stage over all images. */
function runOurs() {
  const best = {
    decode: Infinity,
    resize: Infinity,
    crop: Infinity,
    tensor: Infinity,
    total: Infinity,
    cpu: Infinity,
  };
  for (let p = 0; p < passes + 1; p++) { // first pass warms up the JIT
    const t = { decode: 0, resize: 0, crop: 0, tensor: 0, total: 0, cpu: 0 };
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const img = decodeImage(files[i], names[i]);
      const t1 = performance.now();
      const r: RgbImage = resizeShortSide(img, 256, "bicubic");
      const t2 = performance.now();
      const c = centerCrop(r, 224);
      const t3 = performance.now();
      normalizeBatch({ count: 1, height: c.height, width: c.width, data: c.data });
      const t4 = performance.now();
      t.decode += t1 - t0;
      t.resize += t2 - t1;
      t.crop += t3 - t2;
      t.tensor += t4 - t3;
      t.total += t4 - t0;
    }
    const cpu = process.cpuUsage(cpu0);
    t.cpu = (cpu.user + cpu.system) / 1000;
    if (p > 0) {
      for (const k of Object.keys(best) as (keyof typeof t)[]) {
        best[k] = Math.min(best[k], t[k] / 1000);
      }
    }
  }
  return best;
}

const PEER = `
import glob, io, json, os, time
import torch, torchvision.transforms as T
from PIL import Image
torch.set_num_threads(1)
d = ${JSON.stringify(dir)}
names = sorted(f for f in os.listdir(d) if f.lower().endswith((".jpg", ".jpeg")))
blobs = [open(os.path.join(d, f), "rb").read() for f in names]
resize = T.Resize(256, interpolation=T.InterpolationMode.BICUBIC)
crop = T.CenterCrop(224)
norm = T.Compose([T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
best = dict(decode=1e9, resize=1e9, crop=1e9, tensor=1e9, total=1e9, cpu=1e9)
for p in range(${passes} + 1):
    t = dict(decode=0.0, resize=0.0, crop=0.0, tensor=0.0, total=0.0, cpu=0.0)
    cpu0 = time.process_time()
    for b in blobs:
        t0 = time.perf_counter()
        im = Image.open(io.BytesIO(b)).convert("RGB")
        t1 = time.perf_counter()
        r = resize(im)
        t2 = time.perf_counter()
        c = crop(r)
        t3 = time.perf_counter()
        norm(c)
        t4 = time.perf_counter()
        for k, v in (("decode", t1 - t0), ("resize", t2 - t1), ("crop", t3 - t2), ("tensor", t4 - t3), ("total", t4 - t0)):
            t[k] += v
    t["cpu"] = time.process_time() - cpu0
    if p > 0:
        best = {k: min(best[k], t[k]) for k in best}
print(json.dumps(best))
`;

/** Best-of-passes seconds to decode every photo with the TS decoder. */
function runTsDecoder(): number {
  let best = Infinity;
  for (let p = 0; p < passes + 1; p++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) decodeJpeg(files[i], names[i]);
    if (p > 0) best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

const ours = runOurs();
const tsDecode = runTsDecoder();
const peer = await runPeer("PIL+torchvision", PEER);
console.log(
  `${n} photos, best of ${passes} passes, single thread on both sides; JPEG: ${jpegDescription()}`,
);
for (const k of ["decode", "resize", "crop", "tensor", "total", "cpu"] as const) {
  const o = n / ours[k];
  const p = peer ? n / peer[k] : undefined;
  const ratio = p ? (o / p).toFixed(2) : "n/a";
  console.log(
    `${k.padEnd(7)} ours ${o.toFixed(1).padStart(8)} img/s   peer ${
      p ? p.toFixed(1).padStart(8) + " img/s" : "skipped"
    }   ratio ${ratio}`,
  );
}
const tsRate = n / tsDecode, peerDecode = peer ? n / peer.decode : undefined;
console.log(
  `ts-jpeg ours ${tsRate.toFixed(1).padStart(8)} img/s   peer ${
    peerDecode ? peerDecode.toFixed(1).padStart(8) + " img/s" : "skipped"
  }   ratio ${
    peerDecode ? (tsRate / peerDecode).toFixed(2) : "n/a"
  }   (the TS fallback decoder alone)`,
);
