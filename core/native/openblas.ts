/**
 * OpenBLAS through Deno's FFI, loaded lazily on first use.
 *
 * Row-major CBLAS for the products (`sgemm`, `dgemm`, `dsyrk`) and LAPACK's `dsyevd_`
 * (Fortran ABI: every argument by pointer) for symmetric eigendecomposition. Nothing
 * here throws when the library is missing: `openblas()` just returns null and callers
 * fall back to plain TypeScript. Set `DIGIT_BLAS=off` to force the fallback.
 *
 * Typed-array arguments are passed as FFI "buffer"s; Deno passes the pointer of the
 * view itself (byteOffset included), so subarrays work (tested in cpu_linalg_test.ts).
 */

import { openFirst } from "./ffi.ts";

const CBLAS_ROW_MAJOR = 101;
const CBLAS_NO_TRANS = 111;
const CBLAS_TRANS = 112;
const CBLAS_UPPER = 121;
const CBLAS_LOWER = 122;

const LIBRARY_CANDIDATES = [
  "libopenblas.so.0",
  "libopenblas.so",
  "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
  "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0",
  "/usr/lib/x86_64-linux-gnu/openblas-serial/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib64/libopenblas.so.0",
  "/usr/local/lib/libopenblas.so.0",
  "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
  "/usr/local/opt/openblas/lib/libopenblas.dylib",
];

const GEMM_PARAMS = [
  "i32",
  "i32",
  "i32", // order, transA, transB
  "i32",
  "i32",
  "i32", // M, N, K
  "f64",
  "buffer",
  "i32", // alpha, A, lda
  "buffer",
  "i32", // B, ldb
  "f64",
  "buffer",
  "i32", // beta, C, ldc
] as const;

const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "f32",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "f32",
      "buffer",
      "i32",
    ],
    result: "void",
  },
  cblas_dgemm: { parameters: GEMM_PARAMS, result: "void" },
  cblas_dsyrk: {
    parameters: [
      "i32",
      "i32",
      "i32", // order, uplo, trans
      "i32",
      "i32", // N, K
      "f64",
      "buffer",
      "i32", // alpha, A, lda
      "f64",
      "buffer",
      "i32", // beta, C, ldc
    ],
    result: "void",
  },
  // jobz, uplo, n, A, lda, W, work, lwork, iwork, liwork, info, + hidden char lengths.
  dsyevd_: {
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "usize",
      "usize",
    ],
    result: "void",
    optional: true,
  },
  openblas_get_config: { parameters: [], result: "pointer", optional: true },
  openblas_get_num_threads: { parameters: [], result: "i32", optional: true },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>;

export type UpLo = "U" | "L";

export interface OpenBlas {
  /** Path or soname that was loaded. */
  readonly library: string;
  /** C = alpha * op(A) op(B) + beta * C, row-major, fp32. */
  sgemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    alpha: number,
    A: Float32Array,
    lda: number,
    B: Float32Array,
    ldb: number,
    beta: number,
    C: Float32Array,
    ldc: number,
  ): void;
  /** Same as sgemm in fp64. */
  dgemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    alpha: number,
    A: Float64Array,
    lda: number,
    B: Float64Array,
    ldb: number,
    beta: number,
    C: Float64Array,
    ldc: number,
  ): void;
  /**
   * C = alpha * op(A) op(A)^T + beta * C on the `uplo` triangle of the (N, N) matrix C,
   * row-major; op(A) is (N, K): A is (N, K) when trans is false, else (K, N).
   */
  dsyrk(
    uplo: UpLo,
    trans: boolean,
    N: number,
    K: number,
    alpha: number,
    A: Float64Array,
    lda: number,
    beta: number,
    C: Float64Array,
    ldc: number,
  ): void;
  /**
   * Eigenvalues (ascending, into W) and, with jobz "V", eigenvectors of the symmetric
   * (n, n) matrix A. LAPACK reads A column-major; for a symmetric matrix stored in full
   * either layout works, otherwise `uplo` names the triangle in that column-major sense.
   * With "V", eigenvector j overwrites A[j*lda .. j*lda+n) (row j in row-major reading).
   * Returns LAPACK's info (0 = success). Throws if this OpenBLAS lacks LAPACK.
   */
  dsyevd(
    jobz: "V" | "N",
    uplo: UpLo,
    n: number,
    A: Float64Array,
    lda: number,
    W: Float64Array,
  ): number;
  readonly hasLapack: boolean;
}

let loaded: OpenBlas | null | undefined;
let failure = "";

/** The OpenBLAS bindings, or null when the library is missing or DIGIT_BLAS=off. */
export function openblas(): OpenBlas | null {
  if (loaded !== undefined) return loaded;
  loaded = load();
  return loaded;
}

