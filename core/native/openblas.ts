/**
 * OpenBLAS through Deno's FFI, loaded lazily on first use.
 *
 * Row-major CBLAS for the products (`sgemm`, `dgemm`, `dsyrk`) and LAPACK's `dsyevd_`
 * (Fortran ABI: every argument by pointer) for symmetric eigendecomposition. Nothing
 * here throws when the library is missing: `openblas()` just returns null and callers
 * fall back to plain TypeScript. Set `DIGIT_BLAS=off` to force the fallback.
 *
 * Thread count per call: OpenBLAS's worker threads cost more than they give on small
 * products (a wake-up and a barrier per call, and workers that spin between calls, taking
 * a core from everything else). So each call picks its thread count from its flops:
 * one thread below `singleBelowFlops`, OpenBLAS's own count (OPENBLAS_NUM_THREADS, else
 * the cores) above it. `openblas_set_num_threads` is only called when the choice changes.
 * Numerics: each product gives exactly what OpenBLAS gives at the count picked for it, the
 * same on every call. OpenBLAS itself can differ in the last bit between thread counts on
 * some shapes (129 x 16 x 129 does, 4128 x 64 x 64 does not), so a product below the
 * threshold may round as under OPENBLAS_NUM_THREADS=1 where it used to round as under the
 * full count (tests/blas_threads_test.ts). `DIGIT_BLAS_SINGLE_BELOW` (flops, read once at
 * load; 0 restores the old always-all behaviour) moves the threshold;
 * bench/blas_threads_bench.ts measures it.
 *
 * Typed-array arguments are passed as FFI "buffer"s; Deno passes the pointer of the
 * view itself (byteOffset included), so subarrays work (tested in cpu_linalg_test.ts).
 */

import { granted, openFirst, readEnv } from "./ffi.ts";

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
  openblas_get_corename: { parameters: [], result: "pointer", optional: true },
  openblas_get_num_threads: { parameters: [], result: "i32", optional: true },
  openblas_set_num_threads: { parameters: ["i32"], result: "void", optional: true },
} as const;

/**
 * Products (2*M*N*K flops; N*N*K for syrk) below this run on one thread. Measured with
 * bench/blas_threads_bench.ts (2026-12-07, 2-core Xeon shared with other jobs, OpenBLAS
 * 0.3.21 pthread), median ms per call, 1 thread vs 2, with TypeScript work between calls:
 * with the second core busy elsewhere, 129 x 129 x 16 (an attention product of the demo's
 * transformers, 0.5 MFLOP) took 0.018 vs 0.41 and 4128 x 64 x 64 (34 MFLOP) 0.86 vs 2.3,
 * while 4128 x 256 x 64 and 4128 x 128 x 128 (135 MFLOP) still gained 1.9-2.2x; on an idle
 * machine two threads gain 1.1-2x from 1 MFLOP up. Above 64 MFLOP the second thread pays
 * even under load; below it a busy core can cost 2-20x, so one thread is the safe choice.
 */
export const DEFAULT_SINGLE_BELOW_FLOPS = 64e6;

/** How the thread count is chosen per call (see the module comment). */
export interface BlasThreadPolicy {
  /** Threads for products at or above the threshold (OpenBLAS's count at load). */
  max: number;
  /** Products with fewer flops than this run on one thread (0: always `max`). */
  singleBelowFlops: number;
}

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
  /** The thread policy in force; a copy. */
  threadPolicy(): BlasThreadPolicy;
  /**
   * Changes the policy (fields left out keep their value); returns the previous one. A
   * no-op where this OpenBLAS cannot set its thread count.
   */
  setThreadPolicy(policy: Partial<BlasThreadPolicy>): BlasThreadPolicy;
  /** Threads the last product ran on, and how often the count was changed. */
  threadStats(): { current: number; switches: number };
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
  const corePtr = libHandle.symbols.openblas_get_corename?.();
  if (corePtr) {
    const core = new Deno.UnsafePointerView(corePtr).getCString();
    parts.push(`${core} kernels${chosenCoreType ? " (chosen from the CPU flags)" : ""}`);
  }
  const cfgPtr = libHandle.symbols.openblas_get_config?.();
  if (cfgPtr) {
    const cfg = new Deno.UnsafePointerView(cfgPtr).getCString();
    if (/OpenMP/i.test(cfg)) parts.push("openmp");
    else if (/USE64BITINT/.test(cfg)) parts.push("ilp64");
    if (!/OpenMP/i.test(cfg)) parts.push(/SINGLE_THREADED/i.test(cfg) ? "serial" : "pthread");
  } else if (blas.library.includes("pthread")) parts.push("pthread");
  const { max, singleBelowFlops } = blas.threadPolicy();
  parts.push(`${max} threads`);
  if (singleBelowFlops > 0 && max > 1) parts.push(`1 below ${singleBelowFlops / 1e6} MFLOP`);
  return parts.length ? ", " + parts.join(", ") : "";
}

