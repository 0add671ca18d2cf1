/**
 * ImageFolder and symlink loops: a few bytes of links must not make the walk visit a folder
 * twice (os.walk(followlinks=True) lists one self-link's images 41 times, and two self-links
 * make about 2^40 visits). Each image is listed once and the skipped links are named once.
 */

import { expect, it } from "./lib/test.ts";
import { ImageFolder } from "../core/data/image_folder.ts";

async function withTree(body: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "digit-hardening-data-" });
  try {
    await body(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** Listing only: the bytes are never decoded, so a 1-byte "image" is enough. */
function touch(path: string): void {
  Deno.writeFileSync(path, new Uint8Array([0]));
}

async function open(root: string): Promise<{ ds: ImageFolder; warnings: string[]; ms: number }> {
  const warnings: string[] = [];
  const start = performance.now();
  const ds = await ImageFolder.open(root, { onWarning: (m) => warnings.push(m) });
  return { ds, warnings, ms: performance.now() - start };
}

const relative = (root: string, ds: ImageFolder) =>
  ds.files.map((f) => [f.path.slice(root.length + 1), f.label]);

it("ImageFolder: one self-link lists each image once and names the link once", async () => {
  await withTree(async (root) => {
    Deno.mkdirSync(`${root}/cat`);
    touch(`${root}/cat/1.png`);
    Deno.symlinkSync(".", `${root}/cat/loop`);
    const { ds, warnings, ms } = await open(root);
    expect(relative(root, ds)).toEqual([["cat/1.png", 0]]);
    expect(ds.skippedLinks).toEqual([`${root}/cat/loop`]);
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toMatch(/skipped symlinked folders already listed \(a symlink loop\?\)/);
    expect(warnings[0].endsWith(`${root}/cat/loop`), warnings[0]).toBeTruthy();
    expect(ms, `${ms} ms`).toBeLessThan(2000);
  });
});

it("ImageFolder: two self-links (2^40 visits when followed blindly) finish at once", async () => {
  await withTree(async (root) => {
    Deno.mkdirSync(`${root}/cat/deep`, { recursive: true });
    touch(`${root}/cat/a.jpg`);
    touch(`${root}/cat/deep/b.JPEG`);
    Deno.symlinkSync(".", `${root}/cat/l1`);
    Deno.symlinkSync(".", `${root}/cat/l2`);
    Deno.symlinkSync("..", `${root}/cat/deep/up`); // back to cat: a loop through a parent
    Deno.mkdirSync(`${root}/dog`);
    touch(`${root}/dog/c.png`);
    const { ds, warnings, ms } = await open(root);
    expect(relative(root, ds)).toEqual([["cat/a.jpg", 0], ["cat/deep/b.JPEG", 0], [
      "dog/c.png",
      1,
    ]]);
    expect(ds.skippedLinks).toEqual([
      `${root}/cat/l1`,
      `${root}/cat/l2`,
      `${root}/cat/deep/up`,
    ]);
    expect(warnings.length, "said once, however many links").toBe(1);
    expect(ms, `${ms} ms`).toBeLessThan(2000);
  });
});

it("ImageFolder: links that are not loops are still followed, a folder listed once", async () => {
  await withTree(async (root) => {
    const outside = await Deno.makeTempDir({ prefix: "digit-hardening-outside-" });
    try {
      touch(`${outside}/x.png`);
      Deno.mkdirSync(`${root}/cat/real`, { recursive: true });
      touch(`${root}/cat/real/r.png`);
      Deno.symlinkSync(outside, `${root}/cat/ext`); // followed, as os.walk(followlinks=True)
      Deno.symlinkSync("real", `${root}/cat/also-real`); // same folder: listed under real/
      const { ds, warnings } = await open(root);
      expect(relative(root, ds)).toEqual([["cat/ext/x.png", 0], ["cat/real/r.png", 0]]);
      expect(ds.skippedLinks).toEqual([`${root}/cat/also-real`]);
      expect(warnings.length).toBe(1);
    } finally {
      await Deno.remove(outside, { recursive: true });
    }
  });
});

it("ImageFolder: a tree without links gives no warning", async () => {
  await withTree(async (root) => {
    Deno.mkdirSync(`${root}/a/b/c`, { recursive: true });
    touch(`${root}/a/b/c/1.png`);
    const { ds, warnings } = await open(root);
    expect(relative(root, ds)).toEqual([["a/b/c/1.png", 0]]);
    expect(ds.skippedLinks).toEqual([]);
    expect(warnings).toEqual([]);
  });
});
