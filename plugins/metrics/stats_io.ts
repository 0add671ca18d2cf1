/**
 * Reference statistics on disk, so a reference set (50,000 ImageNet images) is pushed
 * through the network once. Two containers, chosen by extension, both float64:
 *
 *   .npz          mu (d,) <f8, sigma (d, d) <f8, count () <i8, feature () <U..   (np.load reads
 *                 it; `mu`/`sigma` are the keys pytorch-fid's and ADM's .npz files use, so
 *                 theirs load here too, float32 ones included)
 *   .safetensors  mu, sigma as F64; count and feature in __metadata__
 *
 * core/io's readers widen everything to float32, which would cost the covariance 8 digits,
 * so the float64 arrays are encoded and decoded here.
 */

import { openSource } from "../../core/io/byte_source.ts";
import { parsePyLiteral } from "../../core/io/npy.ts";
import { readSafetensorsHeader } from "../../core/io/safetensors.ts";
import { encodeZip, ZipReader } from "../../core/io/zip.ts";
import type { GaussianStats } from "./stats.ts";

/** Statistics plus the name of the features they describe (e.g. "inception-pool3"). */
export interface StoredStats extends GaussianStats {
  feature?: string;
}

export type StatsFormat = "npz" | "safetensors";

export function statsFormatOf(path: string): StatsFormat {
  if (/\.npz$/i.test(path)) return "npz";
  if (/\.safetensors$/i.test(path)) return "safetensors";
  throw new Error(`statistics file '${path}': use a .npz or .safetensors extension`);
}

export async function saveStats(
  path: string,
  stats: GaussianStats,
  feature: string,
): Promise<void> {
  checkStats(stats, path);
  const bytes = statsFormatOf(path) === "npz"
    ? encodeStatsNpz(stats, feature)
    : encodeStatsSafetensors(stats, feature);
  await Deno.writeFile(path, bytes);
}

/**
 * Loads statistics; with `expect`, a different feature size (or a different feature name,
 * when the file records one) is an error naming the file.
 */
export async function loadStats(
  path: string,
  expect: { dim?: number; feature?: string } = {},
): Promise<StoredStats> {
  try {
    await Deno.stat(path);
  } catch {
    throw new Error(`statistics file '${path}' does not exist`);
  }
  const stats = statsFormatOf(path) === "npz" ? decodeStatsNpz(path) : decodeStatsSafetensors(path);
  checkStats(stats, path);
  if (expect.dim !== undefined && stats.dim !== expect.dim) {
    throw new Error(
      `statistics file '${path}': features have ${stats.dim} dimensions, expected ${expect.dim}` +
        `${expect.feature ? ` (${expect.feature})` : ""}`,
    );
  }
  if (
    expect.feature !== undefined && stats.feature !== undefined && stats.feature !== expect.feature
  ) {
    throw new Error(
      `statistics file '${path}': holds '${stats.feature}' statistics, expected '${expect.feature}'`,
    );
  }
  return stats;
}

function checkStats(s: GaussianStats, where: string): void {
  if (s.mu.length !== s.dim || s.sigma.length !== s.dim * s.dim) {
    throw new Error(
      `${where}: mu has ${s.mu.length} values and sigma ${s.sigma.length}, expected ${s.dim} and ${s.dim}^2`,
    );
  }
  for (const [name, a] of [["mu", s.mu], ["sigma", s.sigma]] as const) {
    const bad = a.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`${where}: ${name}[${bad}] is ${a[bad]}`);
  }
}

// ---- .npz --------------------------------------------------------------------------------

