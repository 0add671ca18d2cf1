/**
 * Batches from a Dataset: seeded per-epoch shuffling, per-sample seeded transforms,
 * uint8 NHWC ImageBatch + labels, and asynchronous prefetch of the following batches.
 *
 * Determinism and resume: the order of epoch e is a permutation drawn from an Rng
 * seeded by (seed, e), and the transform of the item at (epoch, position) gets its own
 * Rng seeded by (seed, epoch, position). So a loader is fully described by
 * { epoch, position } (see state()/LoaderOptions.state): a resumed run sees exactly the
 * batches an uninterrupted one would, whatever the prefetch depth.
 *
 * Bad items: with onError "fail" the first unreadable item stops the run (the error names
 * the file); with "skip" it is counted, warned about and replaced by the next item in the
 * order. A loader that cannot make progress (every item failing, or fewer good items in an
 * epoch than one batch with dropLast) throws instead of spinning.
 */

import type { ImageBatch } from "../interfaces.ts";
import type { RgbImage } from "../image/rgb.ts";
import { hashBits, Rng } from "../random.ts";
import type { Dataset, OnError } from "./dataset.ts";

export interface LoaderState {
  epoch: number;
  /** Items of this epoch's order already consumed (including skipped ones). */
  position: number;
}

/** Per-sample transform; must return images of one fixed size so they can be batched. */
export type SampleTransform = (image: RgbImage, gen: Rng) => RgbImage;

export interface LoaderOptions {
  batchSize: number;
  /** Shuffle each epoch (default true); false keeps dataset order. */
  shuffle?: boolean;
  seed?: number;
  /** Drop the short batch at the end of each epoch (default false). */
  dropLast?: boolean;
  transform?: SampleTransform;
  onError?: OnError;
  /** Batches decoded ahead of the consumer (default 1; 0 disables prefetch). */
  prefetch?: number;
  /** Where to start (from a checkpoint); default { epoch: 0, position: 0 }. */
  state?: LoaderState;
  /** Called for every skipped item. Default: console.warn. */
  onWarning?: (message: string) => void;
}

export interface Batch {
  images: ImageBatch;
  labels: Int32Array;
  /** Dataset indices of the items, in batch order. */
  indices: Int32Array;
  epoch: number;
  /** Loader state after this batch: save it to resume right after it. */
  stateAfter: LoaderState;
}

export class DataLoader {
  readonly batchSize: number;
  readonly seed: number;
  /** Items skipped so far because they could not be read. */
  skipped = 0;
  /** The first 100 skip messages. */
  readonly warnings: string[] = [];

  private readonly opts: LoaderOptions;
  private consumed: LoaderState;
  /** State after the last batch queued for production. */
  private produced: LoaderState;
  private readonly queue: Promise<Batch>[] = [];
  private orders = new Map<number, Int32Array>();

