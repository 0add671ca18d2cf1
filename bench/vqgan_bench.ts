/**
 * VQGAN decode at MAGE's size (16x16 codes -> one 256x256 image, 54.5M-parameter VQGAN,
 * random weights) and stage-2 MaskGIT decoding of 8 images (8 steps, a `small` 4 x 128
 * transformer, 256 + 1 + 256 tokens, 1024 codes, 8192 clusters), each against PyTorch on
 * the CPU with 2 threads in the same run; and one VQGAN training step (forward, backward,
 * Adam) at the demo's size (tasks/demo.yaml: cpu32 preset, ch 64, ch_mult [1], no res
 * blocks, z 16, l2 codes, patch 4, no norm, 512 codes; batch 32 of 32x32) against the same
 * model in PyTorch. Ours and PyTorch alternate (bench/peer.ts `interleave`) for --repeats
 * rounds (at least 3); ratios are ours / torch seconds, median [min, max] over the rounds.
 *
 * With --device webgpu only the decode runs, on the WebGPU backend (no peer); --decode-preset
 * names a smaller VQGAN preset for a quick check (the grid is then that preset's).
 *
 *   deno run -A bench/vqgan_bench.ts [--repeats 3] [--skip-decode] [--skip-nar] [--skip-train]
 *     [--device cpu|webgpu] [--decode-preset mage]
 */

import { parseArgs } from "node:util";
import { backward } from "../core/autograd.ts";
import { blasDescription } from "../core/native/openblas.ts";
import * as ops from "../core/ops/mod.ts";
import { AdamW } from "../core/optim/mod.ts";
import { Rng } from "../core/random.ts";
import { tidy } from "../core/tensor.ts";
import { sampleNAR } from "../plugins/stage2/maskgit.ts";
import { STAGE2_PRESETS, Stage2Model } from "../plugins/stage2/model.ts";
import { VQGAN, VQGAN_PRESETS } from "../plugins/vqgan/vqgan.ts";
import { interleave, median, PeerProcess, timed } from "./peer.ts";
import { setDefaultBackend } from "../core/device.ts";
import { createWebGPUBackend, probeWebGPU } from "../core/backends/webgpu/mod.ts";

const { values } = parseArgs({
  options: {
    repeats: { type: "string", default: "3" },
    "skip-decode": { type: "boolean", default: false },
    "skip-nar": { type: "boolean", default: false },
    "skip-train": { type: "boolean", default: false },
    device: { type: "string", default: "cpu" },
    "decode-preset": { type: "string", default: "mage" },
  },
});
const repeats = Number(values.repeats);
if (values.device === "webgpu") {
  await decodeOnWebGPU();
  Deno.exit(0);
} else if (values.device !== "cpu") {
  throw new Error(`vqgan bench: --device must be cpu or webgpu, got ${values.device}`);
}
console.log(`VQGAN / MaskGIT bench; BLAS: ${blasDescription()}`);

/** VQGAN decode on the WebGPU backend: seconds per image (median of --repeats, >= 3). */
async function decodeOnWebGPU(): Promise<void> {
  const probe = await probeWebGPU();
  if (!probe.available) {
    console.log(`vqgan bench: skipped (${probe.description})`);
    return;
  }
  setDefaultBackend(await createWebGPUBackend({ allowFallbackAdapter: true }));
  const cfg = VQGAN_PRESETS[values["decode-preset"]];
  if (!cfg) throw new Error(`vqgan bench: no preset ${values["decode-preset"]}`);
  const model = new VQGAN(cfg, new Rng(1));
  model.eval();
  const g = new Rng(2), side = model.gridSize;
  const grid = {
    tokens: Int32Array.from({ length: side * side }, () => g.int(cfg.nEmbed)),
    count: 1,
    height: side,
    width: side,
  };
  await model.decode(grid); // warm-up: pipelines compile
  const times: number[] = [];
  for (let i = 0; i < Math.max(3, repeats); i++) times.push(await timed(() => model.decode(grid)));
  model.dispose();
  const s = median(times);
  console.log(
    `VQGAN decode (${
      values["decode-preset"]
    }) ${side}x${side} codes -> ${cfg.resolution}x${cfg.resolution}, ` +
      `batch 1 on webgpu (${probe.description}): ${(s * 1000).toFixed(1)} ms/image, ` +
      `${(1 / s).toFixed(2)} images/s (median of ${times.length})`,
  );
}

