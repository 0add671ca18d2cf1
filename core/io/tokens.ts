/**
 * Token files: the semantic (or VQ) token grids of a whole dataset, written once by the
 * tokenizer and read by stage 1 and stage 2 so that training does not re-run the
 * encoder every epoch.
 *
 * Format: a safetensors file with
 *   tokens  I32 (N, H*W)  token ids in raster order, without any dictionary offset
 *   labels  I32 (N)       class ids (optional)
 * and string metadata `format = "digit-tokens"`, `version = "1"`, `vocab` (K), `height`,
 * `width`, free-form `source`, and `class_names` (a JSON list, when the dataset names its
 * classes: stage 1 records them so the preview page can list them). Written to a temporary
 * name and renamed into place.
 */

import type { StateDict } from "./host_tensor.ts";
import { readSafetensors, writeSafetensors } from "./safetensors.ts";

export interface TokenFile {
  tokens: Int32Array;
  count: number;
  height: number;
  width: number;
  /** Size of the token vocabulary (K-Means clusters or VQ codebook entries). */
  vocab: number;
  labels?: Int32Array;
  source?: string;
  /** Names of the label ids, when the tokenized dataset has them. */
  classNames?: readonly string[];
}

export async function writeTokenFile(path: string, t: TokenFile): Promise<void> {
  const L = t.height * t.width;
  if (t.tokens.length !== t.count * L) {
    throw new Error(
      `${path}: ${t.tokens.length} tokens do not fill ${t.count} grids of ${t.height}x${t.width}`,
    );
  }
  if (t.labels && t.labels.length !== t.count) {
    throw new Error(`${path}: ${t.labels.length} labels for ${t.count} images`);
  }
  const sd: StateDict = new Map([["tokens", {
    dtype: "i32",
    shape: [t.count, L],
    data: t.tokens,
    sourceDtype: "i32",
  }]]);
  if (t.labels) {
    sd.set("labels", { dtype: "i32", shape: [t.count], data: t.labels, sourceDtype: "i32" });
  }
  const tmp = `${path}.tmp-${Deno.pid}`;
  await writeSafetensors(tmp, sd, {
    format: "digit-tokens",
    version: "1",
    vocab: String(t.vocab),
    height: String(t.height),
    width: String(t.width),
    source: t.source ?? "",
    ...(t.classNames ? { class_names: JSON.stringify(t.classNames) } : {}),
  }, { sync: true });
  await Deno.rename(tmp, path);
}

export async function readTokenFile(path: string): Promise<TokenFile> {
  const { tensors, metadata } = await readSafetensors(path);
  if (metadata.format !== "digit-tokens") {
    throw new Error(
      `${path}: not a token file (metadata format is '${
        metadata.format ?? "missing"
      }', expected 'digit-tokens')`,
    );
  }
  const tokens = tensors.get("tokens");
  const height = Number(metadata.height),
    width = Number(metadata.width),
    vocab = Number(metadata.vocab);
  if (
    !tokens || tokens.dtype !== "i32" || tokens.shape.length !== 2 ||
    tokens.shape[1] !== height * width
  ) {
    throw new Error(`${path}: 'tokens' must be I32 (N, ${height * width})`);
  }
  const data = tokens.data as Int32Array;
  for (let i = 0; i < data.length; i++) {
    if (data[i] < 0 || data[i] >= vocab) {
      throw new Error(
        `${path}: token ${data[i]} at index ${i} is outside the vocabulary 0..${vocab - 1}`,
      );
    }
  }
  const labels = tensors.get("labels");
  const classNames = classNamesOf(metadata.class_names);
  return {
    tokens: data,
    count: tokens.shape[0],
    height,
    width,
    vocab,
    labels: labels ? labels.data as Int32Array : undefined,
    source: metadata.source,
    ...(classNames ? { classNames } : {}),
  };
}

/** The `class_names` metadata as a list of strings; anything else names no class. */
function classNamesOf(json: string | undefined): string[] | undefined {
  if (json === undefined) return undefined;
  try {
    const v = JSON.parse(json);
    return Array.isArray(v) && v.every((n) => typeof n === "string") ? v : undefined;
  } catch {
    return undefined;
  }
}
