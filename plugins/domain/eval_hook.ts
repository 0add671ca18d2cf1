/**
 * What the `eval` step (plugins/metrics/eval.ts) needs for its `domain` metric. `planDomain`
 * checks, before the device starts or any image is read, that the classifier checkpoint is
 * there and that the generated folder's labels.tsv covers its images (absent: class accuracy
 * is skipped with a log line, unless `require_labels`). `loadDomain` then loads the
 * classifier on the current device.
 */

import { checkpointExists } from "../../core/io/checkpoint.ts";
import type { Logger } from "../../core/registry.ts";
import { loadClassifier, type LoadedClassifier } from "./checkpoint.ts";
import { LABELS_FILE, readLabels } from "../../core/data/labels.ts";
import { DomainMetric, DomainReference } from "./metric.ts";

export interface DomainPlan {
  classifierPath: string;
  labels: Map<string, number> | null;
  generatedDir: string;
}

export interface DomainScorer {
  plan: DomainPlan;
  classifier: LoadedClassifier;
  /** Feed it every reference batch, then ask for `metric()`. */
  reference: DomainReference;
}

export async function planDomain(o: {
  classifier: string | undefined;
  generatedDir: string;
  /** The generated image paths that will be scored. */
  generatedFiles: readonly string[];
  requireLabels: boolean;
  log: Logger;
}): Promise<DomainPlan> {
  if (!o.classifier) {
    throw new Error(
      "eval: metric 'domain' needs domain_classifier (the classifier.json written by a train-domain-classifier step)",
    );
  }
  const labels = await readLabels(o.generatedDir);
  if (!labels) {
    if (o.requireLabels) {
      throw new Error(
        `eval: require_labels is set but '${o.generatedDir}' has no ${LABELS_FILE}; class accuracy needs it`,
      );
    }
    o.log.info(
      `eval: '${o.generatedDir}' has no ${LABELS_FILE}: domain_class_accuracy is skipped (the other domain metrics are not)`,
    );
  } else {
    const missing = o.generatedFiles.map((f) => f.slice(f.lastIndexOf("/") + 1)).filter((f) =>
      !labels.has(f)
    );
    if (missing.length) {
      throw new Error(
        `eval: ${o.generatedDir}/${LABELS_FILE} has no row for ${missing.length} image(s), e.g. ${
          missing.slice(0, 3).join(", ")
        }`,
      );
    }
  }
  const classifierPath = o.classifier.replace(/\.json$/, "");
  if (!await checkpointExists(classifierPath)) {
    throw new Error(
      `eval: domain_classifier '${o.classifier}' is not a checkpoint (no ${classifierPath}.json with its weights)`,
    );
  }
  return { classifierPath, labels, generatedDir: o.generatedDir };
}

export async function loadDomain(plan: DomainPlan): Promise<DomainScorer> {
  const classifier = await loadClassifier(plan.classifierPath, "eval: domain_classifier");
  return { plan, classifier, reference: new DomainReference(classifier) };
}

export function domainMetric(scorer: DomainScorer, neighborhood: number): DomainMetric {
  return new DomainMetric(scorer.classifier, scorer.reference, {
    labels: scorer.plan.labels,
    labelsDir: scorer.plan.generatedDir,
    neighborhood,
  });
}