function npy(descr: string, shape: number[], payload: Uint8Array): Uint8Array {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${dims}, }`;
  dict += " ".repeat((64 - ((10 + dict.length + 1) % 64)) % 64) + "\n";
  const header = new TextEncoder().encode(dict);
  const out = new Uint8Array(10 + header.length + payload.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(header, 10);
  out.set(payload, 10 + header.length);
  return out;
}

const bytesOf = (a: Float64Array | BigInt64Array | Uint32Array) =>
  new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function encodeStatsNpz(s: GaussianStats, feature: string): Uint8Array {
  const codePoints = Uint32Array.from([...feature].map((c) => c.codePointAt(0)!));
  return encodeZip([
    { name: "mu.npy", data: npy("<f8", [s.dim], bytesOf(s.mu)) },
    { name: "sigma.npy", data: npy("<f8", [s.dim, s.dim], bytesOf(s.sigma)) },
    { name: "count.npy", data: npy("<i8", [], bytesOf(BigInt64Array.of(BigInt(s.count)))) },
    {
      name: "feature.npy",
      data: npy(`<U${Math.max(1, codePoints.length)}`, [], bytesOf(codePoints)),
    },
  ]);
}

interface NpyArray {
  descr: string;
  shape: number[];
  data: Uint8Array;
  fortran: boolean;
}

function parseNpyRaw(bytes: Uint8Array, where: string): NpyArray {
  if (
    bytes.length < 10 || bytes[0] !== 0x93 ||
    String.fromCharCode(...bytes.subarray(1, 6)) !== "NUMPY"
  ) {
    throw new Error(`${where}: not an .npy array`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [len, start] = bytes[6] === 1 ? [dv.getUint16(8, true), 10] : [dv.getUint32(8, true), 12];
  const header = parsePyLiteral(
    new TextDecoder("latin1").decode(bytes.subarray(start, start + len)),
  );
  if (!(header instanceof Map)) throw new Error(`${where}: bad .npy header`);
  return {
    descr: String(header.get("descr")),
    shape: (header.get("shape") as number[]).map(Number),
    fortran: header.get("fortran_order") === true,
    data: bytes.slice(start + len),
  };
}

/** float64 values of a '<f8' or '<f4' array. */
function floats(a: NpyArray, where: string): Float64Array {
  const n = a.shape.reduce((x, y) => x * y, 1);
  const dv = new DataView(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const size = a.descr === "<f8" ? 8 : a.descr === "<f4" ? 4 : 0;
  if (!size) throw new Error(`${where}: dtype '${a.descr}' is not float64 or float32`);
  if (a.data.length < n * size) {
    throw new Error(`${where}: truncated (${a.data.length} of ${n * size} bytes)`);
  }
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = size === 8 ? dv.getFloat64(i * 8, true) : dv.getFloat32(i * 4, true);
  }
  if (a.fortran && a.shape.length === 2) {
    const [r, c] = a.shape;
    const t = new Float64Array(n);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[i * c + j] = out[j * r + i];
    return t;
  }
  return out;
}

function decodeStatsNpz(path: string): StoredStats {
  const src = openSource(path);
  try {
    const zip = new ZipReader(src);
    const entry = (key: string) =>
      zip.names.includes(`${key}.npy`)
        ? parseNpyRaw(zip.read(`${key}.npy`), `${path}: '${key}'`)
        : null;
    const mu = entry("mu"), sigma = entry("sigma");
    if (!mu || !sigma) {
      throw new Error(
        `statistics file '${path}': needs arrays 'mu' and 'sigma' (has: ${zip.names.join(", ")})`,
      );
    }
    const dim = mu.shape[0];
    if (
      mu.shape.length !== 1 || sigma.shape.length !== 2 || sigma.shape[0] !== dim ||
      sigma.shape[1] !== dim
    ) {
      throw new Error(
        `statistics file '${path}': mu [${mu.shape}] and sigma [${sigma.shape}] should be (d,) and (d, d)`,
      );
    }
    const count = entry("count");
    const feature = entry("feature");
    return {
      dim,
      mu: floats(mu, `${path}: 'mu'`),
      sigma: floats(sigma, `${path}: 'sigma'`),
      count: count?.descr === "<i8"
        ? Number(new DataView(count.data.buffer, count.data.byteOffset).getBigInt64(0, true))
        : 0,
      feature: feature?.descr.startsWith("<U") ? decodeUtf32(feature.data) : undefined,
    };
  } finally {
    src.close();
  }
}

function decodeUtf32(bytes: Uint8Array): string {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let s = "";
  for (let i = 0; i + 4 <= bytes.length; i += 4) {
    const c = dv.getUint32(i, true);
    if (c === 0) break;
    s += String.fromCodePoint(c);
  }
  return s;
}

// ---- .safetensors ------------------------------------------------------------------------

function encodeStatsSafetensors(s: GaussianStats, feature: string): Uint8Array {
  const muBytes = s.dim * 8;
  const header = {
    __metadata__: { feature, count: String(s.count) },
    mu: { dtype: "F64", shape: [s.dim], data_offsets: [0, muBytes] },
    sigma: {
      dtype: "F64",
      shape: [s.dim, s.dim],
      data_offsets: [muBytes, muBytes + s.dim * s.dim * 8],
    },
  };
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + muBytes + s.dim * s.dim * 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  out.set(bytesOf(s.mu), 8 + head.length);
  out.set(bytesOf(s.sigma), 8 + head.length + muBytes);
  return out;
}

function decodeStatsSafetensors(path: string): StoredStats {
  const src = openSource(path);
  try {
    const { entries, metadata, dataStart } = readSafetensorsHeader(src);
    const array = (key: string) => {
      const e = entries.get(key);
      if (!e) {
        throw new Error(
          `statistics file '${path}': needs tensors 'mu' and 'sigma' (has: ${
            [...entries.keys()].join(", ")
          })`,
        );
      }
      const descr = e.dtype === "f64" ? "<f8" : e.dtype === "f32" ? "<f4" : e.dtype;
      const data = src.read(dataStart + e.begin, e.end - e.begin, `tensor '${key}'`);
      return {
        shape: e.shape,
        values: floats({ descr, shape: e.shape, data, fortran: false }, `${path}: '${key}'`),
      };
    };
    const mu = array("mu"), sigma = array("sigma");
    const dim = mu.shape[0];
    if (
      mu.shape.length !== 1 || sigma.shape.length !== 2 || sigma.shape[0] !== dim ||
      sigma.shape[1] !== dim
    ) {
      throw new Error(
        `statistics file '${path}': mu [${mu.shape}] and sigma [${sigma.shape}] should be (d,) and (d, d)`,
      );
    }
    return {
      dim,
      mu: mu.values,
      sigma: sigma.values,
      count: Number(metadata.count ?? 0),
      feature: metadata.feature,
    };
  } finally {
    src.close();
  }
}
