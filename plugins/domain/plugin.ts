/**
 * The domain plugin: an honest metric for small domains (issue 14), from a classifier the
 * project trains on the real data itself.
 *
 *   step    train-domain-classifier   train the CNN, check held-out accuracy, measure the
 *                                     real-vs-real floor, write classifier.json (train.ts)
 *   metric  domain                    class accuracy (labels.tsv), FD + floor, precision/recall,
 *                                     IS analogue, saturation (metric.ts)
 *
 * The `eval` step runs the same metric with `metrics: [domain]` and `domain_classifier`.
 */

import { s } from "../../core/config.ts";
import { useDevice } from "../../core/device.ts";
import { definePlugin } from "../../core/registry.ts";
import { ImageFolder } from "../metrics/folder.ts";
import { loadClassifier } from "./checkpoint.ts";
import { readLabels } from "../../core/data/labels.ts";
import { DomainMetric, DomainReference } from "./metric.ts";
import { trainClassifierOutputs, trainClassifierParams, trainClassifierStep } from "./train.ts";

export default definePlugin({
  name: "digit-domain",
  version: "0.1.0",
  description: "a domain classifier trained on the real data, and the metric built on it",
  register(r) {
    r.step({
      name: "train-domain-classifier",
      description:
        "train a small CNN on a dataset's real images; held-out accuracy and the real-vs-real floor",
      params: trainClassifierParams,
      outputs: trainClassifierOutputs,
      run: trainClassifierStep,
    });
    r.metric({
      name: "domain",
      description:
        "class accuracy, FD (with its real-vs-real floor), precision/recall, IS and saturation on a domain classifier",
      options: s.object({
        classifier: s.string({
          nonEmpty: true,
          description: "classifier.json of a train-domain-classifier step",
        }),
        reference: s.string({ nonEmpty: true, description: "folder of real reference images" }),
        labels: s.string({
          nonEmpty: true,
          description: "folder whose labels.tsv gives the requested classes (default: none)",
        }).optional(),
        neighborhood: s.int({ min: 1 }).default(3),
        batch_size: s.int({ min: 1 }).default(64),
      }),
      create: async (o, ctx) => {
        await useDevice(ctx.device);
        const classifier = await loadClassifier(o.classifier, "metric domain");
        const reference = new DomainReference(classifier);
        const folder = await ImageFolder.open(o.reference, "reference images");
        for await (const batch of folder.batches(o.batch_size, { signal: ctx.signal })) {
          await reference.update(batch);
        }
        const labels = o.labels ? await readLabels(o.labels) : null;
        if (o.labels && !labels) throw new Error(`metric domain: '${o.labels}' has no labels.tsv`);
        return new DomainMetric(classifier, reference, {
          labels,
          labelsDir: o.labels,
          neighborhood: o.neighborhood,
        });
      },
    });
  },
});
