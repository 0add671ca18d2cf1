/**
 * ImageFolder and symlink loops: a few bytes of links must not make the walk visit a folder
 * twice (os.walk(followlinks=True) lists one self-link's images 41 times, and two self-links
 * make about 2^40 visits). Each image is listed once and the skipped links are named once.
 */

import assert from "node:assert/strict";
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

Deno.test("ImageFolder: one self-link lists each image once and names the link once", async () => {
  await withTree(async (root) => {
    Deno.mkdirSync(`${root}/cat`);
    touch(`${root}/cat/1.png`);
    Deno.symlinkSync(".", `${root}/cat/loop`);
    const { ds, warnings, ms } = await open(root);
    assert.deepEqual(relative(root, ds), [["cat/1.png", 0]]);
    assert.deepEqual(ds.skippedLinks, [`${root}/cat/loop`]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /skipped symlinked folders already listed \(a symlink loop\?\)/);
    assert.ok(warnings[0].endsWith(`${root}/cat/loop`), warnings[0]);
    assert.ok(ms < 2000, `${ms} ms`);
  });
});

Deno.test("ImageFolder: two self-links (2^40 visits when followed blindly) finish at once", async () => {
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
    assert.deepEqual(relative(root, ds), [["cat/a.jpg", 0], ["cat/deep/b.JPEG", 0], [
      "dog/c.png",
      1,
    ]]);
    assert.deepEqual(ds.skippedLinks, [
      `${root}/cat/l1`,
      `${root}/cat/l2`,
      `${root}/cat/deep/up`,
    ]);
    assert.equal(warnings.length, 1, "said once, however many links");
    assert.ok(ms < 2000, `${ms} ms`);
  });
});

Deno.test("ImageFolder: links that are not loops are still followed, a folder listed once", async () => {
  await withTree(async (root) => {
    const outside = await Deno.makeTempDir({ prefix: "digit-hardening-outside-" });
    try {
      touch(`${outside}/x.png`);
      Deno.mkdirSync(`${root}/cat/real`, { recursive: true });
      touch(`${root}/cat/real/r.png`);
      Deno.symlinkSync(outside, `${root}/cat/ext`); // followed, as os.walk(followlinks=True)
      Deno.symlinkSync("real", `${root}/cat/also-real`); // same folder: listed under real/
      const { ds, warnings } = await open(root);
      assert.deepEqual(relative(root, ds), [["cat/ext/x.png", 0], ["cat/real/r.png", 0]]);
      assert.deepEqual(ds.skippedLinks, [`${root}/cat/also-real`]);
      assert.equal(warnings.length, 1);
    } finally {
      await Deno.remove(outside, { recursive: true });
    }
  });
});

Deno.test("ImageFolder: a tree without links gives no warning", async () => {
  await withTree(async (root) => {
    Deno.mkdirSync(`${root}/a/b/c`, { recursive: true });
    touch(`${root}/a/b/c/1.png`);
    const { ds, warnings } = await open(root);
    assert.deepEqual(relative(root, ds), [["a/b/c/1.png", 0]]);
    assert.deepEqual(ds.skippedLinks, []);
    assert.deepEqual(warnings, []);
  });
});
