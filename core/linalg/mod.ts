/** Float64 host linear algebra (row-major `Float64Array`s), OpenBLAS-backed when available. */

export { gemm, gramUpper, matmul, mirrorUpper, trace, transpose } from "./blas.ts";
export { eigh, eighTs, eigvalsh } from "./eigh.ts";
export type { EighOptions, SymmetricEigen } from "./eigh.ts";
export { psdFactorRows, sqrtPsd } from "./sqrt_psd.ts";
export { nativeBlas, nativeLapack, setNativeLinalg, withPureTs } from "./native.ts";
