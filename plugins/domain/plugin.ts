/**
 * The domain plugin: an honest metric for small domains (issue 14), from a classifier the
 * project trains on the real data itself.
 *
 *   step    train-domain-classifier   train the CNN, check held-out accuracy, measure the
 *                                     real-vs-real floor, write classifier.json (train.ts)
 *   metric  domain                    class accuracy (labels.tsv), FD + floor, precision/recall,
 *                                     IS analogue, saturation (metric.ts)
 *
 * The `eval` step builds the same metric through the registry, with `metrics: [domain]` and
 * `domain_classifier`.
 */

import { definePlugin } from "../../core/registry.ts";
import { createDomainMetric, domainFactoryOptions } from "./metric_factory.ts";
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
      options: domainFactoryOptions,
      create: createDomainMetric,
    });
  },
});
