/**
 * Every differentiable op's backward against central finite differences
 * (tolerances in tests/helpers/gradcheck.ts: |err| <= 2e-3 + 2e-2*|numeric| unless stated).
 */

import * as ops from "../core/ops/mod.ts";
import { Rng } from "../core/random.ts";
import { liveStorages, tidy } from "../core/tensor.ts";
import { gradcheck, randomTensor as r } from "./helpers/gradcheck.ts";
import { it } from "./lib/test.ts";

const positive = (shape: number[], seed: number) =>
  tidy(() => ops.affine(ops.abs(r(shape, seed)), 1, 0.5));

const cases: [string, () => void][] = [
  ["add (broadcast)", () => gradcheck("add", (a, b) => ops.add(a, b), [r([2, 3], 1), r([3], 2)])],
  [
    "sub (broadcast)",
    () => gradcheck("sub", (a, b) => ops.sub(a, b), [r([2, 1], 1), r([2, 3], 2)]),
  ],
  [
    "mul (broadcast)",
    () => gradcheck("mul", (a, b) => ops.mul(a, b), [r([2, 3], 1), r([2, 1], 2)]),
  ],
  ["div", () => gradcheck("div", (a, b) => ops.div(a, b), [r([2, 3], 1), positive([2, 3], 2)])],
  ["maximum", () => gradcheck("maximum", (a, b) => ops.maximum(a, b), [r([5], 1), r([5], 2)])],
  ["exp", () => gradcheck("exp", (a) => ops.exp(a), [r([4], 3)])],
  ["log", () => gradcheck("log", (a) => ops.log(a), [positive([4], 3)])],
  ["sqrt", () => gradcheck("sqrt", (a) => ops.sqrt(a), [positive([4], 3)])],
  ["rsqrt", () => gradcheck("rsqrt", (a) => ops.rsqrt(a), [positive([4], 3)])],
  ["tanh", () => gradcheck("tanh", (a) => ops.tanh(a), [r([5], 4)])],
  ["sigmoid", () => gradcheck("sigmoid", (a) => ops.sigmoid(a), [r([5], 4)])],
  ["silu", () => gradcheck("silu", (a) => ops.silu(a), [r([5], 4)])],
  ["gelu", () => gradcheck("gelu", (a) => ops.gelu(a), [r([6], 5)])],
  ["square", () => gradcheck("square", (a) => ops.square(a), [r([4], 5)])],
  ["pow 3", () => gradcheck("pow", (a) => ops.powScalar(a, 3), [r([4], 6)])],
  [
    "where",
    () =>
      gradcheck("where", (a, b, c) => ops.where(ops.compare("gt", c, 0), a, b), [
        r([6], 7),
        r([6], 8),
        r([6], 9),
      ], { wrt: [0, 1] }),
  ],
  ["sum axis keepdim", () => gradcheck("sum", (a) => ops.sum(a, 1, true), [r([2, 3, 2], 9)])],
  ["mean all", () => gradcheck("mean", (a) => ops.mean(a).reshape(1), [r([3, 4], 9)])],
  ["max axis", () => gradcheck("max", (a) => ops.max(a, 1), [r([3, 4], 10)])],
  [
    "matmul batched broadcast",
    () => gradcheck("matmul", (a, b) => ops.matmul(a, b), [r([2, 3, 4], 11), r([4, 5], 12)]),
  ],
  [
    "matmul transposed view",
    () =>
      gradcheck("matmulT", (a, b) => ops.matmul(a, ops.transpose(b)), [
        r([3, 4], 11),
        r([5, 4], 12),
      ]),
  ],
  [
    "linear",
    () =>
      gradcheck("linear", (x, w, b) => ops.linear(x, w, b), [
        r([2, 3, 4], 13),
        r([5, 4], 14),
        r([5], 15),
      ]),
  ],
  [
    "fusedLinear gelu, scale, residual",
    () =>
      gradcheck(
        "fusedLinear",
        (x, w, b, g, r) => ops.fusedLinear(x, w, b, { activation: "gelu", scale: g, residual: r }),
        [
          r([2, 3, 4], 13),
          r([5, 4], 14),
          r([5], 15),
          r([5], 16),
          r([2, 3, 5], 17),
        ],
      ),
  ],
  ["softmax", () => gradcheck("softmax", (a) => ops.softmax(a, -1), [r([3, 5], 16)])],
  ["softmax axis 0", () => gradcheck("softmax0", (a) => ops.softmax(a, 0), [r([3, 5], 16)])],
  ["logSoftmax", () => gradcheck("logSoftmax", (a) => ops.logSoftmax(a), [r([3, 5], 17)])],
  [
    "layerNorm",
    () =>
      gradcheck("layerNorm", (x, w, b) => ops.layerNorm(x, w, b, 1e-5), [
        r([3, 6], 18),
        r([6], 19),
        r([6], 20),
      ]),
  ],
  [
    "groupNorm",
    () =>
      gradcheck("groupNorm", (x, w, b) => ops.groupNorm(x, 2, w, b, 1e-5), [
        r([2, 4, 3, 3], 21),
        r([4], 22),
        r([4], 23),
      ]),
  ],
  [
    "embedding",
    () =>
      gradcheck("embedding", (t, i) => ops.embedding(t, i), [
        r([5, 3], 24),
        ops.tensor([0, 3, 3, 1], [2, 2], { dtype: "i32" }),
      ], { wrt: [0] }),
  ],
  [
    "indexSelect",
    () =>
      gradcheck("indexSelect", (x, i) => ops.indexSelect(x, i), [
        r([4, 2, 3], 45),
        ops.tensor([3, 0, 3], [3], { dtype: "i32" }),
      ], { wrt: [0] }),
  ],
  [
    "scatterAdd",
    () =>
      gradcheck("scatterAdd", (x, i) => ops.scatterAdd(x, i, 4), [
        r([3, 2], 46),
        ops.tensor([1, 3, 1], [3], { dtype: "i32" }),
      ], { wrt: [0] }),
  ],
  [
    "crossEntropy smoothing+ignore",
    () =>
      gradcheck(
        "crossEntropy",
        (l, t) => ops.crossEntropy(l, t, { labelSmoothing: 0.1, ignoreIndex: 1 }).reshape(1),
        [
          r([4, 5], 25),
          ops.tensor([2, 1, 0, 4], [4], { dtype: "i32" }),
        ],
        { wrt: [0] },
      ),
  ],
  [
    "attention causal",
    () =>
      gradcheck("attention", (q, k, v) => ops.attention(q, k, v, { causal: true }), [
        r([1, 2, 3, 4], 26),
        r([1, 2, 3, 4], 27),
        r([1, 2, 3, 4], 28),
      ]),
  ],
  ["attention on fused-qkv views", () =>
    gradcheck("attentionViews", (x) => {
      const rows = ops.permute(ops.reshape(x, [1, 3, 6, 4]), [0, 2, 1, 3]); // (B, 3H, T, D) view
      const [q, k, v] = [0, 1, 2].map((i) => ops.slice(rows, 1, 2 * i, 2 * i + 2));
      return ops.reshape(ops.permute(ops.attention(q, k, v), [0, 2, 1, 3]), [1, 3, 8]);
    }, [r([1, 3, 24], 29)])],
  [
    "attention kv offset",
    () =>
      gradcheck("attentionKV", (q, k, v) => ops.attention(q, k, v, { causal: true }), [
        r([1, 1, 2, 4], 26),
        r([1, 1, 5, 4], 27),
        r([1, 1, 5, 4], 28),
      ]),
  ],
  [
    "conv2d 3x3 pad",
    () =>
      gradcheck("conv2d", (x, w, b) => ops.conv2d(x, w, b, { padding: 1 }), [
        r([1, 2, 4, 4], 29),
        r([3, 2, 3, 3], 30),
        r([3], 31),
      ]),
  ],
  [
    "conv2d stride2 groups",
    () =>
      gradcheck("conv2dg", (x, w) => ops.conv2d(x, w, null, { stride: 2, groups: 2 }), [
        r([1, 4, 5, 5], 32),
        r([2, 2, 3, 3], 33),
      ]),
  ],
  [
    "avgPool2d",
    () => gradcheck("avgPool", (x) => ops.avgPool2d(x, { kernel: 2 }), [r([1, 2, 4, 4], 34)]),
  ],
  [
    "maxPool2d",
    () => gradcheck("maxPool", (x) => ops.maxPool2d(x, { kernel: 2 }), [r([1, 1, 4, 4], 35)]),
  ],
  [
    "interpolate nearest",
    () =>
      gradcheck("nearest", (x) => ops.interpolate(x, { scaleFactor: 2, mode: "nearest" }), [
        r([1, 1, 2, 3], 36),
      ]),
  ],
  [
    "interpolate bilinear",
    () =>
      gradcheck("bilinear", (x) => ops.interpolate(x, { size: [5, 4], mode: "bilinear" }), [
        r([1, 1, 3, 3], 37),
      ]),
  ],
  [
    "interpolate bicubic",
    () =>
      gradcheck("bicubic", (x) => ops.interpolate(x, { size: [3, 3], mode: "bicubic" }), [
        r([1, 1, 5, 5], 38),
      ]),
  ],
  [
    "slice + cat",
    () =>
      gradcheck("slicecat", (a, b) => ops.cat([ops.slice(a, 1, 1, 3), b], 1), [
        r([2, 4], 39),
        r([2, 2], 40),
      ]),
  ],
  [
    "permute + reshape",
    () =>
      gradcheck("permute", (a) => ops.reshape(ops.permute(a, [2, 0, 1]), [6, 2]), [
        r([2, 2, 3], 41),
      ]),
  ],
  ["expand", () => gradcheck("expand", (a) => ops.expand(a, [3, 2, 4]), [r([2, 1], 42)])],
  ["dropout (fixed mask)", () => {
    gradcheck("dropout", (a) => ops.dropout(a, 0.3, new Rng(5)), [r([10], 43)]);
  }],
  ["residual shared subgraph", () =>
    gradcheck("residual", (a) => {
      let h = a;
      for (let i = 0; i < 4; i++) h = ops.add(h, ops.tanh(h));
      return h;
    }, [r([3], 44)])],
];

for (const [name, fn] of cases) {
  it(`grad: ${name}`, () => {
    const before = liveStorages();
    tidy(fn);
    // gradcheck frees everything it made; the count must come back exactly.
    if (liveStorages() !== before) {
      throw new Error(`${name}: leaked ${liveStorages() - before} storages`);
    }
  });
}
