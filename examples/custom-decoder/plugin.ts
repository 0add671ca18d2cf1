/**
 * A complete decoder plugin: replace the VQGAN at the end of the pipeline with your own
 * image-token decoder, and have `deno task sample`, `deno task serve` and `DigitPipeline`
 * use it without a change to the pipeline's code.
 *
 * `PatchDecoder` is the simplest decoder that learns something: for every VQ code it keeps
 * the mean P x P patch of the training images that code stood for, and decodes a code grid by
 * laying those patches side by side. It is fitted from a dataset and that dataset's VQ codes
 * (the `vq.tokens` that `encode-vqgan` writes) by the step `fit-patch-decoder`.
 *
 * What makes the pipeline find and use it:
 *   1. its checkpoints describe themselves: `meta: { kind: "patch-decoder", config }`;
 *   2. the plugin registers a decoder of that name with `slot: "decoder"`, built from
 *      `{ checkpoint }`; the composer builds every checkpoint of that kind with it;
 *   3. the product has the `DecoderPart` members (mod.ts): `decode`, `gridSize`, `imageSize`,
 *      `dispose`, and `codebookSize`, which the composer checks against stage 2's codes.
 *
 *   deno task sample --plugin examples/custom-decoder/plugin.ts \
 *     --set stage1=outputs/demo/stage1 --set stage2=outputs/demo/stage2 \
 *     --set vqgan=outputs/patch-decoder/fit
 */

import type { DecoderPart, ImageBatch, TokenGrid } from "../../mod.ts";
import { definePlugin, s } from "../../mod.ts";
import { type DatasetSpec, openDataset } from "../../core/data/mod.ts";
import { loadCheckpoint, saveCheckpoint } from "../../core/io/checkpoint.ts";
import { makeHostTensor } from "../../core/io/host_tensor.ts";
import { readTokenFile } from "../../core/io/tokens.ts";

/** The checkpoint kind, and the name the decoder is registered under. */
export const PATCH_DECODER_KIND = "patch-decoder";

/** What a patch decoder's checkpoint records as its config. */
export interface PatchDecoderConfig {
  /** VQ codes it decodes. */
  codebookSize: number;
  /** Side of the code grid. */
  gridSize: number;
  /** Side of the square patch each code becomes. */
  patch: number;
}

/** VQ code grids -> images, one learnt mean patch per code. */
export class PatchDecoder implements DecoderPart {
  readonly name = PATCH_DECODER_KIND;
  readonly gridSize: number;
  readonly imageSize: number;
  readonly codebookSize: number;

  /** `patches`: `codebookSize` patches of `patch * patch * 3` bytes, one after the other. */
  constructor(readonly config: PatchDecoderConfig, readonly patches: Uint8Array) {
    const { codebookSize, gridSize, patch } = config;
    if (patches.length !== codebookSize * patch * patch * 3) {
      throw new Error(`patch-decoder: ${patches.length} bytes for ${codebookSize} patches`);
    }
    this.codebookSize = codebookSize;
    this.gridSize = gridSize;
    this.imageSize = gridSize * patch;
  }

  decode(grid: TokenGrid): Promise<ImageBatch> {
    const { gridSize: g, imageSize: side, codebookSize } = this;
    const P = this.config.patch;
    if (grid.height !== g || grid.width !== g) {
      throw new Error(`patch-decoder: ${grid.height}x${grid.width} grids, expected ${g}x${g}`);
    }
    const data = new Uint8Array(grid.count * side * side * 3);
    for (let n = 0; n < grid.count; n++) {
      for (let cell = 0; cell < g * g; cell++) {
        const code = grid.tokens[n * g * g + cell];
        if (code < 0 || code >= codebookSize) {
          throw new Error(`patch-decoder: code ${code} is outside 0..${codebookSize - 1}`);
        }
        const y0 = Math.floor(cell / g) * P, x0 = (cell % g) * P;
        for (let y = 0; y < P; y++) {
          const from = (code * P + y) * P * 3;
          data.set(
            this.patches.subarray(from, from + P * 3),
            ((n * side + y0 + y) * side + x0) * 3,
          );
        }
      }
    }
    return Promise.resolve({ data, count: grid.count, height: side, width: side });
  }

  /** Holds no device memory: nothing to free. */
  dispose(): void {}
}

/**
 * The mean patch of each code over `images` and their code grids `codes` (image i has grid i);
 * codes never used decode to mid grey.
 */
