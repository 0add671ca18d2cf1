/**
 * Dataset readers: ImageFolder order against torchvision (fixture), IDX and CIFAR-10
 * binary formats against files written here by hand (closed form), Debian's
 * Fashion-MNIST against numpy facts (fixture), and the procedural shapes dataset.
 */

import { expect, it } from "./lib/test.ts";
import { rejected } from "./lib/errors.ts";
import { Rng } from "../core/random.ts";
import { encodePng } from "../core/image/codec.ts";
import { Cifar10Dataset } from "../core/data/cifar.ts";
import { imageListFromTsv } from "../core/data/dataset.ts";
import { ImageFolder } from "../core/data/image_folder.ts";
import { FASHION_MNIST_DIR, IdxDataset, readIdx } from "../core/data/idx.ts";
import { openDataset } from "../core/data/mod.ts";
import {
  renderShape,
  sampleShapeParams,
  SHAPE_CLASSES,
  ShapesDataset,
} from "../core/data/shapes.ts";

const FIX = new URL("./fixtures/image/", import.meta.url).pathname;
const exists = (p: string) => {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
};

function tinyPng(v: number): Uint8Array {
  return encodePng({ width: 2, height: 2, data: new Uint8Array(12).fill(v) });
}

it("ImageFolder: classes and sample order equal torchvision's on a nested tree", async () => {
  const fx = JSON.parse(Deno.readTextFileSync(FIX + "folder.json"));
  const root = await Deno.makeTempDir();
  try {
    for (const [i, rel] of (fx.tree as string[]).entries()) {
      const path = `${root}/${rel}`;
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      await Deno.writeFile(path, tinyPng(i * 10));
    }
    const ds = await ImageFolder.open(root);
    expect(ds.classNames).toEqual(fx.classes);
    expect(ds.files.map((f) => [f.path.slice(root.length + 1), f.label])).toEqual(fx.samples);
    // Item content and label come from the right file.
    const k = (fx.samples as [string, number][]).findIndex(([p]) => p === "cat/sub/z.jpeg");
    const s = await ds.get(k);
    expect(s.label).toBe(2);
    expect(s.image.data[0]).toBe((fx.tree as string[]).indexOf("cat/sub/z.jpeg") * 10);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

it("ImageFolder: missing root, empty class and a bad file are reported by path", async () => {
  await expect(ImageFolder.open("/nonexistent/dir")).rejects.toThrow(/\/nonexistent\/dir/);
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/a`);
    await Deno.mkdir(`${root}/b`);
    await Deno.writeFile(`${root}/a/ok.png`, tinyPng(1));
    await expect(ImageFolder.open(root)).rejects.toThrow(/classes b/);
    await Deno.writeFile(
      `${root}/b/broken.jpg`,
      new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0]),
    );
    const ds = await ImageFolder.open(root);
    expect((await rejected(ds.get(1))).message).toContain(`${root}/b/broken.jpg`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

function idxBytes(type: number, shape: number[], data: Uint8Array): Uint8Array {
  const head = new Uint8Array(4 + 4 * shape.length);
  const v = new DataView(head.buffer);
  head[2] = type;
  head[3] = shape.length;
  shape.forEach((d, i) => v.setUint32(4 + 4 * i, d));
  const out = new Uint8Array(head.length + data.length);
  out.set(head);
  out.set(data, head.length);
  return out;
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(s).arrayBuffer());
}

it("IDX: plain and gzipped files, gray to RGB, header checks", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pixels = Uint8Array.from({ length: 3 * 4 * 5 }, (_, i) => (i * 7) % 256);
    await Deno.writeFile(`${dir}/im`, idxBytes(8, [3, 4, 5], pixels));
    await Deno.writeFile(`${dir}/lb.gz`, await gzip(idxBytes(8, [3], new Uint8Array([2, 0, 1]))));
    const ds = await IdxDataset.open(`${dir}/im`, `${dir}/lb.gz`);
    expect(ds.length).toBe(3);
    expect(ds.numClasses).toBe(3);
    const s = await ds.get(1);
    expect(s.label).toBe(0);
    expect(`${s.image.width}x${s.image.height}`).toBe("5x4");
    // Pixel (row 2, col 3) of image 1 is pixels[20 + 2*5 + 3], repeated over R, G, B.
    const v = pixels[20 + 13];
    expect(Array.from(s.image.data.subarray(13 * 3, 13 * 3 + 3))).toEqual([v, v, v]);
    await Deno.writeFile(`${dir}/short`, idxBytes(8, [3, 4, 5], pixels.subarray(1)));
    await expect(readIdx(`${dir}/short`)).rejects.toThrow(
      new RegExp(`${dir}/short: header says \\[3, 4, 5\\] = 60 bytes, file has 59`),
    );
    await Deno.writeFile(`${dir}/f32`, idxBytes(0x0d, [1], new Uint8Array(4)));
    await expect(readIdx(`${dir}/f32`)).rejects.toThrow(/only ubyte/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

it.skipIf(!exists(FASHION_MNIST_DIR))(
  "Fashion-MNIST from Debian's dataset-fashion-mnist matches numpy",
  async () => {
    const fx = JSON.parse(Deno.readTextFileSync(FIX + "fashion.json"));
    for (const split of ["train", "test"] as const) {
      const ds = await IdxDataset.fashionMnist(split);
      const f = fx[split];
      expect(ds.length).toBe(f.length);
      expect(ds.classNames![9]).toBe("Ankle boot");
      const labels = [];
      for (let i = 0; i < 16; i++) labels.push((await ds.get(i)).label);
      expect(labels).toEqual(f.first_labels);
      const im0 = (await ds.get(0)).image;
      let sum = 0;
      for (let i = 0; i < im0.data.length; i += 3) sum += im0.data[i];
      expect(sum).toBe(f.image0_sum);
      const last = (await ds.get(ds.length - 1)).image;
      expect(Array.from({ length: 28 }, (_, x) => last.data[(14 * 28 + x) * 3])).toEqual(
        f.image_last_row14,
      );
    }
  },
);

it("CIFAR-10 binary: planar records to HWC, labels, size errors name the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rec = new Uint8Array(2 * 3073);
    for (let r = 0; r < 2; r++) {
      rec[r * 3073] = 7 - r;
      for (let i = 0; i < 3072; i++) rec[r * 3073 + 1 + i] = (i + 5 * r) % 251;
    }
    await Deno.writeFile(`${dir}/test_batch.bin`, rec);
    await Deno.writeTextFile(`${dir}/batches.meta.txt`, "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n");
    const ds = await Cifar10Dataset.open(dir, "test");
    expect(ds.length).toBe(2);
    expect(ds.classNames[7]).toBe("h");
    const s = await ds.get(1);
    expect(s.label).toBe(6);
    // Pixel (y=3, x=4): plane offset p = 3*32+4; R at p, G at 1024+p, B at 2048+p.
    const p = 3 * 32 + 4;
    expect(Array.from(s.image.data.subarray(3 * p, 3 * p + 3))).toEqual([
      (p + 5) % 251,
      (1024 + p + 5) % 251,
      (2048 + p + 5) % 251,
    ]);
    await Deno.writeFile(`${dir}/data_batch_1.bin`, rec.subarray(1));
    await expect(Cifar10Dataset.open(dir, "train")).rejects.toThrow(
      new RegExp(`${dir}/data_batch_1.bin: size 6145`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

it.skipIf(
  !exists(
    new URL("../../shared/data/imagenet-sample/labels.tsv", import.meta.url).pathname,
  ),
)("list dataset from the imagenet-sample labels.tsv", async () => {
  const dir = new URL("../../shared/data/imagenet-sample", import.meta.url).pathname;
  const ds = await openDataset({ kind: "list", dir, tsv: `${dir}/labels.tsv`, numClasses: 1000 });
  expect(ds.length).toBe(100);
  const s = await ds.get(0);
  expect(s.label).toBe(0); // n01440764 tench
  const ref = JSON.parse(Deno.readTextFileSync(FIX + "photos.json")).decode["n01440764_tench.JPEG"];
  expect(`${s.image.width}x${s.image.height}`).toBe(`${ref.width}x${ref.height}`);
  await expect(imageListFromTsv(dir, `${dir}/labels.tsv`, 5)).rejects.toThrow(/bad line/);
});

it("shapes: deterministic, balanced labels, seeds differ, sizes", async () => {
  const a = new ShapesDataset({ size: 32, length: 50, seed: 3 });
  const b = new ShapesDataset({ size: 32, length: 50, seed: 3 });
  const c = new ShapesDataset({ size: 32, length: 50, seed: 4 });
  for (const i of [0, 17, 49]) {
    const [x, y, z] = await Promise.all([a.get(i), b.get(i), c.get(i)]);
    expect(x.image.data).toEqual(y.image.data);
    expect(x.image.data).not.toEqual(z.image.data);
    expect(x.label).toBe(i % 10);
  }
  const big = (await new ShapesDataset({ size: 64 }).get(5)).image;
  expect(big.width).toBe(64);
  expect(big.data.length).toBe(64 * 64 * 3);
  expect(() => new ShapesDataset({ numClasses: 11 })).toThrow(/numClasses/);
  await expect(a.get(50)).rejects.toThrow(/out of range/);
});

it("shapes: the ten silhouettes are distinct and the shape contrasts with the background", () => {
  expect(SHAPE_CLASSES.length).toBe(10);
  const size = 48;
  const masks = SHAPE_CLASSES.map((_, cls) =>
    renderShape(
      {
        cls,
        cx: 24,
        cy: 24,
        radius: 18,
        angle: 0,
        fg: [255, 255, 255],
        bg0: [0, 0, 0],
        bg1: [0, 0, 0],
        bgAngle: 0,
        grain: 0,
      },
      size,
      1,
    )
      .coverage
  );
  for (let i = 0; i < 10; i++) {
    let area = 0;
    for (const v of masks[i]) area += v;
    expect(area, `${SHAPE_CLASSES[i]} too small (${area})`).toBeGreaterThan(0.08 * size * size);
    for (let j = 0; j < i; j++) {
      let inter = 0, union = 0;
      for (let k = 0; k < masks[i].length; k++) {
        inter += Math.min(masks[i][k], masks[j][k]);
        union += Math.max(masks[i][k], masks[j][k]);
      }
      expect(
        inter / union,
        `${SHAPE_CLASSES[i]} vs ${SHAPE_CLASSES[j]}: IoU ${(inter / union).toFixed(2)}`,
      ).toBeLessThan(0.8);
    }
  }
  // On real items, pixels inside the shape differ clearly from the background.
  const ds = new ShapesDataset({ size: 32, seed: 9 });
  for (let i = 0; i < 20; i++) {
    const s = ds.getSync(i);
    let lo = 255 * 3, hi = 0;
    for (let p = 0; p < 32 * 32; p++) {
      const v = s.image.data[3 * p] + s.image.data[3 * p + 1] + s.image.data[3 * p + 2];
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(hi - lo, `item ${i}: brightness range ${hi - lo}`).toBeGreaterThan(90);
  }
});

it("offset/limit: any dataset spec takes a window of items, checked against its length", async () => {
  const full = await openDataset({ kind: "shapes", size: 16, length: 50, seed: 3 });
  const part = await openDataset({
    kind: "shapes",
    size: 16,
    length: 50,
    seed: 3,
    offset: 20,
    limit: 10,
  });
  expect(part.length).toBe(10);
  expect(part.numClasses).toBe(full.numClasses);
  for (const i of [0, 9]) {
    const [a, b] = [await part.get(i), await full.get(20 + i)];
    expect(a.label).toBe(b.label);
    expect(a.image.data).toEqual(b.image.data);
  }
  await expect(() => part.get(10)).rejects.toThrow(/index 10 out of range \[0, 10\)/);
  expect((await openDataset({ kind: "shapes", size: 16, length: 50, limit: 5 })).length).toBe(5);
  expect((await openDataset({ kind: "shapes", size: 16, length: 50, offset: 45 })).length).toBe(5);
  await expect(() => openDataset({ kind: "shapes", size: 16, length: 50, offset: 45, limit: 10 }))
    .rejects.toThrow(/offset 45 and limit 10 must be whole numbers within its 50 items/);
});

it("shapes variation 'centred': upright, centred within 2 px, radius 32-36%; 'full' draws are unchanged", () => {
  for (let i = 0; i < 40; i++) {
    const p = sampleShapeParams(i % 10, 32, new Rng(100 + i), "centred");
    expect(Math.abs(p.cx - 16) <= 2 && Math.abs(p.cy - 16) <= 2, `centre ${p.cx}, ${p.cy}`)
      .toBeTruthy();
    expect(p.radius >= 0.32 * 32 && p.radius <= 0.36 * 32, `radius ${p.radius}`).toBeTruthy();
    expect(p.angle).toBe(0);
    // The default is "full": the same draws as before the option existed.
    expect(sampleShapeParams(i % 10, 32, new Rng(100 + i))).toEqual(
      sampleShapeParams(i % 10, 32, new Rng(100 + i), "full"),
    );
  }
  const full = new ShapesDataset({ size: 32, seed: 1 });
  const centred = new ShapesDataset({ size: 32, seed: 1, variation: "centred" });
  expect(full.name).toBe("shapes:32px:seed1");
  expect(centred.name).toBe("shapes:32px:seed1:centred");
  expect(centred.getSync(3).label).toBe(full.getSync(3).label);
  // @ts-expect-error: a value outside the union, as a YAML file could give
  expect(() => new ShapesDataset({ variation: "tilted" })).toThrow(
    /variation 'tilted' must be 'full' or 'centred'/,
  );
});
