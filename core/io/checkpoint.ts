/**
 * Our own training checkpoints: a JSON marker `<path>.json` that names a weights file
 * `<path>.<saveid>.safetensors` beside it.
 *
 * Crash safety: a save never touches the files of the previous checkpoint until the new one is
 * complete. It (1) writes the weights under a fresh name carrying the save id and flushes them,
 * (2) writes the marker to a temporary name and flushes it, (3) renames the marker over
 * `<path>.json` (atomic on POSIX), and only then (4) deletes the old weights file. A crash before
 * step 3 leaves the old marker naming the old, untouched weights; a crash after it leaves the new
 * checkpoint plus a stray file that the next save removes. Loading follows the marker and checks
 * that the weights carry the same save id and size.
 *
 * One writer per path: two processes saving the same checkpoint at once are not supported.
 */

import { formatError } from "./errors.ts";
import type { StateDict } from "./host_tensor.ts";
import { readRegularFileSync } from "./regular_file.ts";
import { readSafetensors, writeSafetensors } from "./safetensors.ts";

const FORMAT = "digit-ts-checkpoint";
const SAVE_ID_KEY = "digit_ts_save_id";
/** The marker holds a small JSON `meta`; anything near this size is not one. */
const MAX_MARKER_BYTES = 64 << 20;

interface Marker {
  format: typeof FORMAT;
  version: 1;
  saveId: string;
  /** `file` is a bare name in the marker's own folder. */
  weights: { file: string; bytes: number; tensors: number };
  meta: unknown;
}

export interface Checkpoint {
  weights: StateDict;
  meta: unknown;
}

/** The durable points of a save, in order; `SaveOptions.afterStep` is called after each. */
export type SaveStep = "weights-written" | "marker-written" | "committed" | "cleaned";

export interface SaveOptions {
  /**
   * Called once the step's effect is on disk. Crash tests use it to copy the folder as a crash
   * at that moment would leave it.
   */
  afterStep?: (step: SaveStep) => void | Promise<void>;
}

function splitPath(path: string): { dir: string; base: string } {
  const cut = path.lastIndexOf("/");
  return cut < 0
    ? { dir: ".", base: path }
    : { dir: path.slice(0, cut) || "/", base: path.slice(cut + 1) };
}

function markerPath(path: string): string {
  return `${path}.json`;
}

/** 16 hex digits: the save id, also part of the weights file name. */
function newSaveId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function weightsName(base: string, saveId: string): string {
  return `${base}.${saveId}.safetensors`;
}

