/**
 * The public generation API: load a DiGIT pipeline (stage 1 -> stage 2 -> VQGAN) from our run
 * folders, our checkpoints or the released files, and generate images.
 *
 * Sampling follows the `sample` step: stage 1 draws batch by batch, batch i..i+B from
 * seed + i; stage 2 gives image k its own random stream (seed, k). So the same options give
 * the images `deno task sample` writes for the same parts and settings.
 */

import type { DeviceName } from "../../core/device.ts";
import { startRun } from "../../core/run_context.ts";
import type { ImageBatch, TokenGrid } from "../../core/interfaces.ts";
import { type Plugin, type PluginFactory, Registry, silentLogger } from "../../core/registry.ts";
import { encodePng } from "../../core/image/png.ts";
import { buildParts, checkFit, disposeParts } from "./build.ts";
import { type PartRef, resolveParts } from "./parts.ts";
import type { DecoderPart, Stage1Part, Stage2Part } from "./roles.ts";

/** Where the three parts come from. */
export interface DigitPipelineSources {
  /**
   * Stage 1: one of our run folders (e.g. `outputs/demo/stage1`), a checkpoint
   * (`<dir>/checkpoints/last`) or DiGIT's released fairseq stage-1 `.pt`.
   */
  stage1?: string;
  /** Stage 2: a run folder, a checkpoint, or DiGIT's released stage-2 `.pt`. */
  stage2?: string;
  /**
   * The VQGAN: a run folder, a checkpoint or MAGE's `.ckpt`. May be left out when stage 2 is
   * a DiGIT `.pt`, which holds its VQGAN.
   */
  vqgan?: string;
  /**
   * A folder searched for the parts not given (e.g. `outputs/demo`): in each role, the most
   * recently saved trained checkpoint under it, found by its kind.
   */
  dir?: string;
  /** `cpu`, `webgpu` or `auto` (default: the GPU when one works, else the CPU). */
  device?: DeviceName;
  /** Which checkpoint of a run folder (default `last`). */
  checkpoint?: "last" | "best";
  /**
   * VQGAN details its weights do not show, for released files (e.g. `{ normGroups: 8 }`);
   * our own checkpoints record them.
   */
  vqganConfig?: {
    /** GroupNorm groups (default: 32 when every width allows it). */
    normGroups?: number;
    /** Image side in pixels (default: a 16x16 code grid). */
    resolution?: number;
  };
  /**
   * More plugins, registered after the built-in ones: a plugin whose generator or decoder
   * has a `slot` builds the checkpoints of its kind (see examples/custom-decoder).
   */
  plugins?: readonly (Plugin | PluginFactory)[];
}

/** Where a loaded part came from. */
export interface PartSource {
  /** A checkpoint path (no `.json`) or a released file. */
  path: string;
  /**
   * `stage1-gpt`, `stage2-ar`, `stage2-maskgit`, `vqgan` (our checkpoints), `stage1-fairseq`,
   * `stage2-digit`, `vqgan-weights` (released files) or `vqgan-in-stage2`.
   */
  kind: string;
}

/** Progress of one stage of `generate`. */
export interface GenerateProgress {
  /** The stage running. */
  stage: "stage 1" | "stage 2" | "decode";
  /** Work done in this stage (stage 1: tokens over all images; stage 2, decode: images or steps). */
  done: number;
  /** The stage's total. */
  total: number;
}

