/**
 * libjpeg-turbo's TurboJPEG API through Deno's FFI, loaded lazily on first use: the same
 * library, settings and output as PIL's JPEG decoder on Debian (accurate islow IDCT, fancy
 * upsampling, libjpeg's colour conversion), at libjpeg-turbo's SIMD speed. The pure-TS
 * decoder in core/image/jpeg.ts reproduces it bit for bit and is the fallback when the
 * library is missing (Debian: libturbojpeg0) or DIGIT_JPEG=off.
 *
 * CMYK and YCCK files are left to the TS decoder: TurboJPEG cannot convert them to RGB,
 * and PIL converts them with its own formula. So is any file whose header or data TurboJPEG
 * refuses for a reason other than truncation: tjDecompressHeader3 cannot classify some legal
 * sampling layouts (CMYK with C at 2x2 and M/Y/K at 1x1), which libjpeg, PIL and the TS
 * decoder all read.
 *
 * The pixel limit (core/image/errors.ts) is checked from the header before the output
 * buffer, width*height*3 bytes, is allocated.
 */

import { checkPixelLimit, type DecodeOptions, ImageDecodeError } from "../image/errors.ts";
import { openFirst } from "./ffi.ts";

const LIBRARY_CANDIDATES = [
  "libturbojpeg.so.0",
  "libturbojpeg.so",
  "/usr/lib/x86_64-linux-gnu/libturbojpeg.so.0",
  "/usr/lib/aarch64-linux-gnu/libturbojpeg.so.0",
  "/usr/lib64/libturbojpeg.so.0",
  "/usr/local/lib/libturbojpeg.so.0",
  "/opt/libjpeg-turbo/lib64/libturbojpeg.so",
  "/opt/homebrew/opt/jpeg-turbo/lib/libturbojpeg.dylib",
  "/usr/local/opt/jpeg-turbo/lib/libturbojpeg.dylib",
];

const SYMBOLS = {
  tjInitDecompress: { parameters: [], result: "pointer" },
  // handle, jpegBuf, jpegSize, &width, &height, &jpegSubsamp, &jpegColorspace
  tjDecompressHeader3: {
    parameters: ["pointer", "buffer", "u64", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  // handle, jpegBuf, jpegSize, dstBuf, width, pitch, height, pixelFormat, flags
  tjDecompress2: {
    parameters: ["pointer", "buffer", "u64", "buffer", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  tjGetErrorStr2: { parameters: ["pointer"], result: "pointer" },
  tjGetErrorCode: { parameters: ["pointer"], result: "i32" },
  tjDestroy: { parameters: ["pointer"], result: "i32" },
} as const;

const TJPF_RGB = 0;
const TJCS_CMYK = 3, TJCS_YCCK = 4;
/** Explicitly the islow IDCT, libjpeg's (and PIL's) default. Fancy upsampling stays on. */
const TJFLAG_ACCURATEDCT = 4096;
const TJERR_WARNING = 0;

export interface TurboJpeg {
  readonly library: string;
  /**
   * RGB pixels of a JPEG, or null for a file the TS decoder should handle (CMYK/YCCK, or one
   * TurboJPEG refuses for a reason other than truncation). Throws ImageDecodeError on a
   * truncated file and ImageTooLargeError over the pixel limit; other libjpeg warnings
   * (extraneous bytes before a marker, say) still return the image, as PIL does.
   */
  decodeRgb(
    bytes: Uint8Array,
    name: string,
    opts?: DecodeOptions,
  ): { width: number; height: number; data: Uint8Array } | null;
}

let loaded: TurboJpeg | null | undefined;
let failure = "";

/** The TurboJPEG bindings, or null when the library is missing or DIGIT_JPEG=off. */
export function turbojpeg(): TurboJpeg | null {
  if (loaded === undefined) {
    const opened = openFirst(
      "libturbojpeg",
      LIBRARY_CANDIDATES,
      SYMBOLS,
      "DIGIT_JPEG",
      "apt-get install libturbojpeg0",
    );
    if ("failure" in opened) {
      failure = opened.failure;
      loaded = null;
    } else {
      loaded = wrap(opened.lib, opened.path);
    }
  }
  return loaded;
}

/** One line saying which JPEG decoder `decodeImage` uses. */
export function jpegDescription(): string {
  const tj = turbojpeg();
  return tj ? `libjpeg-turbo (${tj.library})` : `pure TypeScript (${failure})`;
}

function wrap(lib: Deno.DynamicLibrary<typeof SYMBOLS>, library: string): TurboJpeg {
  const s = lib.symbols;
  const init = () => {
    const h = s.tjInitDecompress();
    if (h === null) throw new Error(`${library}: tjInitDecompress failed`);
    return h;
  };
  let handle = init();
  const header = new Int32Array(4); // width, height, subsampling, colour space
  const field = (i: number) => header.subarray(i, i + 1);
  /** The error's text; the handle is then replaced, since a failed decode can leave it unusable. */
  const errorText = () => {
    const p = s.tjGetErrorStr2(handle);
    return p ? new Deno.UnsafePointerView(p).getCString() : "unknown error";
  };
  /** Replaces the handle after a failure and says whether the failure was truncation. */
  const failure = (): { text: string; truncated: boolean } => {
    const text = errorText();
    s.tjDestroy(handle);
    handle = init();
    return { text, truncated: /premature end/i.test(text) };
  };
  // PIL refuses a file whose data ends early ("image file is truncated"); so do we.
  const truncated = (name: string, text: string): never => {
    throw new ImageDecodeError("jpeg", name, `truncated file (${text})`);
  };
  return {
    library,
    decodeRgb(bytes, name, opts = {}) {
      header.fill(0);
      if (
        s.tjDecompressHeader3(
          handle,
          bytes,
          BigInt(bytes.length),
          field(0),
          field(1),
          field(2),
          field(3),
        ) !== 0
      ) {
        const f = failure();
        if (f.truncated) truncated(name, f.text);
        return null; // e.g. a sampling layout TurboJPEG cannot classify: the TS decoder reads it
      }
      const [width, height, , colourSpace] = header;
      // A stream that ends before its frame header can "succeed" without a size.
      if (width <= 0 || height <= 0) truncated(name, "no frame header");
      checkPixelLimit("jpeg", name, width, height, opts);
      if (colourSpace === TJCS_CMYK || colourSpace === TJCS_YCCK) return null;
      const data = new Uint8Array(width * height * 3);
      const rc = s.tjDecompress2(
        handle,
        bytes,
        BigInt(bytes.length),
        data,
        width,
        width * 3,
        height,
        TJPF_RGB,
        TJFLAG_ACCURATEDCT,
      );
      if (
        rc !== 0 &&
        (s.tjGetErrorCode(handle) !== TJERR_WARNING || /premature end/i.test(errorText()))
      ) {
        const f = failure();
        if (f.truncated) truncated(name, f.text);
        return null;
      }
      return { width, height, data };
    },
  };
}
