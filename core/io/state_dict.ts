/**
 * One entry point for weights in any supported file, plus the strict key/shape check that
 * PyTorch's `load_state_dict(strict=True)` performs.
 *
 * Formats are recognised by their first bytes, not by extension:
 *   "PK"               zip: torch.save archive (has data.pkl) or numpy .npz (has .npy entries)
 *   0x80               pickle: legacy torch.save, or a plain pickle
 *   "\x93NUMPY"        a single .npy array (its key is the file name without extension)
 *   u64 N, then "{"    safetensors
 */

import { openSource } from "./byte_source.ts";
import { formatError } from "./errors.ts";
import { isHostTensor, isWideIntTensor, type StateDict } from "./host_tensor.ts";
import { looksLikeNpy, npyKey, readNpy, readNpzFrom } from "./npy.ts";
import { looksLikeSafetensors, readSafetensors } from "./safetensors.ts";
import { loadTorch } from "./torch.ts";
import { looksLikeZip, ZipReader } from "./zip.ts";

export type WeightFormat = "torch-zip" | "npz" | "pickle" | "npy" | "safetensors";

export interface LoadStateDictOptions {
  /**
   * Keep only keys that start with this prefix, and remove it
   * (e.g. "pretrained_encoder." to take the DINOv2 weights out of a DiGIT checkpoint).
   */
  stripPrefix?: string;
  /** Prepended to every key after stripping. */
  addPrefix?: string;
  /**
   * Top-level entry holding the weights ("model", "state_dict"; "a/b" for nested). Default:
   * the file itself when it is a flat tensor dict, else its "state_dict" or "model" entry.
   */
  select?: string;
}

