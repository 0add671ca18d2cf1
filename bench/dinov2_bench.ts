/**
 * DINOv2 ViT-B/14-reg4 forward at 224x224 (random weights), images/s:
 *   - ours: the full forward (12 blocks + norm) and DiGIT's "l3" features (10 blocks),
 *   - PyTorch CPU (torch.set_num_threads(2)) running the same network in plain torch ops,
 *     measured in the same run through /usr/bin/python3 (skipped if absent),
 * and the ratio ours/PyTorch.
 *
 * With --device webgpu the model runs on the WebGPU backend (a software adapter too) and
 * the images/s are ours on that device; --size picks another image side (a multiple of 14)
 * and --no-peer skips PyTorch.
 *
 *   deno run -A bench/dinov2_bench.ts [--batch 8] [--reps 3] [--arch vitb14_reg]
 *     [--device cpu|webgpu] [--size 224] [--no-peer]
 */

import { parseArgs } from "node:util";
import { noGrad } from "../core/autograd.ts";
import * as ops from "../core/ops/mod.ts";
import { Rng } from "../core/random.ts";
import { type Tensor, tidy } from "../core/tensor.ts";
import { setDefaultBackend } from "../core/device.ts";
import { createWebGPUBackend, probeWebGPU } from "../core/backends/webgpu/mod.ts";
import { blasDescription } from "../core/native/openblas.ts";
import { DINOV2_PRESETS } from "../plugins/dinov2/config.ts";
import { DinoVisionTransformer } from "../plugins/dinov2/vision_transformer.ts";

const PYTHON = "/usr/bin/python3";
const { values } = parseArgs({
  args: Deno.args,
  options: {
    batch: { type: "string", default: "8" },
    reps: { type: "string", default: "3" },
    arch: { type: "string", default: "vitb14_reg" },
    device: { type: "string", default: "cpu" },
    size: { type: "string", default: "224" },
    "no-peer": { type: "boolean", default: false },
  },
});
const side = Number(values.size);
let deviceLabel = `BLAS: ${blasDescription()}`;
if (values.device === "webgpu") {
  const probe = await probeWebGPU();
  if (!probe.available) {
    console.log(`dinov2 bench: skipped (${probe.description})`);
    Deno.exit(0);
  }
  setDefaultBackend(await createWebGPUBackend({ allowFallbackAdapter: true }));
  deviceLabel = `webgpu: ${probe.description}`;
} else if (values.device !== "cpu") {
  throw new Error(`dinov2 bench: --device must be cpu or webgpu, got ${values.device}`);
}
const B = Number(values.batch), reps = Number(values.reps);
const cfg = DINOV2_PRESETS[values.arch];
if (!cfg) throw new Error(`unknown arch ${values.arch}`);

/** Small random weights so activations stay finite (the speed does not depend on them). */
function randomize(m: DinoVisionTransformer): void {
  const gen = new Rng(0);
  const sd = new Map();
  for (const [k, t] of m.stateDict()) {
    const data = new Float32Array(t.size);
    if (
      k.endsWith("norm1.weight") || k.endsWith("norm2.weight") || k === "norm.weight" ||
      k.endsWith(".gamma")
    ) data.fill(1);
    else gen.fillNormal(data, 0, 0.02);
    sd.set(k, { dtype: "f32", shape: [...t.shape], data, sourceDtype: "f32" });
  }
  m.loadStateDict(sd);
}

async function timeIt(fn: () => Promise<void>): Promise<number> {
  await fn(); // warm-up (also caches the position table)
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best / 1000;
}

/** Runs fn under noGrad in a tidy scope and reads its result back (the end of the work). */
async function readBack(fn: () => Tensor): Promise<void> {
  const out = tidy(() => noGrad(fn));
  await out.data();
  out.dispose();
}

const model = new DinoVisionTransformer(cfg);
randomize(model);
model.eval();
const input = ops.randn([B, 3, side, side], new Rng(1)).keep();
const full = await timeIt(() => readBack(() => model.forwardFeatures(input).patches));
const l3 = await timeIt(() => readBack(() => model.patchFeatures(input, cfg.depth - 3)));
console.log(`DINOv2 ${cfg.name}, batch ${B}, ${side}x${side}, best of ${reps} (${deviceLabel})`);
console.log(
  `  ours   full forward: ${(B / full).toFixed(2)} images/s (${(full * 1000).toFixed(0)} ms/batch)`,
);
console.log(
  `  ours   l3 features : ${(B / l3).toFixed(2)} images/s (${(l3 * 1000).toFixed(0)} ms/batch)`,
);

