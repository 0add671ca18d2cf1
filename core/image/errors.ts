/**
 * Named errors of the image decoders, and the one pixel limit every decoder applies.
 *
 * Every message reads "<format>: <file>: <what>", so a bad file in a folder of thousands is
 * found from the message alone. The limit is PIL's: `Image.MAX_IMAGE_PIXELS` is 89,478,485 and
 * PIL raises DecompressionBombError above twice that, from the header, before decoding.
 */

/** PIL's `Image.MAX_IMAGE_PIXELS` (1 GiB of 24-bit pixels, over 4 and 3). */
export const MAX_IMAGE_PIXELS = Math.floor(1024 * 1024 * 1024 / 4 / 3);

/** Images with more pixels than this are refused; PIL's error threshold. */
export const DEFAULT_MAX_PIXELS = 2 * MAX_IMAGE_PIXELS;

export interface DecodeOptions {
  /** Largest width*height accepted (default DEFAULT_MAX_PIXELS); checked before allocation. */
  maxPixels?: number;
}

export class ImageDecodeError extends Error {
  constructor(readonly format: string, readonly file: string, readonly detail: string) {
    super(`${format}: ${file}: ${detail}`);
    this.name = "ImageDecodeError";
  }
}

/** The header declares more pixels than the limit: refused before any pixel buffer exists. */
export class ImageTooLargeError extends ImageDecodeError {
  constructor(
    format: string,
    file: string,
    readonly width: number,
    readonly height: number,
    readonly limit: number,
  ) {
    super(
      format,
      file,
      `image ${width}x${height} (${width * height} pixels) exceeds the limit of ${limit} pixels ` +
        `(decompression bomb?); raise maxPixels to read it`,
    );
    this.name = "ImageTooLargeError";
  }
}

/** Throws ImageTooLargeError when width*height is over `opts.maxPixels`. */
export function checkPixelLimit(
  format: string,
  file: string,
  width: number,
  height: number,
  opts: DecodeOptions = {},
): void {
  const limit = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (width * height > limit) throw new ImageTooLargeError(format, file, width, height, limit);
}