/** Sampling settings of `generate`; everything has DiGIT's default. */
export interface GenerateOptions {
  /**
   * Class ids, cycled over the images (class-conditional stage 1 only). Default: every class
   * of a class-conditional stage 1 in turn; none for an unconditional one.
   */
  classes?: number | readonly number[];
  /** Images to make (default 8). */
  count?: number;
  /** The same seed and settings give the same images (default 0). */
  seed?: number;
  /** Stage-1 top-k (default 200; 0: off). */
  topK?: number;
  /** Stage-1 nucleus mass (default 1: off). */
  topP?: number;
  /** Stage-1 temperature (default 1). */
  temperature?: number;
  /** Stage-1 classifier-free guidance scale (default 1: off). */
  guidance?: number;
  /** Stage-2 settings: MaskGIT iterations (NAR, default 8), top-p (AR, default 0.8), temperature (1). */
  stage2?: { steps?: number; topP?: number; temperature?: number };
  /** Images per stage-1 batch (default 16). */
  batchSize?: number;
  /** Called as each stage advances. */
  onProgress?: (progress: GenerateProgress) => void;
  /** Stops generation between tokens (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** What `generate` returns. */
export interface GeneratedImages {
  /** uint8 RGB, `count` images of `height` x `width` x 3, one after the other. */
  images: ImageBatch;
  /** The stage-1 semantic token grids. */
  semantic: TokenGrid;
  /** The stage-2 VQ token grids the VQGAN decoded. */
  codes: TokenGrid;
  /** The class of each image, for a class-conditional stage 1. */
  classes?: Int32Array;
}

/**
 * A loaded DiGIT pipeline: stage 1 (class -> semantic tokens), stage 2 (semantic -> VQ
 * tokens) and the VQGAN decoder (VQ tokens -> pixels).
 *
 * @example Generate four images of class 3 and write them as PNGs
 * ```ts ignore
 * import { DigitPipeline, imagePng } from "@digit-ts/digit";
 *
 * const pipe = await DigitPipeline.load({
 *   stage1: "outputs/demo/stage1", // or DiGIT's fairseq stage-1 .pt
 *   stage2: "outputs/demo/stage2", // or DiGIT's stage-2 .pt
 *   vqgan: "outputs/demo/vqgan", // or MAGE's vqgan_jax_strongaug.ckpt
 * });
 * const { images } = await pipe.generate({ classes: 3, count: 4, seed: 0 });
 * for (let i = 0; i < images.count; i++) {
 *   await Deno.writeFile(`image-${i}.png`, imagePng(images, i));
 * }
 * pipe.dispose();
 * ```
 */
export class DigitPipeline {
  readonly #stage1: Stage1Part;
  readonly #stage2: Stage2Part;
  readonly #decoder: DecoderPart;

  private constructor(
    /** The registry holding the built-in plugins (steps, generators, decoders). */
    readonly registry: Registry,
    parts: { stage1: Stage1Part; stage2: Stage2Part; decoder: DecoderPart },
    /** What was loaded for each part: its path and checkpoint kind. */
    readonly sources: Readonly<Record<"stage1" | "stage2" | "vqgan", PartSource>>,
  ) {
    this.#stage1 = parts.stage1;
    this.#stage2 = parts.stage2;
    this.#decoder = parts.decoder;
  }

  /**
   * Loads the three parts by their checkpoint kind (plugins/pipeline/parts.ts) and checks that
   * they fit together. Registers the built-in plugins in a registry of its own.
   *
   * @example
   * ```ts ignore
   * const pipe = await DigitPipeline.load({ stage1: "outputs/demo/stage1", stage2: "outputs/demo/stage2", vqgan: "outputs/demo/vqgan", device: "cpu" });
   * ```
   */
  static async load(o: DigitPipelineSources): Promise<DigitPipeline> {
    if (o.dir === undefined && (o.stage1 === undefined || o.stage2 === undefined)) {
      throw new Error(
        "DigitPipeline.load: give stage1 and stage2 (and vqgan unless stage 2 is a DiGIT .pt), or dir",
      );
    }
    // Imported here, not at the top: the built-in plugins include some that import mod.ts
    // (the custom-encoder example), which exports this module.
    const { default: builtins } = await import("../mod.ts");
    const registry = new Registry();
    for (const plugin of [...builtins, ...(o.plugins ?? [])]) await registry.use(plugin);
    // The pipeline is a run of its own: its device is resolved here, once.
    const ctx = await startRun({
      registry,
      device: o.device ?? "auto",
      log: silentLogger,
      outputDir: ".",
      signal: new AbortController().signal,
    });
    const { refs } = await resolveParts({
      given: { stage1: o.stage1, stage2: o.stage2, vqgan: o.vqgan },
      which: o.checkpoint ?? "last",
      roots: o.dir !== undefined ? [{ dir: o.dir, depth: 4 }] : [],
      who: "DigitPipeline",
      log: silentLogger,
      registry,
    });
    const built = await buildParts(refs, { ctx, vqganConfig: o.vqganConfig, who: "DigitPipeline" });
    try {
      checkFit(built, refs, "DigitPipeline");
    } catch (e) {
      disposeParts(built);
      throw e;
    }
    const source = (r: PartRef): PartSource => ({ path: r.path, kind: r.kind });
    return new DigitPipeline(
      registry,
      { stage1: built.stage1!, stage2: built.stage2, decoder: built.decoder },
      {
        stage1: source(refs.stage1!),
        stage2: source(refs.stage2!),
        vqgan: refs.vqgan
          ? source(refs.vqgan)
          : { path: refs.stage2!.path, kind: "vqgan-in-stage2" },
      },
    );
  }

  /** Number of classes of a class-conditional stage 1; 0 when it is unconditional. */
  get classes(): number {
    return this.#stage1.classes;
  }