/** Matches only names saveCheckpoint itself produces for this base, never another checkpoint's. */
function ownedFilePattern(base: string): RegExp {
  const b = base.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^${b}\\.(?:[0-9a-f]{16}\\.safetensors|json\\.tmp-\\d+-[0-9a-f]{8})$`);
}

async function removeIfPresent(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

async function writeFileSynced(path: string, text: string): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    const data = new TextEncoder().encode(text);
    let w = 0;
    while (w < data.length) w += await f.write(data.subarray(w));
    await f.sync();
  } finally {
    f.close();
  }
}

/** Flushes a rename to disk; best effort, as some platforms cannot open a directory. */
async function syncDir(dir: string): Promise<void> {
  try {
    const f = await Deno.open(dir, { read: true });
    try {
      await f.sync();
    } finally {
      f.close();
    }
  } catch {
    // not supported here: the rename is still atomic, only its durability is weaker
  }
}

/**
 * Writes a checkpoint at `path` (no extension): `<path>.<saveid>.safetensors` and the marker
 * `<path>.json`. `meta` must be JSON-serialisable. The previous checkpoint stays loadable until
 * the new one is committed.
 */
export async function saveCheckpoint(
  path: string,
  weights: StateDict,
  meta: unknown,
  opts: SaveOptions = {},
): Promise<void> {
  const { dir, base } = splitPath(path);
  const saveId = newSaveId();
  const file = weightsName(base, saveId);
  const weightsPath = `${dir}/${file}`;
  const markerTmp = `${markerPath(path)}.tmp-${Deno.pid}-${saveId.slice(0, 8)}`;
  const step = async (s: SaveStep) => await opts.afterStep?.(s);
  let metaJson: string;
  try {
    metaJson = JSON.stringify(meta ?? null);
  } catch (e) {
    throw new TypeError(
      `saveCheckpoint ${path}: meta is not JSON-serialisable: ${(e as Error).message}`,
    );
  }
  const previous = await readMarker(path).catch(() => null);
  let committed = false;
  try {
    await writeSafetensors(weightsPath, weights, { [SAVE_ID_KEY]: saveId }, { sync: true });
    await step("weights-written");
    const bytes = (await Deno.stat(weightsPath)).size;
    const marker: Marker = {
      format: FORMAT,
      version: 1,
      saveId,
      weights: { file, bytes, tensors: weights.size },
      meta: JSON.parse(metaJson),
    };
    await writeFileSynced(markerTmp, JSON.stringify(marker) + "\n");
    await step("marker-written");
    await Deno.rename(markerTmp, markerPath(path));
    committed = true;
    await syncDir(dir);
    await step("committed");
  } finally {
    // a failed save removes what it wrote; the previous checkpoint is untouched
    await removeIfPresent(markerTmp);
    if (!committed) await removeIfPresent(weightsPath);
  }
  // The old weights, and strays from saves that crashed, are no longer named by the marker.
  if (previous && previous.weights.file !== file) {
    await removeIfPresent(`${dir}/${previous.weights.file}`);
  }
  const owned = ownedFilePattern(base);
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name !== file && owned.test(entry.name)) {
      await removeIfPresent(`${dir}/${entry.name}`);
    }
  }
  await step("cleaned");
}

/** As a promise, so that callers' `.catch` sees its errors. */
function readMarker(path: string): Promise<Marker> {
  try {
    return Promise.resolve(readMarkerSync(path));
  } catch (e) {
    return Promise.reject(e);
  }
}

function readMarkerSync(path: string): Marker {
  const file = markerPath(path);
  try {
    Deno.statSync(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw formatError(file, "checkpoint not found (no committed .json)");
    }
    throw e;
  }
  // A FIFO or device named as the marker is refused instead of blocking or reading forever.
  const text = new TextDecoder().decode(
    readRegularFileSync(file, "checkpoint metadata", MAX_MARKER_BYTES),
  );
  let marker: Marker;
  try {
    marker = JSON.parse(text);
  } catch (e) {
    throw formatError(file, `checkpoint metadata is not valid JSON: ${(e as Error).message}`);
  }
  if (marker?.format !== FORMAT || marker.version !== 1 || typeof marker.saveId !== "string") {
    throw formatError(file, `not a ${FORMAT} v1 metadata file`);
  }
  const name = marker.weights?.file;
  if (typeof name !== "string" || name === "" || name.includes("/") || name.includes("\\")) {
    throw formatError(file, `weights file name ${JSON.stringify(name)} is not a bare file name`);
  }
  return marker;
}

function weightsPathOf(path: string, marker: Marker): string {
  return `${splitPath(path).dir}/${marker.weights.file}`;
}

/**
 * What a model checkpoint says about itself, in its meta: `kind` names the loader that reads it
 * (e.g. `stage1-gpt`, `stage2-ar`, `stage2-maskgit`, `vqgan`) and `config` is the model
 * configuration that loader needs. `untrained` marks never-trained baselines.
 */
export interface ModelMeta {
  kind: string;
  config: unknown;
  untrained?: boolean;
}

/** The `{kind, config, untrained?}` part of a checkpoint's meta, or null when it has none. */
export function modelMeta(meta: unknown): ModelMeta | null {
  if (meta === null || typeof meta !== "object") return null;
  const m = meta as Record<string, unknown>;
  if (typeof m.kind !== "string" || m.kind === "") return null;
  return {
    kind: m.kind,
    config: m.config,
    ...(m.untrained === true ? { untrained: true } : {}),
  };
}

/** The meta of the checkpoint at `path` without reading its weights. */
export async function readCheckpointMeta(path: string): Promise<unknown> {
  return (await readMarker(path)).meta;
}

/**
 * Compatibility with runs from before checkpoints described themselves: the parsed sidecar
 * `file` (e.g. `vqgan.json`) that training wrote beside `<dir>/checkpoints/`, looked up in the
 * checkpoint's own folder and the one above it; undefined when neither has one.
 */
export async function readLegacySidecar(path: string, file: string): Promise<unknown> {
  const dir = splitPath(path.replace(/\.json$/, "")).dir;
  for (const candidate of [`${dir}/${file}`, `${dir}/../${file}`]) {
    let text: string;
    try {
      text = await Deno.readTextFile(candidate);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    try {
      return JSON.parse(text);
    } catch (e) {
      throw formatError(candidate, `not valid JSON: ${(e as Error).message}`);
    }
  }
  return undefined;
}

/** True when a committed checkpoint exists at `path` (marker readable, its weights present). */
export async function checkpointExists(path: string): Promise<boolean> {
  try {
    const marker = await readMarker(path);
    await Deno.stat(weightsPathOf(path, marker));
    return true;
  } catch {
    return false;
  }
}

/**
 * Prefix of the optimiser's tensors in a training checkpoint (core/train/trainer.ts writes
 * them beside the model's, so that a run resumes exactly).
 */
export const OPTIM_PREFIX = "__optimizer__.";

/** A checkpoint's model weights without the optimiser state. */
export function modelWeights(sd: StateDict): StateDict {
  return new Map([...sd].filter(([k]) => !k.startsWith(OPTIM_PREFIX)));
}

/** Loads the checkpoint the marker `<path>.json` names, checking the files belong together. */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  const marker = await readMarker(path);
  const weightsPath = weightsPathOf(path, marker);
  let size: number;
  try {
    size = (await Deno.stat(weightsPath)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw formatError(weightsPath, `checkpoint weights named by ${markerPath(path)} are missing`);
    }
    throw e;
  }
  if (size !== marker.weights.bytes) {
    throw formatError(
      weightsPath,
      `size ${size} differs from the ${marker.weights.bytes} bytes recorded in ${markerPath(path)}`,
    );
  }
  const { tensors, metadata } = await readSafetensors(weightsPath);
  if (metadata[SAVE_ID_KEY] !== marker.saveId) {
    throw formatError(
      weightsPath,
      `save id ${metadata[SAVE_ID_KEY]} does not match ${
        markerPath(path)
      } (${marker.saveId}): files from different saves`,
    );
  }
  return { weights: tensors, meta: marker.meta };
}
