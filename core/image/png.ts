/**
 * PNG to RgbImage and back, on top of fast-png (pure JS, inflate by fflate).
 *
 * Conversion to 8-bit RGB follows PIL's `convert("RGB")`:
 *  - gray (1/2/4/8 bit) is scaled to 0..255 and copied to R, G, B;
 *  - palette images are looked up in the palette (indices past its end give black);
 *  - alpha (RGBA, gray+alpha, palette tRNS) is dropped, not composited;
 *  - 16-bit samples keep their high byte (PIL does this for 16-bit RGB/RGBA/LA; for
 *    16-bit *gray* PIL opens mode "I" and clips values above 255 to white, which we do not
 *    copy: we take the high byte there too).
 */

// A full npm: specifier so that mod.ts imports from outside this repository (core/config.ts).
// deno-lint-ignore no-import-prefix
import { decode as fastPngDecode, encode as fastPngEncode } from "npm:fast-png@8.0.0";
import { inflateSync } from "node:zlib";
import type { RgbImage } from "./rgb.ts";
import { checkPixelLimit, type DecodeOptions, ImageDecodeError } from "./errors.ts";

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

/** Decode PNG bytes to RGB. `name` (a path) is only used in error messages. */
export function decodePng(bytes: Uint8Array, name = "<png>", opts: DecodeOptions = {}): RgbImage {
  const fail = (detail: string): never => {
    throw new ImageDecodeError("png", name, detail);
  };
  if (!isPng(bytes)) fail("not a PNG file (bad signature)");
  // The size comes from IHDR, which the format requires to be the first chunk; the limit is
  // checked here because fast-png allocates the whole image from it.
  if (bytes.length < 33) fail(`truncated file (${bytes.length} bytes, no IHDR)`);
  const ihdr = new DataView(bytes.buffer, bytes.byteOffset + 8, 25);
  if (ihdr.getUint32(4) !== 0x49484452) fail("first chunk is not IHDR");
  const width = ihdr.getUint32(8), height = ihdr.getUint32(12);
  checkPixelLimit("png", name, width, height, opts);
  checkImageDataSize(bytes, width, height, bytes[24], bytes[25], name);
  // fast-png unpacks Adam7 passes byte-wise, which is wrong below 8 bits per sample.
  if (bytes[24] < 8 && bytes[28] === 1) {
    fail(`interlaced PNG with ${bytes[24]}-bit samples is not supported`);
  }
  let png;
  try {
    png = fastPngDecode(bytes);
  } catch (e) {
    return fail((e as Error).message);
  }
  const { depth, channels } = png;
  const n = width * height;
  const out = new Uint8Array(n * 3);
  if (png.palette) {
    const idx = unpackSamples(png.data as Uint8Array, width, height, depth);
    const pal = png.palette;
    for (let i = 0; i < n; i++) {
      const c = pal[idx[i]];
      if (c) {
        out[3 * i] = c[0];
        out[3 * i + 1] = c[1];
        out[3 * i + 2] = c[2];
      }
    }
    return { width, height, data: out };
  }
  let samples: Uint8Array;
  if (depth === 16) {
    const d = png.data as Uint16Array;
    samples = new Uint8Array(d.length);
    for (let i = 0; i < d.length; i++) samples[i] = d[i] >> 8;
  } else if (depth === 8) {
    samples = png.data as Uint8Array;
  } else {
    // Sub-byte depths exist only for gray (channels = 1) outside palettes.
    samples = unpackSamples(png.data as Uint8Array, width, height, depth);
    const scale = 255 / ((1 << depth) - 1);
    for (let i = 0; i < samples.length; i++) samples[i] *= scale;
  }
  if (samples.length < n * channels) {
    fail(`${samples.length} samples for ${width}x${height}x${channels}`);
  }
  for (let i = 0; i < n; i++) {
    const s = i * channels;
    if (channels >= 3) {
      out[3 * i] = samples[s];
      out[3 * i + 1] = samples[s + 1];
      out[3 * i + 2] = samples[s + 2];
    } else {
      out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = samples[s];
    }
  }
  return { width, height, data: out };
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/**
 * A 1x1 PNG can carry an IDAT that inflates to gigabytes, and fast-png inflates all of it. The
 * image data must inflate to no more than its size needs: the rows with their filter bytes,
 * plus Adam7's extra rows (at most 15/8 of the height, one filter byte and one partial byte
 * each). Inflating with that as the output limit stops a bomb at the limit.
 */
function checkImageDataSize(
  bytes: Uint8Array,
  width: number,
  height: number,
  depth: number,
  colourType: number,
  name: string,
): void {
  const bits = (CHANNELS[colourType] ?? 4) * depth;
  const need = height * (1 + Math.ceil((width * bits) / 8)) + 4 * height + 64;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: Uint8Array[] = [];
  for (let p = 8; p + 12 <= bytes.length;) {
    const len = dv.getUint32(p);
    if (p + 12 + len > bytes.length) break;
    if (dv.getUint32(p + 4) === 0x49444154) parts.push(bytes.subarray(p + 8, p + 8 + len)); // IDAT
    p += 12 + len;
  }
  const idat = new Uint8Array(parts.reduce((n, x) => n + x.length, 0));
  let at = 0;
  for (const x of parts) (idat.set(x, at), at += x.length);
  try {
    inflateSync(idat, {
      maxOutputLength: need,
      finishFlush: 2, /* Z_SYNC_FLUSH: allow truncation */
    });
  } catch (e) {
    if ((e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new ImageDecodeError(
        "png",
        name,
        `image data inflates past ${need} bytes, more than a ${width}x${height} image needs`,
      );
    }
    // other zlib errors: fast-png reports them as it decodes
  }
}

/** Unpack rows of 1/2/4/8-bit samples (each row starts on a byte) to one byte each. */
function unpackSamples(
  packed: Uint8Array,
  width: number,
  height: number,
  depth: number,
): Uint8Array {
  if (depth === 8) return packed;
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const byte = packed[y * rowBytes + (bit >> 3)];
      out[y * width + x] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

/** Encode an RGB image as an 8-bit RGB PNG. */
export function encodePng(img: RgbImage): Uint8Array {
  if (img.data.length !== img.width * img.height * 3) {
    throw new Error(
      `encodePng: ${img.width}x${img.height}x3 needs ${
        img.width * img.height * 3
      } bytes, got ${img.data.length}`,
    );
  }
  return fastPngEncode({
    width: img.width,
    height: img.height,
    data: img.data,
    channels: 3,
    depth: 8,
  });
}
