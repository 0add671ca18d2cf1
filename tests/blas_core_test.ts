/**
 * OpenBLAS kernel choice (core/native/openblas.ts): an OpenBLAS older than the CPU takes it
 * for an SSE3 "Prescott" and runs kernels 3x slower, so unless OPENBLAS_CORETYPE is set we
 * name the newest family the CPU flags allow. The flag rule is checked on fixed flag sets;
 * the loaded library is checked against this machine's own /proc/cpuinfo and against
 * whatever the user set.
 */

import { expect, it } from "./lib/test.ts";
import { blasDescription, coreTypeFor, cpuFlags, openblas } from "../core/native/openblas.ts";

const blas = openblas(); // load once, outside any test, so the resource sanitizer is quiet

it("coreTypeFor: AVX-512 (F, DQ, BW, VL) -> SkylakeX, AVX2 + FMA -> Haswell, else OpenBLAS's own pick", () => {
  const flags = (line: string) => new Set(line.split(" "));
  expect(coreTypeFor(flags("sse3 avx avx2 fma avx512f avx512dq avx512bw avx512vl"))).toBe(
    "SKYLAKEX",
  );
  // Knights Landing has AVX-512F but not BW/VL: SkylakeX kernels would fault.
  expect(coreTypeFor(flags("sse3 avx avx2 fma avx512f avx512cd"))).toBe("HASWELL");
  expect(coreTypeFor(flags("sse3 avx avx2 fma"))).toBe("HASWELL");
  expect(coreTypeFor(flags("sse3 avx avx2"))).toBe(undefined);
  expect(coreTypeFor(flags("sse3 avx"))).toBe(undefined);
  expect(coreTypeFor(new Set())).toBe(undefined);
});

it("the loaded OpenBLAS runs the kernels the flags (or OPENBLAS_CORETYPE) name", () => {
  if (!blas) return; // no library: the TypeScript fallback has no kernels to pick
  const description = blasDescription();
  const kernels = description.match(/, (\w+) kernels/)?.[1];
  if (kernels === undefined) return; // an OpenBLAS without openblas_get_corename
  const user = Deno.env.get("OPENBLAS_CORETYPE");
  // Off Linux the flags are empty: only a user-set core type can be checked.
  const expected = user ?? coreTypeFor(cpuFlags());
  if (expected === undefined) return;
  expect(kernels.toUpperCase()).toBe(expected.toUpperCase());
});
