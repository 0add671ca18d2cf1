/**
 * One training step (forward, backward, AdamW) of a GPT with width 512, 8 layers, 8 heads,
 * vocab 8192, sequence 256, batch 4 — ours vs the same model in PyTorch CPU (2 threads).
 * Also stage-1 sampling tokens/s with the KV cache (batch 8, 256 tokens, small preset).
 * Ours and PyTorch alternate (bench/peer.ts `interleave`), --rounds times (at least 3);
 * the ratio is printed as median [min, max] over the rounds.
 *
 *   deno run -A bench/gpt_train_bench.ts [--rounds 3] [--skip-sample | --only-sample]
 */

import { parseArgs } from "node:util";

import { backward } from "../core/autograd.ts";
import { cpuBackend } from "../core/device.ts";
import * as ops from "../core/ops/mod.ts";
import { AdamW } from "../core/optim/mod.ts";
import { Rng } from "../core/random.ts";
import { tidy } from "../core/tensor.ts";
import { Stage1GPT } from "../plugins/stage1/model.ts";
import { sampleStage1 } from "../plugins/stage1/sampler.ts";
import { interleave, median, PeerProcess, timed } from "./peer.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "3" },
    "skip-sample": { type: "boolean", default: false },
    "only-sample": { type: "boolean", default: false },
  },
});
const rounds = Number(values.rounds);
const D = 512, L = 8, H = 8, V = 8192, T = 256, B = 4;
console.log(`backend: ${cpuBackend().description}`);
if (!values["only-sample"]) await benchTraining();
if (!values["skip-sample"]) await benchSampling();

/** One training step of the 512x8 GPT, ours vs PyTorch. */
async function benchTraining(): Promise<void> {
  const model = new Stage1GPT({
    clusters: V - 5,
    classes: 0,
    layers: L,
    dim: D,
    heads: H,
    ffnDim: 4 * D,
    length: T,
    dropout: 0.1,
  }, new Rng(0));
  const opt = new AdamW(model.parameters(), { lr: 1e-4, betas: [0.9, 0.98] });
  const g = new Rng(1);
  const ids = Int32Array.from({ length: B * T }, () => 5 + g.int(V - 5));
  const tgt = Int32Array.from({ length: B * T }, () => 5 + g.int(V - 5));
  const dropout = new Rng(2);
  const step = () => {
    tidy(() => {
      const logits = model.decoder.forward(ops.tensor(ids, [B, T], { dtype: "i32" }), {
        causal: true,
        gen: dropout,
      });
      const loss = ops.crossEntropy(
        ops.reshape(logits, [B * T, V]),
        ops.tensor(tgt, [B * T], { dtype: "i32" }),
        { labelSmoothing: 0.1 },
      );
      backward(loss);
    });
    opt.update();
    opt.zeroGrad();
  };
  const peer = await PeerProcess.start(
    "torch",
    `
import torch, time, json, math
torch.set_num_threads(2); torch.manual_seed(0)
D,L,H,V,T,B = ${D},${L},${H},${V},${T},${B}
class Layer(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.q=torch.nn.Linear(D,D); s.k=torch.nn.Linear(D,D); s.v=torch.nn.Linear(D,D); s.o=torch.nn.Linear(D,D)
        s.ln1=torch.nn.LayerNorm(D); s.fc1=torch.nn.Linear(D,4*D); s.fc2=torch.nn.Linear(4*D,D); s.ln2=torch.nn.LayerNorm(D)
        s.drop=torch.nn.Dropout(0.1)
    def forward(s,x,mask):
        sh=lambda t: t.view(B,T,H,D//H).transpose(1,2)
        a=torch.softmax(sh(s.q(x))@sh(s.k(x)).transpose(-1,-2)/math.sqrt(D//H)+mask,-1)@sh(s.v(x))
        x=s.ln1(x+s.drop(s.o(a.transpose(1,2).reshape(B,T,D))))
        return s.ln2(x+s.drop(s.fc2(torch.nn.functional.gelu(s.fc1(x)))))
class GPT(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.emb=torch.nn.Embedding(V,D); s.pos=torch.nn.Embedding(T+2,D); s.layers=torch.nn.ModuleList([Layer() for _ in range(L)])
        s.out=torch.nn.Linear(D,V,bias=False); s.drop=torch.nn.Dropout(0.1)
    def forward(s,t):
        mask=torch.triu(torch.full((T,T),float('-inf')),1)
        x=s.drop(s.emb(t)*math.sqrt(D)+s.pos(torch.arange(T)+2))
        for l in s.layers: x=l(x,mask)
        return s.out(x)
m=GPT(); opt=torch.optim.AdamW(m.parameters(),lr=1e-4,betas=(0.9,0.98))
ids=torch.randint(5,V,(B,T)); tgt=torch.randint(5,V,(B*T,))
def step():
    loss=torch.nn.functional.cross_entropy(m(ids).view(-1,V),tgt,label_smoothing=0.1)
    opt.zero_grad(); loss.backward(); opt.step()
def measure():
    t=time.perf_counter(); step(); return {"seconds": time.perf_counter()-t}
  `,
  );
  const train = await interleave(
    "GPT train step (512x8, vocab 8192, T 256, B 4; <= 1.0 is the target)",
    rounds,
    () => timed(step),
    peer,
  );
  await peer?.close();
  const ours = train ? median(train.ours) : await timed(step);
  console.log(
    `  training throughput: ${((B * T) / ours).toFixed(0)} tokens/s` +
      (train ? ` vs PyTorch ${((B * T) / median(train.peer)).toFixed(0)}` : ""),
  );
  model.dispose();
  opt.dispose();
}