/** One line saying which linear-algebra path the CPU backend uses. */
export function blasDescription(): string {
  const blas = openblas();
  if (!blas) return `pure TypeScript (${failure})`;
  return `OpenBLAS (${blas.library}${threadingSuffix(blas)})`;
}

let libHandle: Lib | null = null;

function threadingSuffix(blas: OpenBlas): string {
  if (!libHandle) return "";
  const parts: string[] = [];
  const cfgPtr = libHandle.symbols.openblas_get_config?.();
  if (cfgPtr) {
    const cfg = new Deno.UnsafePointerView(cfgPtr).getCString();
    if (/OpenMP/i.test(cfg)) parts.push("openmp");
    else if (/USE64BITINT/.test(cfg)) parts.push("ilp64");
    if (!/OpenMP/i.test(cfg)) parts.push(/SINGLE_THREADED/i.test(cfg) ? "serial" : "pthread");
  } else if (blas.library.includes("pthread")) parts.push("pthread");
  const threads = libHandle.symbols.openblas_get_num_threads?.();
  if (threads) parts.push(`${threads} threads`);
  return parts.length ? ", " + parts.join(", ") : "";
}

function load(): OpenBlas | null {
  const opened = openFirst(
    "OpenBLAS",
    LIBRARY_CANDIDATES,
    SYMBOLS,
    "DIGIT_BLAS",
    "apt-get install libopenblas0-pthread",
  );
  if ("failure" in opened) {
    failure = opened.failure;
    return null;
  }
  libHandle = opened.lib;
  return wrap(opened.lib, opened.path);
}

function wrap(lib: Lib, library: string): OpenBlas {
  const s = lib.symbols;
  const t = (trans: boolean) => (trans ? CBLAS_TRANS : CBLAS_NO_TRANS);
  // Scratch for Fortran by-pointer scalars.
  const jobzBuf = new Uint8Array(1);
  const uploBuf = new Uint8Array(1);
  const ints = new Int32Array(5); // n, lda, lwork, liwork, info
  const view = (i: number) => ints.subarray(i, i + 1);
  const hasLapack = s.dsyevd_ != null;

  return {
    library,
    hasLapack,
    sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) {
      if (M === 0 || N === 0) return;
      s.cblas_sgemm(
        CBLAS_ROW_MAJOR,
        t(transA),
        t(transB),
        M,
        N,
        K,
        alpha,
        A,
        lda,
        B,
        ldb,
        beta,
        C,
        ldc,
      );
    },
    dgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) {
      if (M === 0 || N === 0) return;
      s.cblas_dgemm(
        CBLAS_ROW_MAJOR,
        t(transA),
        t(transB),
        M,
        N,
        K,
        alpha,
        A,
        lda,
        B,
        ldb,
        beta,
        C,
        ldc,
      );
    },
    dsyrk(uplo, trans, N, K, alpha, A, lda, beta, C, ldc) {
      if (N === 0) return;
      s.cblas_dsyrk(
        CBLAS_ROW_MAJOR,
        uplo === "U" ? CBLAS_UPPER : CBLAS_LOWER,
        t(trans),
        N,
        K,
        alpha,
        A,
        lda,
        beta,
        C,
        ldc,
      );
    },
    dsyevd(jobz, uplo, n, A, lda, W) {
      const f = s.dsyevd_;
      if (!f) throw new Error(`dsyevd: ${library} was built without LAPACK`);
      if (n === 0) return 0;
      if (A.length < lda * (n - 1) + n || W.length < n) {
        throw new Error(
          `dsyevd: n=${n} lda=${lda} needs A.length>=${lda * (n - 1) + n}, ` +
            `W.length>=${n}; got ${A.length}, ${W.length}`,
        );
      }
      jobzBuf[0] = jobz.charCodeAt(0);
      uploBuf[0] = uplo.charCodeAt(0);
      ints[0] = n;
      ints[1] = lda;
      // Workspace query: lwork = liwork = -1 returns the optimal sizes.
      const workQuery = new Float64Array(1);
      const iworkQuery = new Int32Array(1);
      ints[2] = -1;
      ints[3] = -1;
      f(
        jobzBuf,
        uploBuf,
        view(0),
        A,
        view(1),
        W,
        workQuery,
        view(2),
        iworkQuery,
        view(3),
        view(4),
        1n,
        1n,
      );
      if (ints[4] !== 0) return ints[4];
      const lwork = Math.max(1, Math.ceil(workQuery[0]));
      const liwork = Math.max(1, iworkQuery[0]);
      const work = new Float64Array(lwork);
      const iwork = new Int32Array(liwork);
      ints[2] = lwork;
      ints[3] = liwork;
      f(jobzBuf, uploBuf, view(0), A, view(1), W, work, view(2), iwork, view(3), view(4), 1n, 1n);
      return ints[4];
    },
  };
}
