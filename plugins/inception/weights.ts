/**
 * Loading the FID Inception-v3 weights. Two files carry them, both converted from the
 * TensorFlow graph `inception-2015-12-05` and both keyed with torchvision's Inception3
 * names (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_var`, `fc.weight`, ...):
 *   - pytorch-fid's   pt_inception-2015-12-05-6726825d.pth
 *   - torch-fidelity's weights-inception-2015-12-05-6726825d.pth
 * Files saved from a live PyTorch model also hold `*.num_batches_tracked` counters (unused
 * in eval mode, dropped here) and may carry a DataParallel `module.` prefix (stripped).
 * Nothing is downloaded: the user passes the path.
 */

import { loadStateDict } from "../../core/io/state_dict.ts";
import type { StateDict } from "../../core/io/host_tensor.ts";
import { FidInceptionV3, INCEPTION_CLASSES, POOL3_DIM } from "./model.ts";

export const WEIGHT_FILES = {
  "pytorch-fid": {
    file: "pt_inception-2015-12-05-6726825d.pth",
    url:
      "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
  },
  "torch-fidelity": {
    file: "weights-inception-2015-12-05-6726825d.pth",
    url:
      "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
  },
} as const;

const HINT = `the FID Inception-v3 weights are one of ${
  Object.values(WEIGHT_FILES).map((w) => `${w.file} (${w.url})`).join(" or ")
}; download one and pass its path (or the folder holding it)`;

/** A file path, or a folder containing one of the known weight files. */
async function resolveWeightsPath(path: string): Promise<string> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    throw new Error(`Inception weights: '${path}' does not exist; ${HINT}`);
  }
  if (!info.isDirectory) return path;
  for (const { file } of Object.values(WEIGHT_FILES)) {
    const candidate = `${path.replace(/\/+$/, "")}/${file}`;
    if (await Deno.stat(candidate).then((s) => s.isFile, () => false)) return candidate;
  }
  throw new Error(`Inception weights: folder '${path}' holds none of the known files; ${HINT}`);
}

/**
 * Maps the key names of a loaded file onto ours, and recognises the usual wrong files
 * (torchvision's ImageNet Inception, pytorch-fid's feature wrapper) with a pointed message.
 */
export function normalizeInceptionKeys(sd: StateDict, file: string): StateDict {
  let entries = [...sd].filter(([k]) => !k.endsWith(".num_batches_tracked"));
  if (entries.length > 0 && entries.every(([k]) => k.startsWith("module."))) {
    entries = entries.map(([k, v]) => [k.slice("module.".length), v]);
  }
  const keys = new Map(entries);
  if ([...keys.keys()].some((k) => /^blocks\.\d+\.\d+\.(conv|bn)\./.test(k))) {
    throw new Error(
      `Inception weights ${file}: keys 'blocks.N...' are pytorch-fid's InceptionV3 feature wrapper, which has ` +
        `no fc layer (IS needs it); ${HINT}`,
    );
  }
  const fc = keys.get("fc.weight");
  if ([...keys.keys()].some((k) => k.startsWith("AuxLogits.")) || (fc && fc.shape[0] === 1000)) {
    throw new Error(
      `Inception weights ${file}: this is torchvision's ImageNet Inception-v3 (1000 classes${
        fc ? `, fc.weight [${fc.shape}]` : ""
      }, AuxLogits), not the FID network; ${HINT}`,
    );
  }
  if (fc && (fc.shape[0] !== INCEPTION_CLASSES || fc.shape[1] !== POOL3_DIM)) {
    throw new Error(
      `Inception weights ${file}: fc.weight is [${fc.shape}], expected [${INCEPTION_CLASSES}, ${POOL3_DIM}]`,
    );
  }
  return keys;
}

/** Loads a state dict into `model` (checking names and shapes) and folds its BatchNorms. */
export async function loadInceptionStateDict(
  model: FidInceptionV3,
  sd: StateDict,
  file: string,
): Promise<void> {
  const normalized = normalizeInceptionKeys(sd, file);
  const expected = [...model.stateDict().keys()];
  const present = expected.filter((k) => normalized.has(k)).length;
  if (present < expected.length / 2) {
    const unexpected = [...normalized.keys()].filter((k) => !model.stateDict().has(k));
    throw new Error(
      `Inception weights ${file}: not an FID Inception-v3 state dict: only ${present} of the ${expected.length} ` +
        `expected keys are present (e.g. missing '${expected.find((k) => !normalized.has(k))}'` +
        `${
          unexpected.length ? `; unexpected '${unexpected.slice(0, 3).join("', '")}'` : ""
        }); ${HINT}`,
    );
  }
  model.loadStateDict(normalized, { strict: true, what: `Inception weights ${file}` });
  await model.prepare();
}

/** Builds the network from a weight file (or a folder holding one). */
export async function loadFidInception(path: string): Promise<FidInceptionV3> {
  const file = await resolveWeightsPath(path);
  let sd: StateDict;
  try {
    sd = await loadStateDict(file);
  } catch (e) {
    throw new Error(`Inception weights ${file}: cannot read: ${(e as Error).message}; ${HINT}`);
  }
  const model = new FidInceptionV3();
  try {
    await loadInceptionStateDict(model, sd, file);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
