/**
 * DataLoader: epoch coverage, seeded order, exact resume, prefetch independence,
 * per-sample transforms, dropLast / short batches, and bad-item handling (skip or fail,
 * never hang). Datasets here are in-memory, so every expectation is exact.
 */

import { expect, it } from "./lib/test.ts";
import { type Batch, DataLoader, stackImages } from "../core/data/loader.ts";
import type { Dataset, Sample } from "../core/data/dataset.ts";
import { ShapesDataset } from "../core/data/shapes.ts";
import { randomCrop, randomHorizontalFlip } from "../core/image/transforms.ts";
import { hashBits, Rng } from "../core/random.ts";

/** Item i is a 2x1 image whose pixels encode i; items in `bad` throw. */
class Counting implements Dataset {
  readonly name = "counting";
  readonly numClasses = 3;
  calls = 0;
  constructor(
    readonly length: number,
    readonly bad = new Set<number>(),
    readonly sizeOf = (_i: number) => 2,
  ) {}
  describe(i: number) {
    return `/fake/item${i}.jpg`;
  }
  async get(i: number): Promise<Sample> {
    this.calls++;
    await Promise.resolve();
    if (this.bad.has(i)) throw new Error(`jpeg: /fake/item${i}.jpg: image file is truncated`);
    const w = this.sizeOf(i);
    return { image: { width: w, height: 1, data: new Uint8Array(3 * w).fill(i) }, label: i % 3 };
  }
}

const quiet = { onWarning: () => {} };

async function take(loader: DataLoader, k: number): Promise<Batch[]> {
  const out = [];
  for (let i = 0; i < k; i++) out.push(await loader.next());
  return out;
}

