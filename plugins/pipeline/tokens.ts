/**
 * Token files between the stages:
 *   - our token files (core/io/tokens.ts: safetensors, `format = digit-tokens`), as the
 *     tokenizer and `sample-stage1` write them;
 *   - DiGIT/fairseq `.codecs` text: one image per line, space-separated ids; a line may be
 *     `D-<id>\t<score>\t<ids>` (fairseq-generate output) or `<id>\t<ids>`;
 *   - `.npy` (N, L) integer array, or `.npz` with a `semantic` (or single) array.
 * Ids are raw cluster/code numbers (no dictionary offset). Lines of other fairseq kinds
 * (S-, H-, P-, ...) are skipped; image ids default to the line's position.
 */

import type { TokenGrid } from "../../core/interfaces.ts";
import { readNpy, readNpz } from "../../core/io/npy.ts";
import { readTokenFile as readCoreTokenFile } from "../../core/io/tokens.ts";

export interface GridFile {
  grid: TokenGrid;
  /** Image id of each row (from `D-<id>` / `<id>\t`, else the row number). */
  ids: string[];
  /** Class of each row, when the file records them (our token files from sample-stage1). */
  labels?: Int32Array;
}

function square(L: number): { height: number; width: number } {
  const s = Math.round(Math.sqrt(L));
  return s * s === L ? { height: s, width: s } : { height: 1, width: L };
}

export function parseCodecs(text: string, name = "<codecs>"): GridFile {
  const rows: number[][] = [];
  const ids: string[] = [];
  text.split("\n").forEach((raw, n) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const parts = line.split("\t");
    let id = String(rows.length);
    let body = line;
    if (/^[A-Z]-/.test(parts[0])) {
      if (!parts[0].startsWith("D-")) return; // S-, T-, H-, P- lines of fairseq-generate
      id = parts[0].slice(2);
      body = parts[parts.length - 1];
    } else if (parts.length >= 2) {
      id = parts[0];
      body = parts[parts.length - 1];
    }
    const toks = body.split(/\s+/).filter((t) => t !== "").map(Number);
    if (toks.some((t) => !Number.isInteger(t) || t < 0)) {
      throw new Error(
        `${name}:${n + 1}: expected non-negative integer token ids, got '${body.slice(0, 60)}'`,
      );
    }
    rows.push(toks);
    ids.push(id);
  });
  if (rows.length === 0) throw new Error(`${name}: no token lines`);
  // fairseq keeps generating past the image when </s> is late; DiGIT uses the first L.
  const L = Math.min(...rows.map((r) => r.length));
  const tokens = new Int32Array(rows.length * L);
  rows.forEach((r, i) => tokens.set(r.slice(0, L), i * L));
  return { grid: { tokens, count: rows.length, ...square(L) }, ids };
}

export function formatCodecs(grid: TokenGrid, ids?: readonly string[]): string {
  const L = grid.height * grid.width;
  const lines: string[] = [];
  for (let i = 0; i < grid.count; i++) {
    lines.push(
      `${ids?.[i] ?? i}\t${Array.from(grid.tokens.subarray(i * L, (i + 1) * L)).join(" ")}`,
    );
  }
  return lines.join("\n") + "\n";
}

/** Read semantic (or VQ) token grids from a token file, `.codecs`/`.txt`, `.npy` or `.npz`. */
export async function readTokenGrids(path: string, key = "semantic"): Promise<GridFile> {
  if (/\.(codecs|txt)$/.test(path)) return parseCodecs(await Deno.readTextFile(path), path);
  if (path.endsWith(".npy") || path.endsWith(".npz")) {
    const t = path.endsWith(".npy") ? await readNpy(path) : await (async () => {
      const all = await readNpz(path);
      const pick = all.get(key) ?? (all.size === 1 ? [...all.values()][0] : undefined);
      if (!pick) {
        throw new Error(`${path}: no '${key}' array (arrays: ${[...all.keys()].join(", ")})`);
      }
      return pick;
    })();
    if (t.shape.length !== 2 || t.dtype !== "i32") {
      throw new Error(
        `${path}: expected an (N, L) integer array, got ${t.sourceDtype} [${t.shape}]`,
      );
    }
    const [N, L] = t.shape;
    return {
      grid: { tokens: Int32Array.from(t.data), count: N, ...square(L) },
      ids: Array.from({ length: N }, (_, i) => String(i)),
    };
  }
  const f = await readCoreTokenFile(path);
  return {
    grid: { tokens: f.tokens, count: f.count, height: f.height, width: f.width },
    ids: Array.from({ length: f.count }, (_, i) => String(i)),
    labels: f.labels,
  };
}
