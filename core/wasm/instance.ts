/**
 * Instantiating the hand-assembled kernels and sizing their memory, shared by every
 * kernel module (GEMM, vector maps, PIL resampling) so that each falls back to TS the same
 * way: a build that does not validate (no SIMD) or compile (compilation disabled) is
 * skipped, and a memory that cannot grow means "use the TS path", never an exception.
 */

/** The first of `variants` whose module validates, compiles and instantiates; null if none. */
export function instantiateFirst<V>(
  variants: readonly V[],
  build: (variant: V) => Uint8Array<ArrayBuffer>,
): { variant: V; exports: WebAssembly.Exports } | null {
  if (typeof WebAssembly === "undefined") return null;
  for (const variant of variants) {
    const wasm = build(variant);
    if (!WebAssembly.validate(wasm)) continue;
    try {
      return {
        variant,
        exports: new WebAssembly.Instance(new WebAssembly.Module(wasm), {}).exports,
      };
    } catch {
      continue; // e.g. compilation disabled: try the next variant, then give up
    }
  }
  return null;
}

/** Grows `memory` to hold at least `bytes`; false when it cannot (out of memory, or past its maximum). */
export function growTo(memory: WebAssembly.Memory, bytes: number): boolean {
  const have = memory.buffer.byteLength;
  if (bytes <= have) return true;
  try {
    memory.grow(Math.ceil((bytes - have) / 65536));
    return true;
  } catch {
    return false;
  }
}