it("loader: each epoch is a seeded permutation covering every item once", async () => {
  const ds = new Counting(10);
  const loader = new DataLoader(ds, { batchSize: 4, seed: 7 });
  const batches = await take(loader, 6); // 2 epochs of 4 + 4 + 2
  expect(batches.map((b) => b.images.count)).toEqual([4, 4, 2, 4, 4, 2]);
  expect(batches.map((b) => b.epoch)).toEqual([0, 0, 0, 1, 1, 1]);
  for (const e of [0, 1]) {
    const idx = batches.filter((b) => b.epoch === e).flatMap((b) => Array.from(b.indices));
    expect(idx).toEqual(Array.from(new Rng(hashBits(7, 2 * e)).permutation(10)));
    expect([...idx].sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
  }
  const e0 = batches.slice(0, 3).flatMap((b) => Array.from(b.indices));
  const e1 = batches.slice(3).flatMap((b) => Array.from(b.indices));
  expect(e0).not.toEqual(e1);
  // Pixels and labels travel with their index.
  const b = batches[0];
  for (let k = 0; k < b.images.count; k++) {
    expect(b.images.data[k * 6]).toBe(b.indices[k]);
    expect(b.labels[k]).toBe(b.indices[k] % 3);
  }
  expect(loader.state().epoch).toBe(2);
  await loader.close();
});

it("loader: resuming from state() gives the same batches, whatever the prefetch depth", async () => {
  const ds = new ShapesDataset({ size: 16, length: 23 });
  const transform = (im: Parameters<typeof randomCrop>[0], g: Rng) =>
    randomHorizontalFlip(randomCrop(im, 12, g), g);
  const full = new DataLoader(ds, { batchSize: 5, seed: 3, transform, prefetch: 0 });
  const reference = await take(full, 9);
  const first = new DataLoader(ds, { batchSize: 5, seed: 3, transform, prefetch: 3 });
  await take(first, 4);
  const saved = first.state();
  await first.close();
  const resumed = new DataLoader(ds, {
    batchSize: 5,
    seed: 3,
    transform,
    prefetch: 2,
    state: saved,
  });
  const rest = await take(resumed, 5);
  await resumed.close();
  for (let i = 0; i < 5; i++) {
    expect(rest[i].indices, `batch ${4 + i}`).toEqual(reference[4 + i].indices);
    expect(rest[i].images.data, `batch ${4 + i} pixels`).toEqual(reference[4 + i].images.data);
  }
  expect(reference[0].images.width).toBe(12);
  // A different seed changes the order.
  const other = new DataLoader(ds, { batchSize: 5, seed: 4, prefetch: 0 });
  expect((await other.next()).indices).not.toEqual(reference[0].indices);
});

it("loader: no shuffle keeps order; dropLast drops the short batch", async () => {
  const ds = new Counting(7);
  const plain = new DataLoader(ds, { batchSize: 3, shuffle: false, prefetch: 0 });
  expect((await take(plain, 3)).map((b) => Array.from(b.indices))).toEqual([
    [0, 1, 2],
    [3, 4, 5],
    [6],
  ]);
  const drop = new DataLoader(ds, { batchSize: 3, shuffle: false, dropLast: true, prefetch: 0 });
  const bs = await take(drop, 3);
  expect(bs.map((b) => [b.epoch, ...b.indices])).toEqual([[0, 0, 1, 2], [0, 3, 4, 5], [
    1,
    0,
    1,
    2,
  ]]);
  expect(drop.batchesPerEpoch).toBe(2);
  expect(() => new DataLoader(new Counting(2), { batchSize: 3, dropLast: true })).toThrow(
    /would yield nothing/,
  );
});

it("loader: bad items are skipped with a count, or stop the run naming the file", async () => {
  const ds = new Counting(10, new Set([2, 5]));
  const skip = new DataLoader(ds, {
    batchSize: 4,
    shuffle: false,
    onError: "skip",
    prefetch: 0,
    ...quiet,
  });
  const bs = await take(skip, 2);
  expect(bs.map((b) => Array.from(b.indices))).toEqual([[0, 1, 3, 4], [6, 7, 8, 9]]);
  expect(skip.skipped).toBe(2);
  expect(skip.warnings[0]).toMatch(/\/fake\/item2\.jpg: image file is truncated/);
  expect(skip.state()).toEqual({ epoch: 1, position: 0 });

  const fail = new DataLoader(ds, { batchSize: 4, shuffle: false, prefetch: 1 });
  await expect(fail.next()).rejects.toThrow(/\/fake\/item2\.jpg/);
  await fail.close();
});

it("loader: hopeless configurations throw instead of hanging", async () => {
  const allBad = new DataLoader(new Counting(4, new Set([0, 1, 2, 3])), {
    batchSize: 2,
    onError: "skip",
    ...quiet,
  });
  await expect(allBad.next()).rejects.toThrow(/every item failed/);
  await allBad.close();
  const mostlyBad = new DataLoader(new Counting(6, new Set([0, 1, 2, 3, 4])), {
    batchSize: 2,
    onError: "skip",
    dropLast: true,
    ...quiet,
  });
  await expect(mostlyBad.next()).rejects.toThrow(/whole epoch gave no full batch/);
  await mostlyBad.close();
  const mixed = new DataLoader(new Counting(4, new Set(), (i) => (i === 2 ? 3 : 2)), {
    batchSize: 4,
    shuffle: false,
  });
  await expect(mixed.next()).rejects.toThrow(
    /\/fake\/item2\.jpg: size 3x1 differs from the batch's 2x1/,
  );
  await mixed.close();
  expect(() => stackImages([])).toThrow(/no images/);
});

it("loader: prefetch decodes the next batch before it is asked for", async () => {
  const ds = new Counting(12);
  const loader = new DataLoader(ds, { batchSize: 3, prefetch: 2 });
  await loader.next();
  await new Promise((r) => setTimeout(r, 10));
  expect(ds.calls).toBe(9); // the batch handed out plus two prefetched
  await loader.close();
  const lazy = new DataLoader(new Counting(12), { batchSize: 3, prefetch: 0 });
  await lazy.next();
  await new Promise((r) => setTimeout(r, 10));
  expect((lazy.dataset as Counting).calls).toBe(3);
});

it("loader: epoch() iterates the rest of the current epoch", async () => {
  const loader = new DataLoader(new Counting(10), { batchSize: 4, seed: 1 });
  const seen: number[] = [];
  for await (const b of loader.epoch()) seen.push(...b.indices);
  expect(seen.length).toBe(10);
  expect(loader.state()).toEqual({ epoch: 1, position: 0 });
  await loader.close();
});
