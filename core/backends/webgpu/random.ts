/**
 * Counter-based random numbers, bit-for-bit the hash of `core/random.ts`: value i of a
 * draw is a function of (seed, offset + i) only, so the CPU and GPU agree. Uniform values
 * match exactly; normals agree to f32 rounding (Box-Muller is evaluated in f32 here).
 */

import type { GpuStorage } from "./buffers.ts";
import type { GpuContext } from "./context.ts";
import type { KernelDef } from "./kernel.ts";
import { ACCURATE_MATH_WGSL, f32, layout, RANDOM_WGSL, threadIndex, u32 } from "./wgsl.ts";

const HELPERS = `${ACCURATE_MATH_WGSL}\n${RANDOM_WGSL}`;

function draw(
  ctx: GpuContext,
  kind: "uniform" | "normal",
  length: number,
  seed: number,
  offset: number,
): GpuStorage {
  const out = ctx.alloc("f32", length, false, kind);
  const wg = ctx.wg1d;
  const def: KernelDef = {
    name: `random_${kind}`,
    params: layout(u32("n"), u32("seed"), u32("offset")),
    bindings: [{ name: "out", element: "f32", access: "read_write" }],
    workgroupSize: [wg],
    helpers: HELPERS,
    body: `
  let i = ${threadIndex(wg)};
  if (i >= P.n) { return; }
  out[i] = ${kind}_at(P.seed, P.offset + i);`,
  };
  ctx.dispatch(
    def,
    { n: length, seed: seed >>> 0, offset: offset >>> 0 },
    [out],
    ctx.grid1d(length, def.name),
  );
  return out;
}

export function uniform(ctx: GpuContext, length: number, seed: number, offset: number): GpuStorage {
  return draw(ctx, "uniform", length, seed, offset);
}

export function normal(ctx: GpuContext, length: number, seed: number, offset: number): GpuStorage {
  return draw(ctx, "normal", length, seed, offset);
}

/**
 * y = x·keep/(1-p) with keep = uniform >= p. The test runs on the 24-bit integer behind
 * the uniform (bits >= ceil(p·2^24)), which is exactly the f64 comparison the CPU makes.
 * The mask holds 1 for kept and 0 for dropped elements (as on the CPU); p >= 1 drops all.
 */
export function dropout(
  ctx: GpuContext,
  x: GpuStorage,
  p: number,
  seed: number,
  offset: number,
): { y: GpuStorage; mask: GpuStorage } {
  if (x.dtype !== "f32") throw new Error(`dropout: f32 only, got ${x.dtype}`);
  const y = ctx.alloc("f32", x.length, false, "dropout");
  const mask = ctx.alloc("f32", x.length, false, "dropout");
  const threshold = Math.min(16777216, Math.max(0, Math.ceil(p * 16777216)));
  const scale = p < 1 ? 1 / (1 - p) : 0;
  const wg = ctx.wg1d;
  const def: KernelDef = {
    name: "dropout",
    params: layout(u32("n"), u32("seed"), u32("offset"), u32("threshold"), f32("scale")),
    bindings: [
      { name: "x", element: "f32", access: "read" },
      { name: "y", element: "f32", access: "read_write" },
      { name: "mask", element: "f32", access: "read_write" },
    ],
    workgroupSize: [wg],
    helpers: RANDOM_WGSL.replace(/fn normal_at[\s\S]*$/, ""),
    body: `
  let i = ${threadIndex(wg)};
  if (i >= P.n) { return; }
  let keep = (hash_bits(P.seed, P.offset + i) >> 8u) >= P.threshold;
  mask[i] = select(0.0, 1.0, keep);
  y[i] = select(0.0, x[i] * P.scale, keep);`,
  };
  ctx.dispatch(
    def,
    { n: x.length, seed: seed >>> 0, offset: offset >>> 0, threshold, scale },
    [x, y, mask],
    ctx.grid1d(x.length, def.name),
  );
  return { y, mask };
}
