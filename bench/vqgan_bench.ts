/**
 * VQGAN decode at MAGE's size (16x16 codes -> one 256x256 image, 54.5M-parameter VQGAN,
 * random weights) and stage-2 MaskGIT decoding of 8 images (8 steps, a `small` 4 x 128
 * transformer, 256 + 1 + 256 tokens, 1024 codes, 8192 clusters), each against PyTorch on
 * the CPU with 2 threads in the same run. Prints images/s and ours / torch ratios.
 *
 *   deno run -A bench/vqgan_bench.ts [--repeats 2] [--skip-decode] [--skip-nar]
 */

import { parseArgs } from "node:util";
import { blasDescription } from "../core/native/openblas.ts";
import * as ops from "../core/ops/mod.ts";
import { Generator } from "../core/random.ts";
import { tidy } from "../core/tensor.ts";
import { sampleNAR } from "../plugins/stage2/maskgit.ts";
import { STAGE2_PRESETS, Stage2Model } from "../plugins/stage2/model.ts";
import { VQGAN, VQGAN_PRESETS } from "../plugins/vqgan/vqgan.ts";
import { bestOf, ratioLine, runPeer } from "./peer.ts";

const { values } = parseArgs({
  options: {
    repeats: { type: "string", default: "2" },
    "skip-decode": { type: "boolean", default: false },
    "skip-nar": { type: "boolean", default: false },
  },
});
const repeats = Number(values.repeats);
console.log(`VQGAN / MaskGIT bench; BLAS: ${blasDescription()}`);

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
best = 1e9
with torch.no_grad():
    for _ in range(${repeats}):
        t = time.perf_counter()
        x = dec(codebook[ids].view(1, 16, 16, Z).permute(0, 3, 1, 2).contiguous())
        img = (x.clamp(0, 1) * 255).to(torch.uint8)
        best = min(best, time.perf_counter() - t)
print(json.dumps({"seconds": best, "params": sum(p.numel() for p in dec.parameters())}))
`;

if (!values["skip-decode"]) {
  const model = new VQGAN(VQGAN_PRESETS.mage, new Generator(1));
  model.eval();
  const g = new Generator(2);
  const grid = {
    tokens: Int32Array.from({ length: 256 }, () => g.int(1024)),
    count: 1,
    height: 16,
    width: 16,
  };
  await model.decode(grid); // warm-up
  const ours = await bestOf(repeats, () => model.decode(grid));
  model.dispose();
  const peer = await runPeer("torch VQGAN decode", DECODE_PEER);
  console.log(
    `VQGAN decode 16x16 codes -> 256x256 (MAGE size, decoder ${
      (30_478_339 / 1e6).toFixed(1)
    }M params), batch 1:`,
  );
  ratioLine("  images/s", 1 / ours, peer ? 1 / peer.seconds : undefined, "img/s", true);
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
best = 1e9
with torch.no_grad():
    for _ in range(${repeats}):
        t = time.perf_counter(); decode(); best = min(best, time.perf_counter() - t)
print(json.dumps({"seconds": best}))
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
  }, new Generator(3));
  const g = new Generator(4);
  const sem = {
    tokens: Int32Array.from({ length: B * P }, () => g.int(CLUSTERS)),
    count: B,
    height: 16,
    width: 16,
  };
  tidy(() =>
    model.forward(ops.tensor(new Int32Array(P + L + 1).fill(2), [1, P + L + 1], { dtype: "i32" }))
  );
  const ours = await bestOf(repeats, () => sampleNAR(model, sem, { seed: 1, steps: STEPS }));
  model.dispose();
  const peer = await runPeer("torch MaskGIT decode", NAR_PEER);
  console.log(
    `MaskGIT decoding, ${STEPS} steps, batch ${B}, ${small.layers} layers x ${small.dim} (sequence ${
      P + 1 + L
    }, ${CODES} codes):`,
  );
  ratioLine("  images/s", B / ours, peer ? B / peer.seconds : undefined, "img/s", true);
}
