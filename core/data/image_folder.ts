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

async function realPathOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await Deno.realPath(path);
  } catch {
    return undefined;
  }
}

/**
 * All directories under `dir` (itself included), sorted by path like sorted(os.walk(dir)),
 * following symlinked directories as os.walk(followlinks=True) does, but each real directory
 * once: os.walk would go round a self-link until the path is too long (41 copies of every
 * image), and two self-links in one folder make about 2^40 visits. Plain sub-directories are
 * walked first, so a directory reachable both directly and through a link is listed under its
 * own path; a link to a directory already listed is skipped and recorded in `skipped`.
 */
async function walkDirs(
  dir: string,
  skipped: string[],
): Promise<{ dir: string; files: string[] }[]> {
  const out: { dir: string; files: string[] }[] = [];
  const seen = new Set<string>();
  const links: string[] = [];
  const walk = async (start: string, startReal: string, via?: string) => {
    const stack = [{ path: start, real: startReal }];
    seen.add(startReal);
    while (stack.length > 0) {
      const d = stack.pop()!;
      const files: string[] = [];
      for (const e of (await listDir(d.path)).sort((a, b) => byString(a.name, b.name))) {
        const p = `${d.path}/${e.name}`;
        if (e.isDirectory) {
          // A plain directory's real path is its parent's plus its name; inside a followed
          // link it may still be one already listed (a link to an ancestor).
          const real = `${d.real}/${e.name}`;
          if (seen.has(real)) skipped.push(via ?? p);
          else {
            seen.add(real);
            stack.push({ path: p, real });
          }
        } else if (await isDir(p, e)) links.push(p);
        else files.push(e.name);
      }
      out.push({ dir: d.path, files: files.sort(byString) });
    }
  };
  await walk(dir, (await realPathOrUndefined(dir)) ?? dir);
  for (let i = 0; i < links.length; i++) {
    const real = await realPathOrUndefined(links[i]);
    if (real === undefined) continue; // vanished since it was listed
    if (seen.has(real)) skipped.push(links[i]);
    else await walk(links[i], real, links[i]);
  }
  return out.sort((a, b) => byString(a.dir, b.dir));
}

export interface ImageFolderOptions {
  extensions?: string[];
  /** Told once, naming the symlinks skipped because their folder was listed already. Default: console.warn. */
  onWarning?: (message: string) => void;
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
    const skipped: string[] = [];
    for (const [label, cls] of classes.entries()) {
      const before = files.length;
      for (const { dir, files: names } of await walkDirs(`${root}/${cls}`, skipped)) {
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
    const unique = [...new Set(skipped)];
    if (unique.length > 0) {
      const shown = unique.slice(0, 5).join(", ") +
        (unique.length > 5 ? `, ... (${unique.length} in all)` : "");
      (opts.onWarning ?? ((m: string) => console.warn(m)))(
        `ImageFolder: ${root}: skipped symlinked folders already listed (a symlink loop?): ${shown}`,
      );
    }
    return new ImageFolder(root, files, classes, unique);
  }

  private constructor(
    readonly root: string,
    files: LabelledFile[],
    classes: string[],
    /** Symlinks not followed because their folder was already listed (loops). */
    readonly skippedLinks: readonly string[],
  ) {
    super(`imagefolder:${root}`, files, classes.length, classes);
  }
}
