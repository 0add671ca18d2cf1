/**
 * Our own training checkpoints: `<path>.safetensors` (weights) + `<path>.json` (metadata).
 *
 * Crash safety: each file is written to a temporary name, flushed, then renamed into place, and
 * the JSON is written last as the commit marker. Saving first removes the old JSON, so a save
 * interrupted at any point leaves either no checkpoint or a complete one, never a JSON paired with
 * half-written weights. Both files carry the same random save id, checked on load.
 */

import { formatError } from "./errors.ts";
import type { StateDict } from "./host_tensor.ts";
import { readSafetensors, writeSafetensors } from "./safetensors.ts";

const FORMAT = "digit-ts-checkpoint";
const SAVE_ID_KEY = "digit_ts_save_id";

interface Marker {
  format: typeof FORMAT;
  version: 1;
  saveId: string;
  weights: { file: string; bytes: number; tensors: number };
  meta: unknown;
}

export interface Checkpoint {
  weights: StateDict;
  meta: unknown;
}

function paths(path: string) {
  return { weights: `${path}.safetensors`, marker: `${path}.json` };
}

function tempName(target: string): string {
  return `${target}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

async function removeIfPresent(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** Writes `<path>.safetensors` and `<path>.json` (path has no extension). `meta` must be JSON. */
export async function saveCheckpoint(
  path: string,
  weights: StateDict,
  meta: unknown,
): Promise<void> {
  const p = paths(path);
  const saveId = crypto.randomUUID();
  const name = p.weights.split("/").pop()!;
  let metaJson: string;
  try {
    metaJson = JSON.stringify(meta ?? null);
  } catch (e) {
    throw new TypeError(
      `saveCheckpoint ${path}: meta is not JSON-serialisable: ${(e as Error).message}`,
    );
  }
  const weightsTmp = tempName(p.weights);
  const markerTmp = tempName(p.marker);
  try {
    await writeSafetensors(weightsTmp, weights, { [SAVE_ID_KEY]: saveId }, { sync: true });
    const bytes = (await Deno.stat(weightsTmp)).size;
    await removeIfPresent(p.marker); // un-commit the previous checkpoint before replacing weights
    await Deno.rename(weightsTmp, p.weights);
    const marker = `{"format":"${FORMAT}","version":1,"saveId":"${saveId}",` +
      `"weights":${
        JSON.stringify({ file: name, bytes, tensors: weights.size })
      },"meta":${metaJson}}\n`;
    const f = await Deno.open(markerTmp, { write: true, create: true, truncate: true });
    try {
      const data = new TextEncoder().encode(marker);
      let w = 0;
      while (w < data.length) w += await f.write(data.subarray(w));
      await f.sync();
    } finally {
      f.close();
    }
    await Deno.rename(markerTmp, p.marker);
  } finally {
    await removeIfPresent(weightsTmp);
    await removeIfPresent(markerTmp);
  }
}

async function readMarker(path: string): Promise<Marker> {
  const p = paths(path);
  let text: string;
  try {
    text = await Deno.readTextFile(p.marker);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw formatError(p.marker, "checkpoint not found (no committed .json)");
    }
    throw e;
  }
  let marker: Marker;
  try {
    marker = JSON.parse(text);
  } catch (e) {
    throw formatError(p.marker, `checkpoint metadata is not valid JSON: ${(e as Error).message}`);
  }
  if (marker?.format !== FORMAT || marker.version !== 1 || typeof marker.saveId !== "string") {
    throw formatError(p.marker, `not a ${FORMAT} v1 metadata file`);
  }
  return marker;
}

/** True when a committed checkpoint exists at `path` (both files present, marker readable). */
export async function checkpointExists(path: string): Promise<boolean> {
  try {
    await readMarker(path);
    await Deno.stat(paths(path).weights);
    return true;
  } catch {
    return false;
  }
}

/** Loads a checkpoint written by saveCheckpoint, checking the two files belong together. */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  const p = paths(path);
  const marker = await readMarker(path);
  let size: number;
  try {
    size = (await Deno.stat(p.weights)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw formatError(p.weights, "checkpoint weights missing");
    }
    throw e;
  }
  if (size !== marker.weights.bytes) {
    throw formatError(
      p.weights,
      `size ${size} differs from the ${marker.weights.bytes} bytes recorded in ${p.marker}`,
    );
  }
  const { tensors, metadata } = await readSafetensors(p.weights);
  if (metadata[SAVE_ID_KEY] !== marker.saveId) {
    throw formatError(
      p.weights,
      `save id ${
        metadata[SAVE_ID_KEY]
      } does not match ${p.marker} (${marker.saveId}): files from different saves`,
    );
  }
  return { weights: tensors, meta: marker.meta };
}