/**
 * OpenBLAS picks its kernels from the CPU model, and a release older than the CPU does not
 * know it: Debian 12's 0.3.21 takes a Sapphire Rapids-class Xeon (AVX-512) for a "Prescott"
 * and runs SSE3 kernels, measured 3x slower on a conv's 64 x 2048 x 576 GEMM (35 against
 * 116 GFLOP/s with SkylakeX's). The library reads OPENBLAS_CORETYPE once, as it loads, so
 * unless the user set it, name the newest kernel family that the CPU's flags allow. The
 * SkylakeX and Haswell kernels are what newer releases run on these CPUs too.
 */
export function coreTypeFor(cpuFlags: ReadonlySet<string>): string | undefined {
  const has = (...flags: string[]) => flags.every((f) => cpuFlags.has(f));
  if (has("avx512f", "avx512dq", "avx512bw", "avx512vl")) return "SKYLAKEX";
  if (has("avx2", "fma")) return "HASWELL";
  return undefined;
}

/** The flags of the first CPU in /proc/cpuinfo (Linux), or an empty set. */
export function cpuFlags(): Set<string> {
  if (!granted({ name: "read", path: "/proc/cpuinfo" })) return new Set();
  try {
    const line = Deno.readTextFileSync("/proc/cpuinfo").match(/^flags\s*:(.*)$/m);
    return new Set(line ? line[1].trim().split(/\s+/) : []);
  } catch {
    return new Set();
  }
}

/** The core type set for OpenBLAS before it loaded, when we chose it (for the description). */
let chosenCoreType: string | undefined;

function chooseCoreType(): void {
  const name = "OPENBLAS_CORETYPE";
  if (!granted({ name: "env", variable: name }) || Deno.env.get(name) !== undefined) return;
  chosenCoreType = coreTypeFor(cpuFlags());
  if (chosenCoreType) Deno.env.set(name, chosenCoreType);
}

function load(): OpenBlas | null {
  chooseCoreType();
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

  // Thread count per call. `current` mirrors what OpenBLAS was last told.
  const setThreads = s.openblas_set_num_threads;
  const startThreads = Math.max(1, s.openblas_get_num_threads?.() ?? 1);
  const envBelow = Number(readEnv("DIGIT_BLAS_SINGLE_BELOW") ?? NaN);
  const policy: BlasThreadPolicy = {
    max: startThreads,
    singleBelowFlops: setThreads ? (envBelow >= 0 ? envBelow : DEFAULT_SINGLE_BELOW_FLOPS) : 0,
  };
  let current = startThreads;
  let switches = 0;
  const threadsFor = (flops: number) => {
    if (!setThreads) return;
    const want = flops < policy.singleBelowFlops ? 1 : policy.max;
    if (want !== current) {
      setThreads(want);
      current = want;
      switches++;
    }
  };

  return {
    library,
    hasLapack,
    threadPolicy: () => ({ ...policy }),
    setThreadPolicy(p) {
      const before = { ...policy };
      if (!setThreads) return before;
      if (p.max !== undefined) policy.max = Math.max(1, Math.floor(p.max));
      if (p.singleBelowFlops !== undefined) policy.singleBelowFlops = p.singleBelowFlops;
      return before;
    },
    threadStats: () => ({ current, switches }),
    sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) {
      if (M === 0 || N === 0) return;
      threadsFor(2 * M * N * K);
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
      threadsFor(2 * M * N * K);
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
      threadsFor(N * N * K);
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
      threadsFor(Infinity); // LAPACK as before: OpenBLAS's full count
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
