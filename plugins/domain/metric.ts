/**
 * The domain metric: a sample folder judged by the domain classifier (train.ts).
 *
 *   domain_class_accuracy   share of images classified as the class labels.tsv says was asked for
 *   domain_fd               Frechet distance on penultimate features against the reference images
 *   domain_fd_floor         the same for two disjoint *real* sets of the floor's sizes (floor.ts)
 *   domain_precision/recall Kynkaanniemi et al. (k = 3) on the same features, against the reference
 *   domain_precision_floor / domain_recall_floor   their real-vs-real values
 *   domain_is               exp(E KL(p(y|x) || p(y))) on the classifier's softmax (1 .. classes)
 *   domain_is_reference     the same for the reference images
 *   saturation / reference_saturation   mean HSV saturation (max - min) / max of the pixels
 *
 * The reference is read first (DomainReference), then the generated batches (DomainMetric).
 */

import type { ImageBatch, Metric, MetricResult } from "../../core/interfaces.ts";
import { frechetDistanceOfStats } from "../metrics/frechet.ts";
import { FeatureRows } from "../metrics/prc.ts";
import { precisionRecall } from "../metrics/precision_recall.ts";
import { FeatureStats } from "../metrics/stats.ts";
import type { LoadedClassifier } from "./checkpoint.ts";
import { classify, inceptionScore, SaturationMean } from "./features.ts";
import { LABELS_FILE } from "../../core/data/labels.ts";
import type { Logger } from "../../core/registry.ts";

/** Features, probabilities and saturation of one image set. */
class FeatureSet {
  readonly rows: FeatureRows;
  readonly stats: FeatureStats;
  readonly probs: FeatureRows;
  readonly saturation = new SaturationMean();

  constructor(readonly classifier: LoadedClassifier) {
    this.rows = new FeatureRows(classifier.model.cfg.featureDim);
    this.stats = new FeatureStats(classifier.model.cfg.featureDim);
    this.probs = new FeatureRows(classifier.model.cfg.numClasses);
  }

  async update(images: ImageBatch): Promise<Int32Array> {
    const c = await classify(this.classifier.model, images);
    this.rows.push(c.features);
    this.stats.update(c.features);
    this.probs.push(c.probs);
    this.saturation.update(images);
    return c.predicted;
  }

  get count(): number {
    return this.rows.rows;
  }

  is(): number {
    return inceptionScore(this.probs.data, this.classifier.model.cfg.numClasses);
  }
}

/** The reference images' features; feed it every reference batch before scoring. */
export class DomainReference extends FeatureSet {}

export interface DomainMetricOptions {
  /** File name -> requested class (labels.tsv), or null to skip class accuracy. */
  labels: Map<string, number> | null;
  /** The folder the labels came from, for messages. */
  labelsDir?: string;
  /** k of precision/recall (default 3). */
  neighborhood?: number;
  /** Where `compute` warns when the floor was measured for other set sizes. */
  log?: Logger;
}

const baseName = (path: string) => path.slice(path.lastIndexOf("/") + 1);

export class DomainMetric implements Metric {
  readonly name = "domain";
  #generated: FeatureSet;
  #right = 0;
  #labelled = 0;

  constructor(
    readonly classifier: LoadedClassifier,
    readonly reference: DomainReference,
    readonly options: DomainMetricOptions,
  ) {
    this.#generated = new FeatureSet(classifier);
  }

  /** A reference batch, for a metric built without reading the reference itself. */
  async updateReference(images: ImageBatch): Promise<void> {
    await this.reference.update(images);
  }

  /** Batches from an image folder carry `files`, which labels.tsv is keyed by. */
  async update(images: ImageBatch & { files?: string[] }): Promise<void> {
    const predicted = await this.#generated.update(images);
    const labels = this.options.labels;
    if (!labels) return;
    if (!images.files) {
      throw new Error("domain metric: class accuracy needs the file names of the images");
    }
    const classes = this.classifier.model.cfg.numClasses;
    images.files.forEach((path, i) => {
      const file = baseName(path);
      const want = labels.get(file);
      if (want === undefined) {
        throw new Error(
          `domain metric: ${
            this.options.labelsDir ?? "the folder"
          }/${LABELS_FILE} has no row for '${file}'`,
        );
      }
      if (want >= classes) {
        throw new Error(
          `domain metric: ${LABELS_FILE} gives '${file}' class ${want}, the classifier knows ${classes}`,
        );
      }
      if (predicted[i] === want) this.#right++;
      this.#labelled++;
    });
  }

  compute(): Promise<MetricResult> {
    const g = this.#generated, r = this.reference;
    const k = this.options.neighborhood ?? 3;
    for (const [what, set] of [["generated", g], ["reference", r]] as const) {
      if (set.count < k + 1) {
        throw new Error(`domain metric: ${set.count} ${what} image(s); needs at least ${k + 1}`);
      }
    }
    const dim = this.classifier.model.cfg.featureDim;
    const pr = precisionRecall(r.rows.data, r.count, g.rows.data, g.count, dim, {
      neighborhood: k,
    });
    const floor = this.classifier.meta.floor;
    const out: MetricResult = {};
    if (this.#labelled > 0) out.domain_class_accuracy = this.#right / this.#labelled;
    Object.assign(out, {
      domain_fd: frechetDistanceOfStats(g.stats.finalize(), r.stats.finalize()),
      domain_fd_floor: floor.fd,
      domain_precision: pr.precision,
      domain_recall: pr.recall,
      domain_precision_floor: floor.precision,
      domain_recall_floor: floor.recall,
      domain_is: g.is(),
      domain_is_reference: r.is(),
      saturation: g.saturation.value(),
      reference_saturation: r.saturation.value(),
    });
    const note = this.floorSizeNote();
    if (note) this.options.log?.warn(note);
    return Promise.resolve(out);
  }

  reset(): void {
    this.#generated = new FeatureSet(this.classifier);
    this.#right = 0;
    this.#labelled = 0;
  }

  /** Frees the classifier's weights. */
  dispose(): void {
    this.classifier.model.dispose();
  }

  /** A line when the floor was measured with other set sizes than these (see floor.ts). */
  floorSizeNote(): string | null {
    const f = this.classifier.meta.floor;
    const g = this.#generated.count, r = this.reference.count;
    if (f.generated === g && f.reference === r) return null;
    return `domain_fd_floor was measured for ${f.generated} vs ${f.reference} real images, ` +
      `these sets are ${g} generated vs ${r} reference; FD grows as sets shrink, so compare ` +
      `with care (set the classifier's floor.generated/floor.reference to match)`;
  }
}
