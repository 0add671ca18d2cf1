/**
 * Datasets by description, for configs and the CLI:
 *   { kind: "shapes", size: 32, length: 10000, seed: 0 }
 *   { kind: "imagefolder", root: "/data/imagenet/train" }
 *   { kind: "fashion-mnist", split: "train", dir?: "/usr/share/datasets/fashion-mnist" }
 *   { kind: "idx", images: "...-images-idx3-ubyte.gz", labels: "...-labels-idx1-ubyte.gz" }
 *   { kind: "cifar10", dir: ".../cifar-10-batches-bin", split: "train" }
 *   { kind: "list", dir: ".../imagenet-sample", tsv: ".../labels.tsv", numClasses: 1000 }
 *
 * Any of them takes `offset` and `limit` to use items [offset, offset + limit) only, e.g.
 * { kind: "fashion-mnist", split: "train", limit: 4000 } for a quick run; `shuffle: seed` to
 * take the items in a seeded random order first (held-out slices of a folder sorted by
 * class); and `resize: N` to resize (short side, bicubic) and centre-crop every image to N x N.
 */

import { Cifar10Dataset } from "./cifar.ts";
import { type Dataset, DatasetSlice, imageListFromTsv } from "./dataset.ts";
import { ImageFolder } from "./image_folder.ts";
import { IdxDataset } from "./idx.ts";
import { ShapesDataset, type ShapeVariation } from "./shapes.ts";
import { ResizedDataset, ShuffledDataset } from "./views.ts";

export * from "./dataset.ts";
export * from "./loader.ts";
export { ImageFolder } from "./image_folder.ts";
export { IdxDataset, readIdx } from "./idx.ts";
export { Cifar10Dataset } from "./cifar.ts";
export { SHAPE_CLASSES, ShapesDataset } from "./shapes.ts";
export { ResizedDataset, ShuffledDataset } from "./views.ts";

export type DatasetSpec = SourceSpec & {
  offset?: number;
  limit?: number;
  shuffle?: number;
  resize?: number;
};

type SourceSpec =
  | {
    kind: "shapes";
    size?: number;
    length?: number;
    seed?: number;
    numClasses?: number;
    variation?: ShapeVariation;
  }
  | { kind: "imagefolder"; root: string }
  | { kind: "fashion-mnist"; split: "train" | "test"; dir?: string }
  | { kind: "idx"; images: string; labels: string }
  | { kind: "cifar10"; dir: string; split: "train" | "test" }
  | { kind: "list"; dir: string; tsv: string; numClasses: number };

export async function openDataset(spec: DatasetSpec): Promise<Dataset> {
  let ds = await openSource(spec);
  if (spec.shuffle !== undefined) ds = new ShuffledDataset(ds, spec.shuffle);
  if (spec.offset !== undefined || spec.limit !== undefined) {
    ds = new DatasetSlice(ds, spec.offset ?? 0, spec.limit ?? ds.length - (spec.offset ?? 0));
  }
  if (spec.resize !== undefined) ds = new ResizedDataset(ds, spec.resize);
  return ds;
}

function openSource(spec: SourceSpec): Promise<Dataset> {
  switch (spec.kind) {
    case "shapes":
      return Promise.resolve(new ShapesDataset(spec));
    case "imagefolder":
      return ImageFolder.open(spec.root);
    case "fashion-mnist":
      return IdxDataset.fashionMnist(spec.split, spec.dir);
    case "idx":
      return IdxDataset.open(spec.images, spec.labels);
    case "cifar10":
      return Cifar10Dataset.open(spec.dir, spec.split);
    case "list":
      return imageListFromTsv(spec.dir, spec.tsv, spec.numClasses);
    default:
      throw new Error(
        `openDataset: unknown kind "${
          (spec as { kind: string }).kind
        }" (shapes, imagefolder, fashion-mnist, idx, cifar10, list)`,
      );
  }
}
