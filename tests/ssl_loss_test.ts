/**
 * plugins/ssl/loss.ts: NT-Xent against its definition, evaluated here in float64 on tiny
 * examples, and its gradient against central differences of that reference.
 */

import { expect, it } from "./lib/test.ts";
import { backward } from "../core/autograd.ts";
import * as ops from "../core/ops/mod.ts";
import { correspondingCells, type ViewGeometry } from "../plugins/ssl/augment.ts";
import { l2Normalize, ntXent, patchCorrespondence, patchToImage } from "../plugins/ssl/loss.ts";

/** SimCLR's loss written out: rows i and (i + N) mod 2N are positives, i itself is excluded. */
function reference(z: number[][], t: number): number {
  const M = z.length, N = M / 2;
  const u = z.map((r) => {
    const n = Math.hypot(...r);
    return r.map((v) => v / n);
  });
  const sim = (i: number, j: number) => u[i].reduce((s, v, k) => s + v * u[j][k], 0) / t;
  let total = 0;
  for (let i = 0; i < M; i++) {
    let denom = 0;
    for (let j = 0; j < M; j++) if (j !== i) denom += Math.exp(sim(i, j));
    total += -(sim(i, (i + N) % M) - Math.log(denom));
  }
  return total / M;
}

const Z = [
  [0.3, -1.2, 0.5],
  [1.1, 0.4, -0.2],
  [0.2, -0.9, 0.8],
  [0.9, 0.7, 0.1],
  [-0.5, 0.3, 1.4],
  [0.6, -0.1, -0.8],
];

it("ntXent matches the written-out loss (3 images, 2 views, two temperatures)", async () => {
  for (const t of [0.5, 0.1]) {
    const got = await ntXent(ops.tensor(Z.flat(), [6, 3]), t).item();
    const want = reference(Z, t);
    expect(Math.abs(got - want), `t=${t}: ${got} vs ${want}`).toBeLessThan(
      1e-5 * Math.max(1, want),
    );
  }
});

it("ntXent closed form: identical positives, orthogonal negatives", async () => {
  // 2 images on orthogonal axes, each view identical: s(i, p(i)) = 1, the 2 other rows 0.
  const z = [[2, 0], [0, 3], [1, 0], [0, 0.5]];
  const t = 0.2;
  const want = -Math.log(Math.exp(1 / t) / (Math.exp(1 / t) + 2));
  const got = await ntXent(ops.tensor(z.flat(), [4, 2]), t).item();
  expect(Math.abs(got - want), `${got} vs ${want}`).toBeLessThan(1e-6);
});

it("ntXent gradient matches central differences of the reference", async () => {
  const t = 0.3;
  const x = ops.tensor(Z.flat(), [6, 3]).requireGrad();
  backward(ntXent(x, t));
  const grad = (await x.grad!.data()) as Float32Array;
  const h = 1e-4;
  for (let i = 0; i < Z.length; i++) {
    for (let k = 0; k < 3; k++) {
      const plus = Z.map((r) => [...r]), minus = Z.map((r) => [...r]);
      plus[i][k] += h;
      minus[i][k] -= h;
      const fd = (reference(plus, t) - reference(minus, t)) / (2 * h);
      expect(Math.abs(grad[i * 3 + k] - fd), `d/dz[${i}][${k}]: ${grad[i * 3 + k]} vs ${fd}`)
        .toBeLessThan(2e-4);
    }
  }
});

it("l2Normalize gives unit rows in the same direction; ntXent rejects odd or tiny batches", async () => {
  const u = (await l2Normalize(ops.tensor([3, 4, 0, 0, -2, 0], [2, 3])).data()) as Float32Array;
  expect(Array.from(u).map((v) => +v.toFixed(6))).toEqual([0.6, 0.8, 0, 0, -1, 0]);
  expect(() => ntXent(ops.tensor(new Float32Array(9), [3, 3]), 0.1)).toThrow(/expected \(2N, d\)/);
  expect(() => ntXent(ops.tensor(new Float32Array(6), [2, 3]), 0.1)).toThrow(/N >= 2/);
});

/** The patch-to-image loss written out: patch l of row m against every image row but m itself. */
function patchReference(p: number[][], z: number[][], t: number): number {
  const M = z.length, L = p.length / M, N = M / 2;
  const unit = (r: number[]) => r.map((v) => v / Math.hypot(...r));
  const zu = z.map(unit);
  let total = 0;
  for (let m = 0; m < M; m++) {
    for (let l = 0; l < L; l++) {
      const pu = unit(p[m * L + l]);
      const s = zu.map((r) => r.reduce((a, v, k) => a + v * pu[k], 0) / t);
      let denom = 0;
      for (let j = 0; j < M; j++) if (j !== m) denom += Math.exp(s[j]);
      total += -(s[(m + N) % M] - Math.log(denom));
    }
  }
  return total / (M * L);
}