// ---------------------------------------------------------------- VQGAN decode, MAGE size

const DECODE_PEER = `
import json, time, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(2)
CH, MULT, NB, Z = 128, (1, 1, 2, 2, 4), 2, 256
norm = lambda c: nn.GroupNorm(32, c, eps=1e-6)
class Block(nn.Module):
    def __init__(s, i, o):
        super().__init__(); s.n1, s.c1, s.n2, s.c2 = norm(i), nn.Conv2d(i, o, 3, 1, 1, bias=False), norm(o), nn.Conv2d(o, o, 3, 1, 1, bias=False)
        s.nin = nn.Conv2d(o, o, 1, bias=False) if i != o else None
    def forward(s, x):
        h = s.c2(F.silu(s.n2(s.c1(F.silu(s.n1(x))))))
        return h + s.nin(h) if s.nin is not None else x + h
class Decoder(nn.Module):
    def __init__(s):
        super().__init__(); c = CH * MULT[-1]; s.conv_in = nn.Conv2d(Z, c, 3, 1, 1); s.mid = nn.Sequential(Block(c, c), Block(c, c))
        s.levels = nn.ModuleList()
        for i in reversed(range(len(MULT))):
            blocks = []
            for _ in range(NB): blocks.append(Block(c, CH * MULT[i])); c = CH * MULT[i]
            s.levels.append(nn.ModuleList([nn.Sequential(*blocks), nn.Conv2d(c, c, 3, 1, 1) if i else nn.Identity()]))
        s.norm_out, s.conv_out = norm(c), nn.Conv2d(c, 3, 3, 1, 1)
    def forward(s, z):
        h = s.mid(s.conv_in(z))
        for i, (blocks, up) in enumerate(s.levels):
            h = blocks(h)
            if i < len(s.levels) - 1: h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return s.conv_out(F.silu(s.norm_out(h)))
dec, codebook = Decoder().eval(), torch.randn(1024, Z)
ids = torch.randint(0, 1024, (1, 256))
@torch.no_grad()
def measure():
    t = time.perf_counter()
    x = dec(codebook[ids].view(1, 16, 16, Z).permute(0, 3, 1, 2).contiguous())
    img = (x.clamp(0, 1) * 255).to(torch.uint8)
    return {"seconds": time.perf_counter() - t}
`;

if (!values["skip-decode"]) {
  const model = new VQGAN(VQGAN_PRESETS.mage, new Rng(1));
  model.eval();
  const g = new Rng(2);
  const grid = {
    tokens: Int32Array.from({ length: 256 }, () => g.int(1024)),
    count: 1,
    height: 16,
    width: 16,
  };
  const peer = await PeerProcess.start("torch", DECODE_PEER);
  await interleave(
    `VQGAN decode 16x16 codes -> 256x256 (MAGE size, decoder ${
      (30_478_339 / 1e6).toFixed(1)
    }M params), batch 1, s/image`,
    repeats,
    () => timed(() => model.decode(grid)),
    peer,
  );
  await peer?.close();
  model.dispose();
}

// ---------------------------------------------------------------- MaskGIT decoding, small size

const P = 256, L = 256, B = 8, STEPS = 8, CODES = 1024, CLUSTERS = 8192;
const small = STAGE2_PRESETS.small;

