/**
 * torch.nn.functional.interpolate(mode="bicubic", align_corners=False, antialias=False) on
 * host float32 planes, without a backend or tensors. The arithmetic is the CPU backend's
 * resize kernel (core/backends/cpu/resize.ts), which follows torch 1.13's float32 CPU kernel
 * step by step (bit-exact on the cases we measured); this file only maps the arguments:
 *  - output size floor(in * scale_factor) when a scale factor is given;
 *  - the coordinate scale is float32(1 / scale_factor) when a scale factor is given
 *    (not in/out!), else float32(in) / out.
 *
 * DiGIT uses it for 256 -> 224 (scale 224/256) before DINOv2, and with scale 16.1/37 for
 * the position-embedding grid.
 */

import { resize } from "../backends/cpu/resize.ts";

export interface InterpolateOptions {
  /** Output size [height, width]; or give scaleFactor. */
  size?: [number, number];
  /** [scaleH, scaleW] (or one number for both), as passed to F.interpolate. */
  scaleFactor?: number | [number, number];
}

/**
 * Bicubic resampling of `planes` images of size height x width stored back to back
 * (NCHW with planes = N*C). Returns the output planes and their size.
 */
export function interpolateBicubic(
  data: Float32Array,
  planes: number,
  height: number,
  width: number,
  opts: InterpolateOptions,
): { data: Float32Array; height: number; width: number } {
  if (data.length !== planes * height * width) {
    throw new Error(
      `interpolateBicubic: ${planes}x${height}x${width} needs ${
        planes * height * width
      } values, got ${data.length}`,
    );
  }
  let outH: number, outW: number, scaleH: number, scaleW: number;
  if (opts.size) {
    [outH, outW] = opts.size;
    [scaleH, scaleW] = [height / outH, width / outW];
  } else if (opts.scaleFactor !== undefined) {
    const [sH, sW] = typeof opts.scaleFactor === "number"
      ? [opts.scaleFactor, opts.scaleFactor]
      : opts.scaleFactor;
    outH = Math.floor(height * sH);
    outW = Math.floor(width * sW);
    [scaleH, scaleW] = [1 / sH, 1 / sW];
  } else {
    throw new Error("interpolateBicubic: give size or scaleFactor");
  }
  if (!(outH > 0 && outW > 0)) {
    throw new Error(`interpolateBicubic: empty output ${outH}x${outW}`);
  }
  const out = resize(data, {
    planes,
    inH: height,
    inW: width,
    outH,
    outW,
    mode: "bicubic",
    alignCorners: false,
    scaleH,
    scaleW,
    cubicA: -0.75,
  });
  return { data: out, height: outH, width: outW };
}
