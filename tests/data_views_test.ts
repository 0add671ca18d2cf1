/**
 * The generic dataset-spec keys: `shuffle` (a seeded permutation, applied before
 * offset/limit) and `resize` (short side to N, bicubic, then a centre crop, as
 * core/image/transforms does it; that pair is checked against PIL in image_transforms_test).
 */

import { expect, it } from "./lib/test.ts";
import { openDataset } from "../core/data/mod.ts";
import { centerCrop, resizeShortSide } from "../core/image/transforms.ts";

it("shuffle: a permutation of the items, the same for the same seed; offset/limit slice after it", async () => {
  const spec = { kind: "shapes" as const, size: 16, length: 30, seed: 2 };
  const plain = await openDataset(spec);
  const a = await openDataset({ ...spec, shuffle: 7 });
  const b = await openDataset({ ...spec, shuffle: 7 });
  const c = await openDataset({ ...spec, shuffle: 8 });
  const key = async (ds: typeof plain, i: number) => (await ds.get(i)).image.data.join(",");
  const all = new Set(await Promise.all(Array.from({ length: 30 }, (_, i) => key(plain, i))));
  const shuffled = await Promise.all(Array.from({ length: 30 }, (_, i) => key(a, i)));
  expect(new Set(shuffled)).toEqual(all);
  expect(await Promise.all(Array.from({ length: 30 }, (_, i) => key(b, i)))).toEqual(shuffled);
  expect(await Promise.all(Array.from({ length: 30 }, (_, i) => key(c, i)))).not.toEqual(shuffled);
  const held = await openDataset({ ...spec, shuffle: 7, limit: 10 });
  const rest = await openDataset({ ...spec, shuffle: 7, offset: 10 });
  expect([held.length, rest.length]).toEqual([10, 20]);
  expect(await key(held, 3)).toBe(shuffled[3]);
  expect(await key(rest, 0)).toBe(shuffled[10]);
  // Labels follow their images (shapes' label is the index modulo 10 before shuffling).
  const labels = await Promise.all(
    Array.from({ length: 10 }, async (_, i) => (await held.get(i)).label),
  );
  expect(new Set(labels).size).toBeGreaterThan(3);
});

it("resize: every image becomes N x N through resizeShortSide (bicubic) + centerCrop; N = size is a no-op", async () => {
  const spec = { kind: "shapes" as const, size: 40, length: 4, seed: 1 };
  const plain = await openDataset(spec);
  const small = await openDataset({ ...spec, resize: 24 });
  for (let i = 0; i < 4; i++) {
    const want = centerCrop(resizeShortSide((await plain.get(i)).image, 24, "bicubic"), 24);
    const got = (await small.get(i)).image;
    expect([got.width, got.height]).toEqual([24, 24]);
    expect(got.data).toEqual(want.data);
  }
  const same = await openDataset({ ...spec, resize: 40 });
  expect((await same.get(2)).image.data).toEqual((await plain.get(2)).image.data);
  await expect(openDataset({ ...spec, resize: 0 })).rejects.toThrow(
    /resize 0 must be a whole number/,
  );
});