const NAR_PEER = `
import json, math, time, torch, torch.nn.functional as F
torch.set_num_threads(2); torch.manual_seed(0)
NL, D, H, FF, V, K, P, L, B, T = ${small.layers}, ${small.dim}, ${small.heads}, ${small.ffnDim}, ${
  CODES + 5
}, ${CLUSTERS + 5}, ${P}, ${L}, ${B}, ${STEPS}
r = lambda *s: torch.randn(*s) * 0.02
W = {"emb": r(V + K, D), "pos1": r(1026, D), "pos": r(1026, D), "out": r(V, D), "ln": (torch.ones(D), torch.zeros(D))}
layers = [dict(qkv=r(3 * D, D), qkvb=r(3 * D), o=r(D, D), ob=r(D), f1=r(FF, D), f1b=r(FF), f2=r(D, FF), f2b=r(D),
               ln1=(torch.ones(D), torch.zeros(D)), ln2=(torch.ones(D), torch.zeros(D))) for _ in range(NL)]
def forward(tok):
    x = F.embedding(tok, W["emb"]) * math.sqrt(D) + torch.cat([W["pos1"][2:2 + P], W["pos"][2:2 + L + 1]])[None]
    for l in layers:
        h = F.layer_norm(x, (D,), *l["ln1"])
        q, k, v = F.linear(h, l["qkv"], l["qkvb"]).view(B, -1, 3, H, D // H).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // H), -1) @ v
        x = x + F.linear(a.transpose(1, 2).reshape(B, -1, D), l["o"], l["ob"])
        x = x + F.linear(F.gelu(F.linear(F.layer_norm(x, (D,), *l["ln2"]), l["f1"], l["f1b"])), l["f2"], l["f2b"])
    return F.linear(F.layer_norm(x[:, P + 1:], (D,), *W["ln"]), W["out"])
def decode():
    sem = torch.randint(V + 5, V + K, (B, P))
    codes = torch.full((B, L), 3)
    for s in range(T):
        masked = codes.eq(3)
        logits = forward(torch.cat([sem, torch.full((B, 1), 2), codes], 1))
        logits[..., :5] = -math.inf
        drawn = torch.distributions.Categorical(logits=logits).sample()
        logp = torch.log_softmax(logits, -1).gather(-1, drawn[..., None])[..., 0]
        codes = torch.where(masked, drawn, codes)
        if s < T - 1:
            ratio = (s + 1) / T
            conf = torch.where(masked, logp + 4.5 * (1 - ratio) * -torch.log(-torch.log(torch.rand(B, L))), torch.tensor(math.inf))
            n = max(1, min(int(masked.sum(1).min()) - 1, math.floor(L * math.cos(math.pi / 2 * ratio))))
            cut = conf.sort(-1).values[:, n - 1:n]
            codes = codes.masked_fill(conf <= cut, 3)
    return codes
@torch.no_grad()
def measure():
    t = time.perf_counter(); decode(); return {"seconds": time.perf_counter() - t}
`;

if (!values["skip-nar"]) {
  const model = new Stage2Model({
    variant: "nar",
    clusters: CLUSTERS,
    codebookSize: CODES,
    prefixLength: P,
    length: L,
    ...small,
    dropout: 0,
  }, new Rng(3));
  const g = new Rng(4);
  const sem = {
    tokens: Int32Array.from({ length: B * P }, () => g.int(CLUSTERS)),
    count: B,
    height: 16,
    width: 16,
  };
  tidy(() =>
    model.forward(ops.tensor(new Int32Array(P + L + 1).fill(2), [1, P + L + 1], { dtype: "i32" }))
  );
  const peer = await PeerProcess.start("torch", NAR_PEER);
  await interleave(
    `MaskGIT decoding, ${STEPS} steps, batch ${B}, ${small.layers} layers x ${small.dim} (sequence ${
      P + 1 + L
    }, ${CODES} codes), s/batch`,
    repeats,
    () => timed(() => sampleNAR(model, sem, { seed: 1, steps: STEPS })),
    peer,
  );
  await peer?.close();
  model.dispose();
}

// ---------------------------------------------------------------- VQGAN train step, demo size

const TB = 32, RES = 32, PATCH = 4, TCH = 64, TZ = 16, TCODES = 512;

