/**
 * The registered `domain` metric: its options, and `createDomainMetric`, which checks them
 * before any image goes through the network (labels.tsv, when asked for, covers the images;
 * the classifier checkpoint is there), then loads the classifier and reads the reference
 * (unless the caller feeds it the reference batches, as `eval` does).
 *
 * The `eval` step reaches this through the registry (`metrics: [domain]`), so plugins/metrics
 * never imports this plugin while this plugin builds on metrics' statistics.
 */

import { type Infer, s } from "../../core/config.ts";
import { LABELS_FILE, readLabels } from "../../core/data/labels.ts";
import type { Logger, RunContext } from "../../core/registry.ts";
import { ImageFolder } from "../metrics/folder.ts";
import { loadClassifier } from "./checkpoint.ts";
import { DomainMetric, DomainReference } from "./metric.ts";

export const domainFactoryOptions = s.object({
  classifier: s.string({
    nonEmpty: true,
    description: "classifier.json of a train-domain-classifier step",
  }),
  reference: s.string({ nonEmpty: true, description: "folder of real reference images" }),
  labels: s.string({
    nonEmpty: true,
    description: "folder whose labels.tsv gives the requested classes (default: none)",
  }).optional(),
  require_labels: s.bool({
    description: "fail (instead of skipping class accuracy) when `labels` has no labels.tsv",
  }).default(true),
  neighborhood: s.int({ min: 1 }).default(3),
  batch_size: s.int({ min: 1 }).default(64),
  limit: s.int({ min: 1, description: "use only the first N images of each folder" }).optional(),
  read_reference: s.bool({
    description:
      "read the reference folder here; false: the caller hands every reference batch to updateReference (eval reads it once for all its metrics)",
  }).default(true),
});
export type DomainFactoryOptions = Infer<typeof domainFactoryOptions>;

/** labels.tsv of `o.labels` (null: class accuracy is skipped), checked against its images. */
async function checkedLabels(
  o: DomainFactoryOptions,
  log: Logger,
): Promise<Map<string, number> | null> {
  if (o.labels === undefined) return null;
  const labels = await readLabels(o.labels);
  if (!labels) {
    if (o.require_labels) {
      throw new Error(
        `metric domain: require_labels is set but '${o.labels}' has no ${LABELS_FILE}; class accuracy needs it`,
      );
    }
    log.info(
      `metric domain: '${o.labels}' has no ${LABELS_FILE}: domain_class_accuracy is skipped (the other domain metrics are not)`,
    );
    return null;
  }
  // A labels folder need not hold the images it labels; when it does, every one scored needs
  // a row, and saying so now beats failing after the reference pass.
  const folder = await ImageFolder.open(o.labels).catch(() => null);
  const missing = (folder?.files ?? []).slice(0, o.limit)
    .map((f) => f.slice(f.lastIndexOf("/") + 1))
    .filter((f) => !labels.has(f));
  if (missing.length) {
    throw new Error(
      `metric domain: ${o.labels}/${LABELS_FILE} has no row for ${missing.length} image(s), e.g. ${
        missing.slice(0, 3).join(", ")
      }`,
    );
  }
  return labels;
}

/** Checks, then the classifier and the reference pass; the metric then takes generated images. */
export async function createDomainMetric(
  o: DomainFactoryOptions,
  ctx: RunContext,
): Promise<DomainMetric> {
  const labels = await checkedLabels(o, ctx.log);
  const folder = await ImageFolder.open(o.reference, "reference images");
  // loadClassifier names a missing checkpoint before it reads any weights.
  const classifier = await loadClassifier(o.classifier, "metric domain: classifier");
  try {
    const reference = new DomainReference(classifier);
    const options = { limit: o.limit, signal: ctx.signal };
    if (o.read_reference) {
      for await (const batch of folder.batches(o.batch_size, options)) {
        await reference.update(batch);
      }
    }
    return new DomainMetric(classifier, reference, {
      labels,
      labelsDir: o.labels,
      neighborhood: o.neighborhood,
      log: ctx.log,
    });
  } catch (e) {
    classifier.model.dispose();
    throw e;
  }
}
