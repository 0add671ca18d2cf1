/**
 * `labels.tsv`: the class of every image in a sample folder, so that a metric can check that a
 * class-conditional sample shows the class it was asked for. One header line, then one row per
 * image, tab-separated:
 *
 *   file        class_id  class_name
 *   0000.png    3         cross
 *
 * `file` is the image's name inside the folder (no path). Written beside the PNGs by every step
 * that writes a sample folder (generate-images, sample, export-images).
 */

export const LABELS_FILE = "labels.tsv";
const HEADER = ["file", "class_id", "class_name"];

export interface LabelRow {
  file: string;
  classId: number;
  className: string;
}

/** Writes `<dir>/labels.tsv`; names and files must not hold tabs or newlines. */
export async function writeLabels(dir: string, rows: readonly LabelRow[]): Promise<string> {
  const lines = [HEADER.join("\t")];
  for (const r of rows) {
    for (const v of [r.file, r.className]) {
      if (/[\t\r\n]/.test(v)) throw new Error(`labels.tsv: '${v}' contains a tab or a line break`);
    }
    if (!Number.isInteger(r.classId) || r.classId < 0) {
      throw new Error(
        `labels.tsv: class id ${r.classId} of ${r.file} is not a non-negative integer`,
      );
    }
    lines.push(`${r.file}\t${r.classId}\t${r.className}`);
  }
  const path = `${dir.replace(/\/+$/, "")}/${LABELS_FILE}`;
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

/** Rows for images named by `files`, with class `ids[i]` and names from `names` (else the id). */
export function labelRows(
  files: readonly string[],
  ids: ArrayLike<number>,
  names?: readonly string[],
): LabelRow[] {
  if (files.length !== ids.length) {
    throw new Error(`labels.tsv: ${files.length} files but ${ids.length} class ids`);
  }
  return files.map((file, i) => ({
    file,
    classId: ids[i],
    className: names?.[ids[i]] ?? String(ids[i]),
  }));
}

/** `<dir>/labels.tsv` as file name -> class id, or null when the folder has none. */
export async function readLabels(dir: string): Promise<Map<string, number> | null> {
  const rows = await readLabelRows(dir);
  return rows ? new Map(rows.map((r) => [r.file, r.classId])) : null;
}

/** Every row of `<dir>/labels.tsv` in file order, or null when the folder has none. */
export async function readLabelRows(dir: string): Promise<LabelRow[] | null> {
  const path = `${dir.replace(/\/+$/, "")}/${LABELS_FILE}`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  if (lines.length === 0 || lines[0].split("\t")[0] !== HEADER[0]) {
    throw new Error(`${path}: expected a header line '${HEADER.join("\\t")}'`);
  }
  const seen = new Set<string>();
  return lines.slice(1).map((line, i) => {
    const [file, id, name] = line.split("\t");
    const classId = Number(id);
    if (!file || !Number.isInteger(classId) || classId < 0) {
      throw new Error(
        `${path}:${i + 2}: expected '<file>\\t<class id>\\t<class name>', got '${line}'`,
      );
    }
    if (seen.has(file)) throw new Error(`${path}:${i + 2}: '${file}' is listed twice`);
    seen.add(file);
    return { file, classId, className: name ?? String(classId) };
  });
}
