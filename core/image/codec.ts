/**
 * Image file codecs behind one entry point: bytes (or a path) in, 8-bit RGB out.
 *
 * JPEG: libjpeg-turbo through FFI where it is installed (core/native/turbojpeg.ts), else
 * our own decoder, bit-exact with libjpeg-turbo's defaults as PIL uses them (jpeg.ts).
 * PNG: fast-png, converted as PIL's `convert("RGB")` does (see png.ts).
 * The format is sniffed from the magic bytes, not the file extension.
 */

import { regularFileSize } from "../io/regular_file.ts";
import { turbojpeg } from "../native/turbojpeg.ts";
import { type DecodeOptions, ImageDecodeError } from "./errors.ts";
import { decodeJpeg, isJpeg } from "./jpeg.ts";
import { decodePng, encodePng, isPng } from "./png.ts";
import type { RgbImage } from "./rgb.ts";

export type { RgbImage } from "./rgb.ts";
export { encodePng } from "./png.ts";
export {
  type DecodeOptions,
  DEFAULT_MAX_PIXELS,
  ImageDecodeError,
  ImageTooLargeError,
  MAX_IMAGE_PIXELS,
} from "./errors.ts";

/**
 * Decode JPEG or PNG bytes. `name` (usually the path) appears in every error, and every error
 * is an ImageDecodeError (ImageTooLargeError over `opts.maxPixels`).
 */
export function decodeImage(
  bytes: Uint8Array,
  name = "<image>",
  opts: DecodeOptions = {},
): RgbImage {
  const guarded = (decode: () => RgbImage, format: string) => {
    try {
      return decode();
    } catch (e) {
      if (e instanceof ImageDecodeError) throw e;
      // Anything else (fast-png, a library, a bug, a stack overflow) gets the name and a type.
      throw new ImageDecodeError(format, name, e instanceof Error ? e.message : String(e));
    }
  };
  if (isJpeg(bytes)) {
    return guarded(
      () => turbojpeg()?.decodeRgb(bytes, name, opts) ?? decodeJpeg(bytes, name, opts),
      "jpeg",
    );
  }
  if (isPng(bytes)) return guarded(() => decodePng(bytes, name, opts), "png");
  const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
  throw new ImageDecodeError(
    "decodeImage",
    name,
    `unknown image format (first bytes: ${head || "none"})`,
  );
}

/** Errors of reading an image path, named like the decoders' ones. */
function readError(path: string, e: unknown): ImageDecodeError {
  const msg = e instanceof Error ? e.message : String(e);
  return new ImageDecodeError(
    "readImage",
    path,
    msg.startsWith(`${path}: `) ? msg.slice(path.length + 2) : msg,
  );
}

/** A FIFO or device path is refused by the stat before the read, which would block on it. */
export async function readImage(path: string, opts: DecodeOptions = {}): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    regularFileSize(path, "image");
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw readError(path, e);
  }
  return decodeImage(bytes, path, opts);
}

export function readImageSync(path: string, opts: DecodeOptions = {}): RgbImage {
  let bytes: Uint8Array;
  try {
    regularFileSize(path, "image");
    bytes = Deno.readFileSync(path);
  } catch (e) {
    throw readError(path, e);
  }
  return decodeImage(bytes, path, opts);
}

export async function writePng(path: string, img: RgbImage): Promise<void> {
  await Deno.writeFile(path, encodePng(img));
}
