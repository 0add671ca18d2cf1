/**
 * IDX files (MNIST, Fashion-MNIST): big-endian header (0, 0, type 0x08 = ubyte, ndim),
 * ndim u32 sizes, then the data. Gzipped files are recognised by their magic bytes.
 * Images are (N, rows, cols) gray and come out as RGB by replication; labels (N,) ubyte.
 *
 * A broken IDX file is fatal at open (there is no per-item file to skip).
 */

import { grayToRgb } from "../image/rgb.ts";
import { checkIndex, type Dataset, type Sample } from "./dataset.ts";

export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";
export const FASHION_MNIST_CLASSES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];

export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Read an IDX file of unsigned bytes (gzip or not). */
export async function readIdx(path: string): Promise<IdxArray> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = await gunzip(bytes);
  } catch (e) {
    throw new Error(`readIdx: ${path}: ${(e as Error).message}`);
  }
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    throw new Error(`readIdx: ${path}: not an IDX file`);
  }
  if (bytes[2] !== 0x08) {
    throw new Error(
      `readIdx: ${path}: element type 0x${bytes[2].toString(16)} (only ubyte 0x08 is supported)`,
    );
  }
  const ndim = bytes[3];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4 + 4 * ndim) throw new Error(`readIdx: ${path}: truncated header`);
  const shape = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i));
  const count = shape.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * ndim;
  if (bytes.length - start !== count) {
    throw new Error(
      `readIdx: ${path}: header says [${shape.join(", ")}] = ${count} bytes, file has ${
        bytes.length - start
      }`,
    );
  }
  return { shape, data: bytes.subarray(start) };
}

export class IdxDataset implements Dataset {
  readonly length: number;
  readonly height: number;
  readonly width: number;

  private constructor(
    readonly name: string,
    private readonly images: Uint8Array,
    private readonly labels: Uint8Array,
    shape: number[],
    readonly numClasses: number,
    readonly classNames?: readonly string[],
  ) {
    [this.length, this.height, this.width] = shape;
  }

  static async open(
    imagesPath: string,
    labelsPath: string,
    classNames?: readonly string[],
  ): Promise<IdxDataset> {
    const [im, lb] = await Promise.all([readIdx(imagesPath), readIdx(labelsPath)]);
    if (im.shape.length !== 3) {
      throw new Error(
        `IdxDataset: ${imagesPath}: expected (N, rows, cols), got [${im.shape.join(", ")}]`,
      );
    }
    if (lb.shape.length !== 1 || lb.shape[0] !== im.shape[0]) {
      throw new Error(
        `IdxDataset: ${labelsPath}: expected (${im.shape[0]},) labels, got [${
          lb.shape.join(", ")
        }]`,
      );
    }
    let max = 0;
    for (const y of lb.data) max = Math.max(max, y);
    const numClasses = classNames?.length ?? max + 1;
    if (max >= numClasses) {
      throw new Error(`IdxDataset: ${labelsPath}: label ${max} >= ${numClasses} classes`);
    }
    return new IdxDataset(`idx:${imagesPath}`, im.data, lb.data, im.shape, numClasses, classNames);
  }

  /** Fashion-MNIST from a directory of the standard file names (Debian's dataset-fashion-mnist by default). */
  static async fashionMnist(
    split: "train" | "test",
    dir = FASHION_MNIST_DIR,
  ): Promise<IdxDataset> {
    const prefix = split === "train" ? "train" : "t10k";
    const found = await Deno.stat(`${dir}/${prefix}-images-idx3-ubyte.gz`).then(
      () => true,
      () => false,
    );
    if (!found) {
      throw new Error(
        `fashion-mnist: no ${prefix}-images-idx3-ubyte.gz in ${dir}; install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist) or set the spec's dir`,
      );
    }
    return await IdxDataset.open(
      `${dir}/${prefix}-images-idx3-ubyte.gz`,
      `${dir}/${prefix}-labels-idx1-ubyte.gz`,
      FASHION_MNIST_CLASSES,
    );
  }

  // deno-lint-ignore require-await
  async get(index: number): Promise<Sample> {
    checkIndex(this, index);
    const n = this.height * this.width;
    const gray = this.images.subarray(index * n, (index + 1) * n);
    return { image: grayToRgb(this.width, this.height, gray), label: this.labels[index] };
  }
}