  /** Stage 2's decoding: `ar` (autoregressive) or `nar` (MaskGIT). */
  get variant(): "ar" | "nar" {
    return this.#stage2.variant;
  }

  /** Side of the square images, in pixels. */
  get imageSize(): number {
    return this.#decoder.imageSize;
  }

  /**
   * Samples `count` images: semantic tokens (stage 1), VQ tokens (stage 2), pixels (VQGAN).
   *
   * @example
   * ```ts ignore
   * const { images, semantic, codes } = await pipe.generate({ classes: [1, 2], count: 4, seed: 7, topK: 100 });
   * ```
   */
  async generate(o: GenerateOptions = {}): Promise<GeneratedImages> {
    const count = o.count ?? 8;
    const seed = o.seed ?? 0;
    const batch = o.batchSize ?? 16;
    const [stage1, stage2, decoder] = [this.#stage1, this.#stage2, this.#decoder];
    let classes = typeof o.classes === "number" ? [o.classes] : [...(o.classes ?? [])];
    if (classes.length > 0 && this.classes === 0) {
      throw new Error(`DigitPipeline: classes [${classes}] given, but stage 1 is unconditional`);
    }
    for (const c of classes) {
      if (!Number.isInteger(c) || c < 0 || c >= this.classes) {
        throw new Error(`DigitPipeline: class ${c} is outside 0..${this.classes - 1}`);
      }
    }
    if (classes.length === 0 && this.classes > 0) {
      classes = Array.from({ length: this.classes }, (_, c) => c);
    }
    const labels = classes.length
      ? Int32Array.from({ length: count }, (_, i) => classes[i % classes.length])
      : undefined;
    const report = (stage: GenerateProgress["stage"]) => (done: number, total: number) => {
      o.signal?.throwIfAborted();
      o.onProgress?.({ stage, done, total });
    };

    const L = stage1.length;
    const semanticTokens = new Int32Array(count * L);
    let height = 0, width = 0;
    const s1 = report("stage 1");
    for (let i = 0; i < count; i += batch) {
      o.signal?.throwIfAborted();
      const n = Math.min(batch, count - i);
      const grid = await stage1.sample({
        count: n,
        seed: seed + i,
        topK: o.topK ?? 200,
        topP: o.topP ?? 1,
        temperature: o.temperature ?? 1,
        guidance: o.guidance ?? 1,
        classes: labels?.slice(i, i + n),
        onProgress: (d) => s1(i * L + d * n, count * L),
      });
      semanticTokens.set(grid.tokens, i * L);
      ({ height, width } = grid);
    }
    const semantic: TokenGrid = { tokens: semanticTokens, count, height, width };

    const ar = stage2.variant === "ar";
    const codes = await stage2.sample({
      count,
      condition: semantic,
      seed,
      steps: o.stage2?.steps ?? 8,
      topP: ar ? (o.stage2?.topP ?? 0.8) : undefined,
      temperature: o.stage2?.temperature ?? 1,
      onProgress: report("stage 2"),
    });

    const decode = report("decode");
    const G = codes.height * codes.width;
    const chunk = Math.max(1, decoder.batchSize ?? count);
    let data: Uint8Array | null = null;
    let ih = 0, iw = 0;
    decode(0, count);
    for (let i = 0; i < count; i += chunk) {
      const m = Math.min(chunk, count - i);
      const part = await decoder.decode({
        ...codes,
        count: m,
        tokens: codes.tokens.subarray(i * G, (i + m) * G),
      });
      ({ height: ih, width: iw } = part);
      data ??= new Uint8Array(count * ih * iw * 3);
      data.set(part.data, i * ih * iw * 3);
      decode(i + m, count);
    }
    return {
      images: { data: data!, count, height: ih, width: iw },
      semantic,
      codes,
      ...(labels ? { classes: labels } : {}),
    };
  }

  /** Frees the three networks' weights. */
  dispose(): void {
    this.#stage1.dispose();
    this.#stage2.dispose();
    this.#decoder.dispose();
  }
}

/**
 * Image `i` of a batch as PNG file bytes.
 *
 * @example
 * ```ts ignore
 * const { images } = await pipe.generate({ count: 2 });
 * await Deno.writeFile("first.png", imagePng(images, 0));
 * ```
 */
export function imagePng(images: ImageBatch, i: number): Uint8Array {
  if (!Number.isInteger(i) || i < 0 || i >= images.count) {
    throw new RangeError(`imagePng: image ${i} is outside 0..${images.count - 1}`);
  }
  const size = images.height * images.width * 3;
  return encodePng({
    width: images.width,
    height: images.height,
    data: images.data.subarray(i * size, (i + 1) * size),
  });
}