const TORCH_SCRIPT = `
import json, sys, time, torch
import torch.nn.functional as F
torch.set_num_threads(2)
B, reps, D, depth, heads, reg = (int(a) for a in sys.argv[1:7])
torch.manual_seed(0)
r = lambda *s: torch.randn(*s) * 0.02
blocks = [dict(n1w=torch.ones(D), n1b=torch.zeros(D), qkv=r(3*D, D), qkvb=r(3*D), proj=r(D, D), projb=r(D), g1=torch.ones(D),
               n2w=torch.ones(D), n2b=torch.zeros(D), fc1=r(4*D, D), fc1b=r(4*D), fc2=r(D, 4*D), fc2b=r(D), g2=torch.ones(D))
          for _ in range(depth)]
pe_w, pe_b, cls, regt, pos = r(D, 3, 14, 14), r(D), r(1, 1, D), r(1, reg, D), r(1, 1370, D)
nw, nb = torch.ones(D), torch.zeros(D)
def block(x, p):
    Bn, N, C = x.shape
    h = F.layer_norm(x, (C,), p["n1w"], p["n1b"], 1e-6)
    qkv = F.linear(h, p["qkv"], p["qkvb"]).reshape(Bn, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * (C // heads) ** -0.5, qkv[1], qkv[2]
    a = ((q @ k.transpose(-2, -1)).softmax(-1) @ v).transpose(1, 2).reshape(Bn, N, C)
    x = x + F.linear(a, p["proj"], p["projb"]) * p["g1"]
    h = F.layer_norm(x, (C,), p["n2w"], p["n2b"], 1e-6)
    return x + F.linear(F.gelu(F.linear(h, p["fc1"], p["fc1b"])), p["fc2"], p["fc2b"]) * p["g2"]
def forward(x, upto):
    t = F.conv2d(x, pe_w, pe_b, stride=14).flatten(2).transpose(1, 2)
    grid = pos[:, 1:].reshape(1, 37, 37, D).permute(0, 3, 1, 2)
    pp = F.interpolate(grid, scale_factor=(16.1 / 37, 16.1 / 37), mode="bicubic").permute(0, 2, 3, 1).reshape(1, -1, D)
    t = torch.cat((cls.expand(x.shape[0], -1, -1) + pos[:, :1], t + pp), 1)
    t = torch.cat((t[:, :1], regt.expand(x.shape[0], -1, -1), t[:, 1:]), 1)
    for p in blocks[:upto]:
        t = block(t, p)
    return F.layer_norm(t, (D,), nw, nb, 1e-6)
x = torch.randn(B, 3, 224, 224)
out = {"torch": torch.__version__}
with torch.no_grad():
    for name, upto in (("full", depth), ("l3", depth - 2)):
        forward(x, upto)
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter(); forward(x, upto); best = min(best, time.perf_counter() - t0)
        out[name] = best
print(json.dumps(out))
`;

async function torchPeer(): Promise<{ torch: string; full: number; l3: number } | string> {
  try {
    await Deno.stat(PYTHON);
  } catch {
    return `${PYTHON} not found`;
  }
  const args = [B, reps, cfg.embedDim, cfg.depth, cfg.heads, cfg.registers].map(String);
  const r = await new Deno.Command(PYTHON, {
    args: ["-c", TORCH_SCRIPT, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    return `python failed: ${new TextDecoder().decode(r.stderr).trim().split("\n").pop()}`;
  }
  return JSON.parse(new TextDecoder().decode(r.stdout));
}

const peer = values["no-peer"] || side !== 224 ? "--no-peer or --size" : await torchPeer();
if (typeof peer === "string") {
  console.log(`  PyTorch: skipped (${peer})`);
} else {
  console.log(
    `  PyTorch ${peer.torch} (2 threads) full forward: ${
      (B / peer.full).toFixed(2)
    } images/s, l3: ${(B / peer.l3).toFixed(2)} images/s`,
  );
  console.log(
    `  ratio ours/PyTorch: full ${(peer.full / full).toFixed(2)}x, l3 ${
      (peer.l3 / l3).toFixed(2)
    }x`,
  );
}
input.dispose();
model.dispose();