/** Identifies the format from the first bytes of a file. */
export function detectFormat(path: string): WeightFormat {
  const src = openSource(path);
  try {
    if (src.size === 0) throw formatError(path, "empty file");
    const head = src.read(0, Math.min(src.size, 16), "file header");
    if (looksLikeZip(head)) {
      const zip = new ZipReader(src);
      if (zip.names.some((n) => n === "data.pkl" || n.endsWith("/data.pkl"))) return "torch-zip";
      if (zip.names.some((n) => n.endsWith(".npy"))) return "npz";
      throw formatError(
        path,
        `zip archive is neither a torch.save file nor an .npz (entries: ${
          zip.names.slice(0, 5).join(", ")
        })`,
      );
    }
    if (looksLikeNpy(head)) return "npy";
    // Safetensors first: its 8-byte header length can start with the byte 0x80.
    if (looksLikeSafetensors(head, src.size)) return "safetensors";
    if (head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) return "pickle";
    const hex = [...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    throw formatError(path, `bad magic: unrecognised weight file format (first bytes ${hex})`);
  } finally {
    src.close();
  }
}

/** Loads the tensors of a weight file as a flat name → HostTensor map. */
export async function loadStateDict(
  path: string,
  opts: LoadStateDictOptions = {},
): Promise<StateDict> {
  const format = detectFormat(path);
  if (format !== "torch-zip" && format !== "pickle" && opts.select !== undefined) {
    throw formatError(
      path,
      `select '${opts.select}' only applies to pickled checkpoints, not ${format}`,
    );
  }
  let dict: StateDict;
  switch (format) {
    case "safetensors":
      dict = (await readSafetensors(path)).tensors;
      break;
    case "npy":
      dict = new Map([[npyKey(path), await readNpy(path)]]);
      break;
    case "npz": {
      const src = openSource(path);
      try {
        dict = readNpzFrom(new ZipReader(src));
      } finally {
        src.close();
      }
      break;
    }
    default:
      dict = pickTensorDict(await loadTorch(path), path, opts.select);
  }
  return renameKeys(dict, path, opts);
}

function isTensorDict(v: unknown): v is Map<unknown, unknown> {
  if (!(v instanceof Map) || v.size === 0) return false;
  for (const [k, x] of v) {
    if (typeof k !== "string" || !(isHostTensor(x) || isWideIntTensor(x))) return false;
  }
  return true;
}

function topKeys(v: unknown): string {
  return v instanceof Map ? [...v.keys()].slice(0, 12).map(String).join(", ") : typeof v;
}

/** Finds the tensor dict inside a loaded checkpoint. */
function pickTensorDict(loaded: unknown, file: string, select?: string): StateDict {
  let chosen: unknown = loaded;
  let where = "top level";
  let path = ""; // dotted, for naming keys in errors
  if (select !== undefined) {
    for (const part of select.split("/")) {
      if (!(chosen instanceof Map) || !chosen.has(part)) {
        throw formatError(
          file,
          `select '${select}': no entry '${part}' (keys: ${topKeys(chosen)})`,
        );
      }
      chosen = chosen.get(part);
    }
    where = `'${select}'`;
    path = select.split("/").join(".") + ".";
  } else if (!isTensorDict(loaded) && loaded instanceof Map) {
    for (const k of ["state_dict", "model"]) {
      if (loaded.get(k) instanceof Map) {
        chosen = loaded.get(k);
        where = `'${k}'`;
        path = `${k}.`;
        break;
      }
    }
  }
  if (!(chosen instanceof Map)) {
    throw formatError(
      file,
      `no tensor dict at ${where}: found ${chosen === null ? "None" : typeof chosen} (keys: ${
        topKeys(loaded)
      })`,
    );
  }
  const out: StateDict = new Map();
  for (const [k, v] of chosen) {
    // An integer tensor beyond int32 loads exactly; becoming a host tensor is where it must fit.
    if (isWideIntTensor(v)) {
      out.set(String(k), v.toHostTensor(path + String(k)));
      continue;
    }
    if (!isHostTensor(v)) {
      throw formatError(
        file,
        `entry '${String(k)}' in ${where} is not a tensor, so ${where} is not a state dict` +
          (select === undefined ? ` (top-level keys: ${topKeys(loaded)}; pass select)` : ""),
      );
    }
    out.set(String(k), v);
  }
  return out;
}

function renameKeys(dict: StateDict, file: string, opts: LoadStateDictOptions): StateDict {
  const { stripPrefix, addPrefix = "" } = opts;
  if (!stripPrefix && !addPrefix) return dict;
  const out: StateDict = new Map();
  for (const [k, v] of dict) {
    if (stripPrefix) {
      if (!k.startsWith(stripPrefix)) continue;
      out.set(addPrefix + k.slice(stripPrefix.length), v);
    } else {
      out.set(addPrefix + k, v);
    }
  }
  if (stripPrefix && out.size === 0) {
    const sample = [...dict.keys()].slice(0, 5).join(", ");
    throw formatError(
      file,
      `no key starts with '${stripPrefix}' (${dict.size} keys, e.g. ${sample})`,
    );
  }
  return out;
}

export interface ShapeMismatch {
  key: string;
  expected: number[];
  got: number[];
}

export interface StateDictReport {
  missing: string[];
  unexpected: string[];
  mismatched: ShapeMismatch[];
}

/** Raised by a strict checkStateDict; lists every problem at once. */
export class StateDictError extends Error {
  constructor(readonly what: string, readonly report: StateDictReport) {
    super(formatReport(what, report));
    this.name = "StateDictError";
  }
}

function formatReport(what: string, r: StateDictReport): string {
  const lines = [`${what}: state dict does not match the model`];
  if (r.missing.length) lines.push(`  missing keys (${r.missing.length}): ${r.missing.join(", ")}`);
  if (r.unexpected.length) {
    lines.push(`  unexpected keys (${r.unexpected.length}): ${r.unexpected.join(", ")}`);
  }
  if (r.mismatched.length) {
    lines.push(`  shape mismatches (${r.mismatched.length}):`);
    for (const m of r.mismatched) {
      lines.push(`    ${m.key}: expected [${m.expected}], got [${m.got}]`);
    }
  }
  return lines.join("\n");
}

/**
 * Compares a loaded state dict with the keys and shapes a model expects. With `strict`, any
 * missing, unexpected or shape-mismatched key throws one StateDictError listing all of them.
 */
export function checkStateDict(
  expected: Map<string, number[]>,
  got: StateDict,
  opts: { strict: boolean; what: string },
): StateDictReport {
  const report: StateDictReport = { missing: [], unexpected: [], mismatched: [] };
  for (const [key, shape] of expected) {
    const t = got.get(key);
    if (!t) report.missing.push(key);
    else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      report.mismatched.push({ key, expected: [...shape], got: [...t.shape] });
    }
  }
  for (const key of got.keys()) if (!expected.has(key)) report.unexpected.push(key);
  const bad = report.missing.length + report.unexpected.length + report.mismatched.length;
  if (opts.strict && bad > 0) throw new StateDictError(opts.what, report);
  return report;
}
