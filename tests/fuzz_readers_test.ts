/**
 * Bounded fuzzing of every file reader (issue 16): the committed fixtures are mutated (byte
 * flips, truncation, header edits with boundary values, and the same inside zip entries and PNG
 * chunks with their checksums fixed so the mutation reaches the parser) under a fixed seed.
 * Each mutant must load, or throw a named error (IoFormatError / ImageDecodeError) that names
 * the file: never a TypeError, RangeError or stack overflow. Each case must finish within
 * CASE_MS, and the process RSS must stay within RSS_CEILING_MIB of where it started.
 *
 * DIGIT_FUZZ_COUNT=<n> sets the mutants per fixture (default 1500: about 15 s on 2 busy cores, so well under a minute in CI; 20000 for a long run);
 * DIGIT_FUZZ_SEED=<n> changes the seed. A failure prints the seed, fixture and case index.
 */

import { expect, it } from "./lib/test.ts";
import { crc32 } from "node:zlib";
import { decodeImage } from "../core/image/codec.ts";
import { ImageDecodeError } from "../core/image/errors.ts";
import { decodeJpeg } from "../core/image/jpeg.ts";
import { openSource } from "../core/io/byte_source.ts";
import { IoFormatError } from "../core/io/errors.ts";
import { readNpy, readNpz } from "../core/io/npy.ts";
import { unpickle } from "../core/io/pickle.ts";
import { readSafetensors } from "../core/io/safetensors.ts";
import { loadTorch } from "../core/io/torch.ts";
import { encodeZip, ZipReader } from "../core/io/zip.ts";

const COUNT = Number(Deno.env.get("DIGIT_FUZZ_COUNT") ?? 1500);
const SEED = Number(Deno.env.get("DIGIT_FUZZ_SEED") ?? 16);
const CASE_MS = 2000;
const RSS_CEILING_MIB = 768;
const FIX = new URL("./fixtures/", import.meta.url).pathname;
/**
 * A mutated size field can declare any image up to PIL's limit (178M pixels, 537 MB of RGB and
 * seconds to decode), which is legal; the fuzz checks the limit logic at 4M pixels instead, so
 * every case stays within CASE_MS and the RSS ceiling.
 */
const IMAGE = { maxPixels: 1 << 22 };

/** mulberry32: a small seeded generator, so a failing case can be replayed from its seed. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n) };
}
type Rng = ReturnType<typeof rng>;

/** Values that sit on the edges parsers get wrong: sizes, signs, counts. */
const EDGE_U32 = [
  0,
  1,
  0x7f,
  0x80,
  0xff,
  0x100,
  0x7fff,
  0x8000,
  0xffff,
  0x7fffffff,
  0x80000000,
  0xffffffff,
];

/** One mutation of `b` (a copy); `what` describes it for the failure message. */
function mutateBytes(b: Uint8Array, r: Rng): { bytes: Uint8Array; what: string } {
  const kind = r.int(5);
  if (b.length === 0) return { bytes: b, what: "empty" };
  if (kind === 0) {
    const out = b.slice();
    const n = 1 + r.int(8);
    for (let i = 0; i < n; i++) out[r.int(out.length)] = r.int(256);
    return { bytes: out, what: `${n} random bytes` };
  }
  if (kind === 1) {
    const at = r.int(b.length);
    return { bytes: b.slice(0, at), what: `truncated at ${at}` };
  }
  if (kind === 2) {
    // a 1/2/4/8-byte boundary value somewhere in the first 128 bytes (headers, lengths)
    const out = b.slice();
    const width = [1, 2, 4, 8][r.int(4)];
    const at = r.int(Math.max(1, Math.min(out.length, 128) - width + 1));
    const v = EDGE_U32[r.int(EDGE_U32.length)];
    for (let i = 0; i < width && at + i < out.length; i++) {
      out[at + i] = r.int(2) ? (v >>> (8 * (i % 4))) & 255 : (v >>> (8 * (3 - (i % 4)))) & 255;
    }
    return { bytes: out, what: `header edit: ${width} bytes of ${v} at ${at}` };
  }
  if (kind === 3) {
    const out = b.slice();
    const at = r.int(out.length), len = 1 + r.int(64);
    out.fill(r.int(2) ? 0 : 0xff, at, at + len);
    return { bytes: out, what: `run of ${len} at ${at}` };
  }
  // duplicate a slice in place (repeated records, shifted offsets)
  const at = r.int(b.length), len = 1 + r.int(Math.min(64, b.length - at));
  const out = new Uint8Array(b.length + len);
  out.set(b.subarray(0, at + len));
  out.set(b.subarray(at), at + len);
  return { bytes: out, what: `duplicated ${len} bytes at ${at}` };
}

/** Mutates one entry of a zip and rebuilds it with valid CRCs, so the entry's parser sees it. */
function mutateZipEntry(b: Uint8Array, r: Rng): { bytes: Uint8Array; what: string } {
  const src = openSource(b, "fixture");
  const zip = new ZipReader(src);
  const files = zip.names.map((name) => ({ name, data: zip.read(name) }));
  const pick = files[r.int(files.length)];
  const m = mutateBytes(pick.data, r);
  pick.data = m.bytes;
  return { bytes: encodeZip(files), what: `entry '${pick.name}': ${m.what}` };
}

