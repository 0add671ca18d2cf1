/**
 * The browser's side of `core/native/openblas.ts`, put in its place by the import map the
 * web build uses (web/import_map.json).
 *
 * That module's contract is "`openblas()` returns null when the library cannot be loaded,
 * and callers fall back to TypeScript"; a web page has no FFI, so here it never loads and
 * the CPU backend runs its pure-TS / WASM-SIMD kernels. Swapping the module (rather than
 * relying on its runtime `typeof Deno` check) keeps `Deno.dlopen` out of the bundle.
 */

import type { OpenBlas } from "../../core/native/openblas.ts";

export type { OpenBlas, UpLo } from "../../core/native/openblas.ts";

/** Never a library in a browser. */
export function openblas(): OpenBlas | null {
  return null;
}

/** Why the products run in TypeScript, worded as the Deno module words it. */
export function blasDescription(): string {
  return "pure TypeScript (no FFI in a browser)";
}
