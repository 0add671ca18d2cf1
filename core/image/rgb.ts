/**
 * The one in-memory image type of the image/data layer: 8-bit RGB, row-major HWC.
 *
 * Every decoder ends here. Grayscale sources are expanded by copying the gray value to
 * R, G and B; alpha is dropped without compositing (what PIL's `convert("RGB")` does, and
 * so what torchvision's ImageFolder loader sees).
 */

export interface RgbImage {
  width: number;
  height: number;
  /** width*height*3 bytes, row-major, channel-last (HWC, RGB). */
  data: Uint8Array;
}

/** A float image, channel-first (CHW), e.g. the output of toTensor. */
export interface FloatImage {
  channels: number;
  height: number;
  width: number;
  data: Float32Array;
}

export function makeRgb(width: number, height: number, data?: Uint8Array): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(`makeRgb: invalid size ${width}x${height}`);
  }
  const n = width * height * 3;
  if (data && data.length !== n) {
    throw new Error(`makeRgb: ${width}x${height}x3 needs ${n} bytes, got ${data.length}`);
  }
  return { width, height, data: data ?? new Uint8Array(n) };
}

/** Gray (one byte per pixel) to RGB by replication. */
export function grayToRgb(width: number, height: number, gray: Uint8Array): RgbImage {
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, o = 0; i < width * height; i++, o += 3) {
    const g = gray[i];
    out[o] = g;
    out[o + 1] = g;
    out[o + 2] = g;
  }
  return { width, height, data: out };
}
