/**
 * Which path the float64 linear algebra takes: OpenBLAS/LAPACK through FFI when the
 * library loads (see `core/native/openblas.ts`), plain TypeScript otherwise.
 *
 * `setNativeLinalg(false)` forces the TypeScript path inside this process, so tests can
 * check the fallback on a machine that has OpenBLAS (DIGIT_BLAS=off does it per process).
 */

import { type OpenBlas, openblas } from "../native/openblas.ts";

let nativeAllowed = true;

/** The OpenBLAS bindings to use for float64 work, or null for the TypeScript path. */
export function nativeBlas(): OpenBlas | null {
  return nativeAllowed ? openblas() : null;
}

/** Same, but only when LAPACK (dsyevd) is in the library too. */
export function nativeLapack(): OpenBlas | null {
  const blas = nativeBlas();
  return blas && blas.hasLapack ? blas : null;
}

/** Allow (default) or forbid the OpenBLAS path; returns the previous setting. */
export function setNativeLinalg(enabled: boolean): boolean {
  const previous = nativeAllowed;
  nativeAllowed = enabled;
  return previous;
}

/** Runs `fn` on the TypeScript path, restoring the previous setting afterwards. */
export function withPureTs<T>(fn: () => T): T {
  const previous = setNativeLinalg(false);
  try {
    return fn();
  } finally {
    setNativeLinalg(previous);
  }
}
