/**
 * Image file codecs behind one entry point: bytes (or a path) in, 8-bit RGB out.
 *
 * JPEG: libjpeg-turbo through FFI where it is installed (core/native/turbojpeg.ts), else
 * our own decoder, bit-exact with libjpeg-turbo's defaults as PIL uses them (jpeg.ts).
 * PNG: fast-png, converted as PIL's `convert("RGB")` does (see png.ts).
 * The format is sniffed from the magic bytes, not the file extension.
 */

import { turbojpeg } from "../native/turbojpeg.ts";
import { decodeJpeg, isJpeg } from "./jpeg.ts";
import { decodePng, encodePng, isPng } from "./png.ts";
import type { RgbImage } from "./rgb.ts";

export type { RgbImage } from "./rgb.ts";
export { encodePng } from "./png.ts";

/** Decode JPEG or PNG bytes. `name` (usually the path) appears in every error. */
export function decodeImage(bytes: Uint8Array, name = "<image>"): RgbImage {
  const guarded = (decode: () => RgbImage, format: string) => {
    try {
      return decode();
    } catch (e) {
      // Our decoders name the file; anything else (a library or a bug) gets the name added.
      const msg = e instanceof Error ? e.message : String(e);
      throw msg.includes(name) ? e : new Error(`${format}: ${name}: ${msg}`);
    }
  };
  if (isJpeg(bytes)) return guarded(() => turbojpeg()?.decodeRgb(bytes, name) ?? decodeJpeg(bytes, name), "jpeg");
  if (isPng(bytes)) return guarded(() => decodePng(bytes, name), "png");
  const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
  throw new Error(`decodeImage: ${name}: unknown image format (first bytes: ${head || "none"})`);
}

export async function readImage(path: string): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`readImage: ${path}: ${(e as Error).message}`);
  }
  return decodeImage(bytes, path);
}

export function readImageSync(path: string): RgbImage {
  return decodeImage(Deno.readFileSync(path), path);
}

export async function writePng(path: string, img: RgbImage): Promise<void> {
  await Deno.writeFile(path, encodePng(img));
}