const TRAIN_PEER = `
import json, time, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(2); torch.manual_seed(0)
B, R, P, CH, Z, N = ${TB}, ${RES}, ${PATCH}, ${TCH}, ${TZ}, ${TCODES}
class Block(nn.Module):  # norm none: x + conv2(silu(conv1(silu(x))))
    def __init__(s):
        super().__init__(); s.c1, s.c2 = nn.Conv2d(CH, CH, 3, 1, 1, bias=False), nn.Conv2d(CH, CH, 3, 1, 1, bias=False)
        nn.init.zeros_(s.c2.weight)
    def forward(s, x): return x + s.c2(F.silu(s.c1(F.silu(x))))
l2 = lambda t, d: t / t.norm(dim=d, keepdim=True).clamp_min(1e-6)
class VQGAN(nn.Module):
    def __init__(s):
        super().__init__()
        s.enc = nn.Sequential(nn.Conv2d(3 * P * P, CH, 3, 1, 1, bias=False), Block(), Block(), nn.Conv2d(CH, Z, 1))
        s.dec = nn.Sequential(nn.Conv2d(Z, CH, 3, 1, 1), Block(), Block(), nn.Conv2d(CH, 3 * P * P, 3, 1, 1))
        s.codes = nn.Embedding(N, Z); nn.init.uniform_(s.codes.weight, -1 / N, 1 / N)
    def forward(s, x):
        u = l2(s.enc(F.pixel_unshuffle(x, P)), 1)
        e_tab = l2(s.codes.weight, 1)
        rows = u.permute(0, 2, 3, 1).reshape(-1, Z)
        with torch.no_grad():
            idx = ((rows * rows).sum(1, keepdim=True) + (e_tab * e_tab).sum(1) - 2 * rows @ e_tab.t()).argmin(1)
        e = e_tab[idx].view(u.shape[0], u.shape[2], u.shape[3], Z).permute(0, 3, 1, 2)
        cb, commit = F.mse_loss(e, u.detach()), F.mse_loss(u, e.detach())
        rec = F.pixel_shuffle(s.dec(u + (e - u).detach()), P)
        return F.mse_loss(rec, x) + cb + 0.25 * commit
m = VQGAN(); opt = torch.optim.AdamW(m.parameters(), lr=3e-3, betas=(0.5, 0.9), weight_decay=0)
x = torch.rand(B, 3, R, R)
def measure():
    t = time.perf_counter()
    loss = m(x); opt.zero_grad(); loss.backward(); opt.step()
    return {"seconds": time.perf_counter() - t}
`;

if (!values["skip-train"]) {
  const model = new VQGAN({
    ...VQGAN_PRESETS.cpu32,
    ch: TCH,
    chMult: [1],
    numResBlocks: 0,
    zChannels: TZ,
    embedDim: TZ,
    l2Codes: true,
    patch: PATCH,
    norm: "none",
    nEmbed: TCODES,
  }, new Rng(5));
  const opt = new AdamW(model.parameters(), { lr: 3e-3, betas: [0.5, 0.9], weightDecay: 0 });
  const x = ops.rand([TB, 3, RES, RES], new Rng(6));
  const step = () => {
    tidy(() => {
      const { reconstruction, vq } = model.forward(x);
      const loss = ops.add(
        ops.mean(ops.square(ops.sub(reconstruction, x))),
        model.quantize.loss(vq),
      );
      backward(loss);
    });
    opt.update();
    opt.zeroGrad();
  };
  const peer = await PeerProcess.start("torch", TRAIN_PEER);
  await interleave(
    `VQGAN train step (demo size: ${RES}x${RES}, patch ${PATCH}, ch ${TCH}, no res blocks, ` +
      `z ${TZ}, l2 codes, ${TCODES} codes, norm none; batch ${TB}; AdamW)`,
    repeats,
    () => timed(step),
    peer,
  );
  await peer?.close();
  x.dispose();
  opt.dispose();
  model.dispose();
}
