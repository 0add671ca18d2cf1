/**
 * The domain classifier's own checkpoint (core/io/checkpoint.ts format): the weights without
 * optimiser state, and metadata that describes everything a metric needs to use it alone:
 * kind "domain-classifier", the architecture, the class names, the held-out accuracy and
 * the real-vs-real floor (see floor.ts).
 */

import { checkpointExists, loadCheckpoint, saveCheckpoint } from "../../core/io/checkpoint.ts";
import { hostStateDict } from "../../core/nn/module.ts";
import type { RealFloor } from "./floor.ts";
import { checkClassifierConfig, DomainClassifier, type DomainClassifierConfig } from "./model.ts";

export const CLASSIFIER_KIND = "domain-classifier";

export interface ClassifierMeta {
  kind: typeof CLASSIFIER_KIND;
  version: 1;
  config: DomainClassifierConfig;
  classNames: string[];
  /** Training and held-out data, as given to the step. */
  dataset: unknown;
  heldOut: { dataset: unknown; count: number; accuracy: number };
  /** The second real set of the floor, when it is not a part of the held-out set. */
  floorReference?: { dataset: unknown; count: number };
  floor: RealFloor;
  training: { steps: number; batchSize: number; seconds: number; seed: number };
}

export interface LoadedClassifier {
  model: DomainClassifier;
  meta: ClassifierMeta;
  path: string;
}

export async function saveClassifier(
  path: string,
  model: DomainClassifier,
  meta: ClassifierMeta,
): Promise<void> {
  await saveCheckpoint(path, await hostStateDict(model), meta);
}

/** `path` is the checkpoint without extension, or its `.json` marker. */
export async function loadClassifier(path: string, what: string): Promise<LoadedClassifier> {
  const base = path.replace(/\.json$/, "");
  if (!await checkpointExists(base)) {
    throw new Error(
      `${what}: no domain-classifier checkpoint at '${base}' (expected ${base}.json, written by train-domain-classifier)`,
    );
  }
  const ck = await loadCheckpoint(base);
  const meta = ck.meta as ClassifierMeta;
  if (meta?.kind !== CLASSIFIER_KIND || meta.version !== 1) {
    throw new Error(
      `${what}: '${base}' is a checkpoint of kind '${
        (meta as { kind?: string })?.kind ?? "unknown"
      }', not a ${CLASSIFIER_KIND} v1`,
    );
  }
  checkClassifierConfig(meta.config, `${what}: '${base}'`);
  const model = new DomainClassifier(meta.config);
  model.loadStateDict(ck.weights, { strict: true, what: `domain classifier ${base}` });
  model.eval();
  return { model, meta, path: base };
}

/** Class name of an id: the dataset's name, else the id itself. */
export function className(names: readonly string[] | undefined, id: number): string {
  return names?.[id] ?? String(id);
}
