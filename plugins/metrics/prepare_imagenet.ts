/**
 * The FID reference set of DiGIT (and MAGE): `prepare_imgnet_val.py` runs torchvision's
 * ImageFolder over ImageNet's `val` folder with Resize(256) (PIL bilinear, antialiased, short
 * side) and CenterCrop(256), and saves image i as `{i:05d}.png`.
 *
 * Order matters only for the file names (FID does not depend on it), but we keep
 * ImageFolder's: class folders sorted, then each class folder walked in sorted order (files
 * of a folder before its subfolders, names sorted), with torchvision's image extensions.
 * A folder of plain images (the raw ILSVRC2012_val_*.JPEG dump) is also accepted: then the
 * files themselves are sorted. If `source` holds a `val` folder, that is used, as the script
 * takes the dataset root.
 *
 * Each PNG is written to a temporary name and renamed, so an interrupted run can be resumed:
 * existing outputs are kept.
 */

import { readImage, writePng } from "../../core/image/codec.ts";
import { centerCrop, resizeShortSide } from "../../core/image/transforms.ts";
import { byCodePoint } from "./folder.ts";

/** torchvision.datasets.folder.IMG_EXTENSIONS. */
export const TORCHVISION_EXTENSIONS: readonly string[] = [
  "jpg",
  "jpeg",
  "png",
  "ppm",
  "bmp",
  "pgm",
  "tif",
  "tiff",
  "webp",
];

const isImage = (name: string) =>
  TORCHVISION_EXTENSIONS.includes(name.slice(name.lastIndexOf(".") + 1).toLowerCase());

async function entries(dir: string): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = [], dirs: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    const info = e.isSymlink ? await Deno.stat(path) : e;
    if (info.isDirectory) dirs.push(path);
    else if (info.isFile) files.push(path);
  }
  return { files: files.sort(byCodePoint), dirs: dirs.sort(byCodePoint) };
}

/** Images under `dir` in `sorted(os.walk(dir))` order. */
async function walkSorted(dir: string): Promise<string[]> {
  const roots: { root: string; files: string[] }[] = [];
  const visit = async (d: string) => {
    const { files, dirs } = await entries(d);
    roots.push({ root: d, files: files.filter(isImage) });
    for (const sub of dirs) await visit(sub);
  };
  await visit(dir);
  // os.walk tuples sort by their root path first.
  return roots.sort((a, b) => byCodePoint(a.root, b.root)).flatMap((r) => r.files);
}

/** The images of an ImageNet-style folder, in the order ImageFolder indexes them. */
export async function imageNetValFiles(
  source: string,
): Promise<{ dir: string; files: string[]; classes: number }> {
  const info = await Deno.stat(source).catch(() => null);
  if (!info?.isDirectory) {
    throw new Error(`prepare-imagenet-val: source '${source}' is not a folder`);
  }
  let dir = source.replace(/\/+$/, "");
  if (await Deno.stat(`${dir}/val`).then((s) => s.isDirectory, () => false)) dir = `${dir}/val`;
  const { files, dirs } = await entries(dir);
  let list: string[];
  if (dirs.length > 0) {
    list = [];
    for (const classDir of dirs) list.push(...await walkSorted(classDir));
  } else {
    list = files.filter(isImage);
  }
  if (list.length === 0) {
    throw new Error(
      `prepare-imagenet-val: no images (${TORCHVISION_EXTENSIONS.join(", ")}) in '${dir}'` +
        (dirs.length ? ` or its ${dirs.length} class folder(s)` : ""),
    );
  }
  return { dir, files: list, classes: dirs.length };
}

export interface PrepareOptions {
  size?: number;
  /** Only the first N images (for a quick check). */
  limit?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** Writes `{i:05d}.png` for every image of `source` into `output`; returns how many exist there now. */
export async function prepareImageNetVal(
  source: string,
  output: string,
  opts: PrepareOptions = {},
): Promise<number> {
  const size = opts.size ?? 256;
  const { files } = await imageNetValFiles(source);
  const todo = files.slice(0, opts.limit ?? files.length);
  await Deno.mkdir(output, { recursive: true });
  for (const [i, file] of todo.entries()) {
    opts.signal?.throwIfAborted();
    const target = `${output}/${String(i).padStart(5, "0")}.png`;
    if (await Deno.stat(target).then(() => true, () => false)) continue;
    const img = centerCrop(resizeShortSide(await readImage(file), size, "bilinear"), size);
    await writePng(`${target}.partial`, img);
    await Deno.rename(`${target}.partial`, target);
    opts.onProgress?.(i + 1, todo.length);
  }
  return todo.length;
}