/** Mutates a PNG and then fixes every chunk CRC, so the mutation reaches the decoder. */
function mutatePngFixed(b: Uint8Array, r: Rng): { bytes: Uint8Array; what: string } {
  const m = mutateBytes(b, r);
  const out = m.bytes;
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let p = 8; p + 12 <= out.length;) {
    const len = dv.getUint32(p);
    if (p + 12 + len > out.length) break;
    dv.setUint32(p + 8 + len, crc32(out.subarray(p + 4, p + 8 + len)) >>> 0);
    p += 12 + len;
  }
  return { bytes: out, what: `${m.what}, CRCs fixed` };
}

type Reader = (bytes: Uint8Array, name: string) => unknown;
type Mutator = (b: Uint8Array, r: Rng) => { bytes: Uint8Array; what: string };

interface Target {
  reader: string;
  read: Reader;
  files: string[];
  mutators: Mutator[];
}

const list = (dir: string, re: RegExp, limit = 99) =>
  [...Deno.readDirSync(FIX + dir)].map((e) => e.name).filter((n) => re.test(n)).sort().slice(
    0,
    limit,
  )
    .map((n) => `${dir}/${n}`);

const readZipAll: Reader = (bytes, name) => {
  const zip = new ZipReader(openSource(bytes, name));
  for (const n of zip.names) zip.read(n);
};

const TARGETS: Target[] = [
  {
    reader: "torch zip",
    read: (b, name) => loadTorch(b, { name }),
    files: [
      "io/torch_zip.pt",
      "io/fairseq_like.pt",
      "io/dinov2_like.pth",
      "hardening/rng_state.pt",
    ],
    mutators: [mutateBytes, mutateZipEntry, mutateZipEntry],
  },
  {
    reader: "legacy torch",
    read: (b, name) => loadTorch(b, { name }),
    files: ["io/torch_legacy.pt", "hardening/module_legacy.pt"],
    mutators: [mutateBytes],
  },
  {
    reader: "pickle",
    read: (b, file) => unpickle(b, { file }),
    files: list("io", /^protocol_\d\.pkl$|^evil\.pkl$/),
    mutators: [mutateBytes],
  },
  {
    reader: "safetensors",
    read: (b, name) => readSafetensors(b, { name }),
    files: ["io/hand.safetensors", "core/tiny_gpt.safetensors"],
    mutators: [mutateBytes],
  },
  {
    reader: "npy",
    read: (b, name) => readNpy(b, { name }),
    files: list("io", /\.npy$/),
    mutators: [mutateBytes],
  },
  {
    reader: "npz",
    read: (b, name) => readNpz(b, { name }),
    files: list("io", /\.npz$/),
    mutators: [mutateBytes, mutateZipEntry],
  },
  {
    reader: "zip",
    read: readZipAll,
    files: list("io", /\.npz$/),
    mutators: [mutateBytes],
  },
  {
    reader: "jpeg (decodeImage: libjpeg-turbo where installed)",
    read: (b, name) => decodeImage(b, name, IMAGE),
    files: [
      "image/jpeg/q75_420.jpg",
      "image/jpeg/progressive_420.jpg",
      "image/jpeg/cmyk.jpg",
      "image/jpeg/gray.jpg",
    ],
    mutators: [mutateBytes],
  },
  {
    reader: "jpeg (TS decoder)",
    read: (b, name) => decodeJpeg(b, name, IMAGE),
    files: [
      "image/jpeg/q90_422.jpg",
      "image/jpeg/cjpeg_restart_rows.jpg",
      "image/jpeg/cmyk_progressive.jpg",
    ],
    mutators: [mutateBytes],
  },
  {
    reader: "png",
    read: (b, name) => decodeImage(b, name, IMAGE),
    files: list("image/png", /\.png$/).filter((_, i) => i % 2 === 0),
    mutators: [mutateBytes, mutatePngFixed, mutatePngFixed],
  },
];

const NAMED = [IoFormatError, ImageDecodeError];

for (const t of TARGETS) {
  it(`fuzz ${t.reader}: ${COUNT} mutants per fixture load or fail with a named error`, async () => {
    const r = rng(SEED ^ crc32(t.reader));
    const rss0 = Deno.memoryUsage().rss;
    const failures: string[] = [];
    let loaded = 0, refused = 0, slowest = 0, peak = 0;
    for (const file of t.files) {
      const clean = Deno.readFileSync(FIX + file);
      // the fixture itself must load: otherwise every mutant is refused for the same reason
      await t.read(clean, file);
      for (let i = 0; i < COUNT; i++) {
        const { bytes, what } = t.mutators[i % t.mutators.length](clean, r);
        const name = `${file}#${i}`;
        const t0 = performance.now();
        try {
          await t.read(bytes, name);
          loaded++;
        } catch (e) {
          refused++;
          const named = NAMED.some((c) => e instanceof c) && (e as Error).message.includes(name);
          if (!named) {
            const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
            failures.push(`${name} (${what}): ${msg.slice(0, 300)}`);
          }
        }
        const ms = performance.now() - t0;
        slowest = Math.max(slowest, ms);
        if (ms > CASE_MS) failures.push(`${name} (${what}): took ${ms.toFixed(0)} ms`);
        const mib = (Deno.memoryUsage().rss - rss0) / (1 << 20);
        peak = Math.max(peak, mib);
        if (mib > RSS_CEILING_MIB) {
          failures.push(`${name} (${what}): RSS grew ${mib.toFixed(0)} MiB`);
          break;
        }
      }
    }
    console.log(
      `fuzz ${t.reader}: ${loaded} loaded, ${refused} refused; slowest ${slowest.toFixed(0)} ms, ` +
        `RSS growth ${peak.toFixed(0)} MiB (seed ${SEED})`,
    );
    expect(failures.slice(0, 10), `${failures.length} bad cases`).toEqual([]);
  });
}
