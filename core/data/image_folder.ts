/**
 * torchvision's ImageFolder layout: root/<class>/(any depth)/<file>. Classes are the
 * sub-directories of root in sorted order (label = position); files are gathered the way
 * torchvision's make_dataset walks them (directories in sorted path order, files sorted
 * within each), so labels and indices agree with a PyTorch run on the same tree.
 * Only JPEG and PNG are accepted (extensions .jpg .jpeg .png, any case); a class folder
 * without any such file is an error, as in torchvision.
 */

import { ImageFileList, type LabelledFile } from "./dataset.ts";

export const IMAGE_EXTENSIONS = [".jpg", ".jpeg", ".png"];

/** Code-unit order, which equals Python's sort for the names met in practice. */
const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

async function listDir(path: string): Promise<Deno.DirEntry[]> {
  const out: Deno.DirEntry[] = [];
  try {
    for await (const e of Deno.readDir(path)) out.push(e);
  } catch (e) {
    throw new Error(`ImageFolder: cannot read directory ${path}: ${(e as Error).message}`);
  }
  return out;
}

async function isDir(path: string, e: Deno.DirEntry): Promise<boolean> {
  if (e.isDirectory) return true;
  if (!e.isSymlink) return false;
  try {
    return (await Deno.stat(path)).isDirectory; // os.walk(followlinks=True)
  } catch {
    return false;
  }
}

/** All directories under `dir` (itself included), sorted by path like sorted(os.walk(dir)). */
async function walkDirs(dir: string): Promise<{ dir: string; files: string[] }[]> {
  const out: { dir: string; files: string[] }[] = [];
  const visit = async (d: string) => {
    const files: string[] = [];
    for (const e of await listDir(d)) {
      const p = `${d}/${e.name}`;
      if (await isDir(p, e)) await visit(p);
      else files.push(e.name);
    }
    out.push({ dir: d, files: files.sort(byString) });
  };
  await visit(dir);
  return out.sort((a, b) => byString(a.dir, b.dir));
}

export interface ImageFolderOptions {
  extensions?: string[];
}

export class ImageFolder extends ImageFileList {
  static async open(root: string, opts: ImageFolderOptions = {}): Promise<ImageFolder> {
    root = root.replace(/\/+$/, "");
    const exts = (opts.extensions ?? IMAGE_EXTENSIONS).map((e) => e.toLowerCase());
    const entries = await listDir(root);
    const classes: string[] = [];
    for (const e of entries) if (await isDir(`${root}/${e.name}`, e)) classes.push(e.name);
    classes.sort(byString);
    if (classes.length === 0) throw new Error(`ImageFolder: no class folders in ${root}`);
    const files: LabelledFile[] = [];
    const empty: string[] = [];
    for (const [label, cls] of classes.entries()) {
      const before = files.length;
      for (const { dir, files: names } of await walkDirs(`${root}/${cls}`)) {
        for (const n of names) {
          const lower = n.toLowerCase();
          if (exts.some((x) => lower.endsWith(x))) files.push({ path: `${dir}/${n}`, label });
        }
      }
      if (files.length === before) empty.push(cls);
    }
    if (empty.length > 0) {
      throw new Error(
        `ImageFolder: ${root}: no ${exts.join("/")} files for classes ${
          empty.slice(0, 5).join(", ")
        }${empty.length > 5 ? ", ..." : ""}`,
      );
    }
    return new ImageFolder(root, files, classes);
  }

  private constructor(readonly root: string, files: LabelledFile[], classes: string[]) {
    super(`imagefolder:${root}`, files, classes.length, classes);
  }
}