/** Stage-1 sampling with the KV cache: small preset, batch 8, 256 tokens. */
async function benchSampling(): Promise<void> {
  const small = new Stage1GPT({
    clusters: 8192,
    classes: 0,
    layers: 4,
    dim: 128,
    heads: 4,
    ffnDim: 512,
    length: 256,
    dropout: 0.1,
  }, new Rng(3));
  const peerS = await PeerProcess.start(
    "torch",
    `
import torch, time, json, math
torch.set_num_threads(2); torch.manual_seed(0)
D,L,H,V,T,B = 128,4,4,8197,256,8
W=lambda *s: torch.randn(*s)*0.05
P=[dict(q=W(D,D),k=W(D,D),v=W(D,D),o=W(D,D),f1=W(4*D,D),f2=W(D,4*D)) for _ in range(L)]
E=W(V,D); Pos=W(T+3,D); Out=W(V,D)
ln=lambda x: torch.nn.functional.layer_norm(x,(D,))
@torch.no_grad()
def sample():
    tok=torch.full((B,1),2); ks=[[] for _ in range(L)]; vs=[[] for _ in range(L)]
    for t in range(T):
        x=E[tok[:,-1]]*math.sqrt(D)+Pos[t+2]
        x=x[:,None]
        for i,p in enumerate(P):
            sh=lambda z: z.view(B,1,H,D//H).transpose(1,2)
            ks[i].append(sh(x@p['k'].t())); vs[i].append(sh(x@p['v'].t()))
            K=torch.cat(ks[i],2); Vv=torch.cat(vs[i],2)
            a=torch.softmax(sh(x@p['q'].t())@K.transpose(-1,-2)/math.sqrt(D//H),-1)@Vv
            x=ln(x+a.transpose(1,2).reshape(B,1,D)@p['o'].t())
            x=ln(x+torch.nn.functional.gelu(x@p['f1'].t())@p['f2'].t())
        logits=(x[:,0]@Out.t())
        v,i=logits.topk(200); nxt=i.gather(1,torch.multinomial(torch.softmax(v,-1),1))
        tok=torch.cat([tok,nxt],1)
    return tok
def measure():
    t=time.perf_counter(); sample(); return {"seconds": time.perf_counter()-t}
  `,
  );
  const sampled = await interleave(
    "stage-1 sampling with KV cache (4x128, batch 8, 256 tokens; <= 1.0 is the target)",
    rounds,
    () => timed(() => sampleStage1(small, { count: 8, seed: 1, topK: 200 })),
    peerS,
  );
  await peerS?.close();
  if (sampled) {
    console.log(
      `  sampling throughput: ours ${((8 * 256) / median(sampled.ours)).toFixed(0)} tokens/s, ` +
        `PyTorch ${((8 * 256) / median(sampled.peer)).toFixed(0)} tokens/s`,
    );
  }
  small.dispose();
}