  constructor(readonly dataset: Dataset, opts: LoaderOptions) {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
      throw new Error(`DataLoader: batchSize must be a positive integer, got ${opts.batchSize}`);
    }
    if (dataset.length === 0) throw new Error(`DataLoader: dataset ${dataset.name} is empty`);
    if (opts.dropLast && dataset.length < opts.batchSize) {
      throw new Error(
        `DataLoader: dropLast with ${dataset.length} items < batchSize ${opts.batchSize} would yield nothing`,
      );
    }
    this.opts = opts;
    this.batchSize = opts.batchSize;
    this.seed = (opts.seed ?? 0) >>> 0;
    const s = opts.state ?? { epoch: 0, position: 0 };
    if (s.position < 0 || s.position > dataset.length) {
      throw new Error(`DataLoader: state position ${s.position} outside [0, ${dataset.length}]`);
    }
    this.consumed = { ...s };
    this.produced = { ...s };
  }

  /** State to checkpoint: where the next batch handed out by next() starts. */
  state(): LoaderState {
    return { ...this.consumed };
  }

  /** Batches per epoch (ignoring skipped items). */
  get batchesPerEpoch(): number {
    const n = this.dataset.length / this.batchSize;
    return this.opts.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** The item order of an epoch. */
  order(epoch: number): Int32Array {
    let o = this.orders.get(epoch);
    if (!o) {
      const n = this.dataset.length;
      if (this.opts.shuffle === false) o = Int32Array.from({ length: n }, (_, i) => i);
      else o = new Rng(hashBits(this.seed, 2 * epoch)).permutation(n);
      if (this.orders.size > 2) this.orders.delete(this.orders.keys().next().value!);
      this.orders.set(epoch, o);
    }
    return o;
  }

  /** The next batch; epochs follow each other without end (see batch.epoch). */
  async next(): Promise<Batch> {
    if (this.queue.length === 0) this.enqueue();
    const batch = await this.queue.shift()!;
    this.consumed = { ...batch.stateAfter };
    const depth = this.opts.prefetch ?? 1;
    while (this.queue.length < depth) this.enqueue();
    return batch;
  }

  /** Iterate the batches that remain in the current epoch. */
  async *epoch(): AsyncGenerator<Batch> {
    const e = this.consumed.epoch;
    while (this.consumed.epoch === e) {
      const b = await this.next();
      if (b.epoch !== e) throw new Error("DataLoader: internal error, batch crossed an epoch");
      yield b;
    }
  }

  /** Wait for prefetches in flight to settle (call before dropping the loader). */
  async close(): Promise<void> {
    const pending = this.queue.splice(0);
    await Promise.allSettled(pending);
    this.produced = { ...this.consumed };
  }

  private enqueue(): void {
    const prev = this.queue.length > 0 ? this.queue[this.queue.length - 1] : undefined;
    const start = prev ? undefined : { ...this.produced };
    const p = (async () => {
      const from = start ?? (await prev!).stateAfter;
      const b = await this.produce(from);
      this.produced = { ...b.stateAfter };
      return b;
    })();
    p.catch(() => {}); // surfaced by next(); avoid an unhandled rejection meanwhile
    this.queue.push(p);
  }

  private warn(msg: string): void {
    this.skipped++;
    if (this.warnings.length < 100) this.warnings.push(msg);
    (this.opts.onWarning ?? ((m: string) => console.warn(m)))(msg);
  }

  private async produce(from: LoaderState): Promise<Batch> {
    const ds = this.dataset;
    const n = ds.length;
    let { epoch, position } = from;
    const images: RgbImage[] = [];
    const labels: number[] = [];
    const indices: number[] = [];
    let failuresInARow = 0;
    let epochsCrossed = 0;
    for (;;) {
      if (position >= n) {
        if (images.length > 0 && !this.opts.dropLast) break; // short last batch
        if (++epochsCrossed > 1) {
          throw new Error(
            `DataLoader: ${ds.name}: a whole epoch gave no full batch (${this.skipped} items skipped so far)`,
          );
        }
        images.length = labels.length = indices.length = 0; // dropLast: discard the remainder
        epoch++;
        position = 0;
      }
      const index = this.order(epoch)[position];
      const itemSeed = hashBits(hashBits(this.seed, 2 * epoch + 1), position);
      position++;
      try {
        const s = await ds.get(index);
        const img = this.opts.transform ? this.opts.transform(s.image, new Rng(itemSeed)) : s.image;
        if (
          images.length > 0 && (img.width !== images[0].width || img.height !== images[0].height)
        ) {
          throw new Error(
            `size ${img.width}x${img.height} differs from the batch's ${images[0].width}x${
              images[0].height
            }; add a transform that crops to a fixed size`,
          );
        }
        images.push(img);
        labels.push(s.label);
        indices.push(index);
        failuresInARow = 0;
      } catch (e) {
        const where = ds.describe?.(index) ?? `item ${index}`;
        const msg = (e as Error).message;
        const text = msg.includes(where) ? msg : `${where}: ${msg}`;
        if ((this.opts.onError ?? "fail") === "fail") {
          throw new Error(`DataLoader: ${ds.name}: ${text}`);
        }
        this.warn(`DataLoader: skipped ${text}`);
        // 2n-1 consecutive positions always contain one whole epoch: then nothing loads.
        if (++failuresInARow >= 2 * n - 1) {
          throw new Error(`DataLoader: ${ds.name}: every item failed to load (last: ${text})`);
        }
      }
      if (images.length === this.batchSize) break;
    }
    const stateAfter = position >= n ? { epoch: epoch + 1, position: 0 } : { epoch, position };
    return {
      images: stackImages(images),
      labels: Int32Array.from(labels),
      indices: Int32Array.from(indices),
      epoch,
      stateAfter,
    };
  }
}

/** Same-size RGB images to one NHWC uint8 batch. */
export function stackImages(images: RgbImage[]): ImageBatch {
  if (images.length === 0) throw new Error("stackImages: no images");
  const { width, height } = images[0];
  const per = width * height * 3;
  const data = new Uint8Array(per * images.length);
  images.forEach((im, i) => {
    if (im.width !== width || im.height !== height) {
      throw new Error(
        `stackImages: image ${i} is ${im.width}x${im.height}, expected ${width}x${height}`,
      );
    }
    data.set(im.data, i * per);
  });
  return { data, count: images.length, height, width };
}