export function fitPatchDecoder(
  images: ImageBatch,
  codes: TokenGrid,
  codebookSize: number,
): PatchDecoder {
  const g = codes.height, P = images.width / g;
  if (!Number.isInteger(P) || images.height !== images.width || codes.width !== g) {
    throw new Error(`patch-decoder: ${images.width} px images do not split into ${g}x${g} patches`);
  }
  const size = P * P * 3;
  const sums = new Float64Array(codebookSize * size), uses = new Int32Array(codebookSize);
  for (let n = 0; n < codes.count; n++) {
    for (let cell = 0; cell < g * g; cell++) {
      const code = codes.tokens[n * g * g + cell];
      const y0 = Math.floor(cell / g) * P, x0 = (cell % g) * P;
      uses[code]++;
      for (let y = 0; y < P; y++) {
        for (let i = 0; i < P * 3; i++) {
          sums[code * size + y * P * 3 + i] +=
            images.data[((n * images.height + y0 + y) * images.width + x0) * 3 + i];
        }
      }
    }
  }
  const patches = new Uint8Array(codebookSize * size).fill(128);
  for (let c = 0; c < codebookSize; c++) {
    if (uses[c] === 0) continue;
    for (let i = 0; i < size; i++) patches[c * size + i] = Math.round(sums[c * size + i] / uses[c]);
  }
  return new PatchDecoder({ codebookSize, gridSize: g, patch: P }, patches);
}

/** Writes `<dir>/checkpoints/last`, a checkpoint that says what it is. */
export async function savePatchDecoder(decoder: PatchDecoder, dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/checkpoints`, { recursive: true });
  const patches = Int32Array.from(decoder.patches);
  const weights = new Map([["patches", makeHostTensor([patches.length], patches)]]);
  await saveCheckpoint(`${dir}/checkpoints/last`, weights, {
    kind: PATCH_DECODER_KIND,
    config: decoder.config,
  });
}

/** Reads a checkpoint that `savePatchDecoder` wrote (`<dir>/checkpoints/last`). */
export async function loadPatchDecoder(path: string): Promise<PatchDecoder> {
  const { weights, meta } = await loadCheckpoint(path.replace(/\.json$/, ""));
  const m = meta as { kind?: unknown; config?: PatchDecoderConfig };
  if (m?.kind !== PATCH_DECODER_KIND || m.config === undefined) {
    throw new Error(`${path} is not a ${PATCH_DECODER_KIND} checkpoint`);
  }
  const patches = weights.get("patches");
  if (patches === undefined) throw new Error(`${path}: no 'patches' weights`);
  return new PatchDecoder(m.config, Uint8Array.from(patches.data));
}

/** Images `first`.. of a dataset, as many as the code file has grids. */
async function readImages(spec: unknown, first: number, count: number): Promise<ImageBatch> {
  const dataset = await openDataset(spec as DatasetSpec);
  let data: Uint8Array | null = null, side = 0;
  for (let i = 0; i < count; i++) {
    const { image } = await dataset.get(first + i);
    side ||= image.width;
    if (image.width !== side || image.height !== side) {
      throw new Error(`fit-patch-decoder: image ${first + i} is not ${side}x${side}`);
    }
    data ??= new Uint8Array(count * side * side * 3);
    data.set(image.data, i * side * side * 3);
  }
  return { data: data!, count, height: side, width: side };
}

export default definePlugin({
  name: "example-patch-decoder",
  version: "0.1.0",
  description: "a decoder of VQ codes to mean image patches (examples/custom-decoder)",
  register(r) {
    r.decoder({
      name: PATCH_DECODER_KIND,
      slot: "decoder",
      description: "VQ codes -> the mean image patch of each code",
      options: s.object({ checkpoint: s.string({ nonEmpty: true }) }),
      create: (o) => loadPatchDecoder(o.checkpoint),
    });
    r.step({
      name: "fit-patch-decoder",
      description: "fit a patch decoder from a dataset and its VQ codes (encode-vqgan's vq.tokens)",
      params: s.object({
        dataset: s.any().describe("the dataset the codes were made from"),
        codes: s.string({ nonEmpty: true }).describe("token file of VQ codes, image i = grid i"),
        first: s.int({ min: 0 }).describe("dataset index of the first grid").default(0),
      }),
      outputs: () => ({ checkpoint: "checkpoints/last.json" }),
      run: async (p, ctx) => {
        const codes = await readTokenFile(p.codes);
        const images = await readImages(p.dataset, p.first, codes.count);
        const decoder = fitPatchDecoder(images, codes, codes.vocab);
        await savePatchDecoder(decoder, ctx.stepDir);
        ctx.log.info(`patch decoder of ${codes.vocab} codes from ${codes.count} images`);
      },
    });
  },
});