it("patchToImage matches the written-out loss (2 images x 2 views x 3 patches)", async () => {
  const z = Z.slice(0, 4);
  const p = Array.from({ length: 12 }, (_, i) => [Math.sin(i + 1), Math.cos(2 * i), 0.3 * i - 1]);
  for (const t of [0.5, 0.1]) {
    const got = await patchToImage(ops.tensor(p.flat(), [12, 3]), ops.tensor(z.flat(), [4, 3]), t)
      .item();
    const want = patchReference(p, z, t);
    expect(Math.abs(got - want), `t=${t}: ${got} vs ${want}`).toBeLessThan(
      1e-5 * Math.max(1, want),
    );
  }
  expect(() =>
    patchToImage(ops.tensor(new Float32Array(15), [5, 3]), ops.tensor(z.flat(), [4, 3]), 0.1)
  ).toThrow(/expected patches/);
});

/** The dense loss written out: mean of the two directions' cross-entropies over all patches. */
function denseReference(
  a: number[][],
  b: number[][],
  first: number[],
  second: number[],
  t: number,
) {
  const unit = (r: number[]) => r.map((v) => v / Math.hypot(...r));
  const ua = a.map(unit), ub = b.map(unit);
  const dot = (x: number[], y: number[]) => x.reduce((s, v, k) => s + v * y[k], 0);
  const oneWay = (from: number[][], to: number[][], rows: number[], targets: number[]) => {
    let total = 0;
    rows.forEach((r, k) => {
      const logits = to.map((row) => dot(from[r], row) / t);
      const lse = Math.log(logits.reduce((s, l) => s + Math.exp(l), 0));
      total += lse - logits[targets[k]];
    });
    return total / rows.length;
  };
  return 0.5 * (oneWay(ua, ub, first, second) + oneWay(ub, ua, second, first));
}

it("patchCorrespondence matches the written-out loss (6 patches per view, 4 pairs)", async () => {
  const a = Array.from({ length: 6 }, (_, i) => [Math.sin(i + 1), Math.cos(3 * i), 0.2 * i - 0.5]);
  const b = Array.from({ length: 6 }, (_, i) => [Math.cos(i + 2), 0.4 - 0.1 * i, Math.sin(2 * i)]);
  const first = [0, 2, 3, 5], second = [1, 2, 4, 0];
  for (const t of [0.5, 0.1]) {
    const got = await patchCorrespondence(
      ops.tensor(a.flat(), [6, 3]),
      ops.tensor(b.flat(), [6, 3]),
      Int32Array.from(first),
      Int32Array.from(second),
      t,
    ).item();
    const want = denseReference(a, b, first, second, t);
    expect(Math.abs(got - want), `t=${t}: ${got} vs ${want}`).toBeLessThan(
      1e-5 * Math.max(1, want),
    );
  }
});

it("correspondingCells: the same view pairs every cell with itself; a mirrored view with its mirror", () => {
  const whole = { x0: 0, y0: 0, w: 32, h: 32 };
  const plain: ViewGeometry = { box: whole, flipX: false, flipY: false, angle: 0 };
  const mirrored: ViewGeometry = { ...plain, flipX: true };
  const same = correspondingCells([plain, plain], [plain, plain], 32, 8);
  expect(Array.from(same.first)).toEqual(Array.from({ length: 128 }, (_, i) => i));
  expect(Array.from(same.second)).toEqual(Array.from(same.first));
  const flip = correspondingCells([plain], [mirrored], 32, 8);
  expect(flip.first.length).toBe(64);
  flip.first.forEach((c, k) => expect(flip.second[k]).toBe(Math.floor(c / 8) * 8 + 7 - (c % 8)));
  // A view shifted by a whole cell (4 px) pairs cell (y, x) with (y, x - 1) and loses a column.
  const shifted: ViewGeometry = { ...plain, box: { x0: 4, y0: 0, w: 32, h: 32 } };
  const moved = correspondingCells([plain], [shifted], 32, 8);
  expect(moved.first.length).toBe(56);
  moved.first.forEach((c, k) => expect(moved.second[k]).toBe(c - 1));
});
