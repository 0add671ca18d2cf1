/**
 * TensorBoard event files: CRC-32C against the RFC 3720 vectors, events byte for byte
 * against encodings derived by hand (field keys and IEEE-754 bytes spelled out below; the
 * framed record's CRCs were computed with an independent bit-by-bit CRC in Python), and a
 * written file read back record by record.
 */

import { expect, it } from "./lib/test.ts";
import { crc32c, maskedCrc32c } from "../core/log/crc32c.ts";
import {
  encodeEvent,
  histogramOf,
  readTfRecords,
  TensorBoardWriter,
  tfRecord,
} from "../core/log/tensorboard.ts";
import { decodeImage } from "../core/image/codec.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

it("crc32c: RFC 3720 / iSCSI test vectors", () => {
  expect(crc32c(enc("123456789"))).toBe(0xe3069283);
  expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
  expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
  expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
  expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
  // mask = rotr(crc, 15) + 0xa282ead8
  const c = 0xe3069283;
  expect(maskedCrc32c(enc("123456789"))).toBe(
    ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0,
  );
});

it("tensorboard: a scalar event and its TFRecord, byte for byte", () => {
  const ev = encodeEvent({ wallTime: 1.5, step: 3, values: [{ tag: "loss", scalar: 0.25 }] });
  const expected = [
    "09",
    "000000000000f83f", // field 1 (wall_time), wire 1 (64-bit): 1.5 = 0x3FF8000000000000 LE
    "10",
    "03", // field 2 (step), wire 0 (varint): 3
    "2a",
    "0d", // field 5 (summary), wire 2, 13 bytes
    "0a",
    "0b", //   Summary.value (field 1), 11 bytes
    "0a",
    "04",
    "6c6f7373", //     Value.tag (field 1) "loss"
    "15",
    "0000803e", //     Value.simple_value (field 2, wire 5 = 32-bit): 0.25f = 0x3E800000 LE
  ].join("");
  expect(hex(ev)).toBe(expected);
  // u64 length 26 | masked crc of those 8 bytes | data | masked crc of data
  expect(hex(tfRecord(ev))).toBe("1a00000000000000" + "129bd82d" + expected + "d054b255");
});

it("tensorboard: file_version header event and varints", () => {
  const ev = encodeEvent({ wallTime: 1000.25, fileVersion: "brain.Event:2" });
  // 1000.25 = 1.11110100001b x 2^9 -> 0x408F420000000000; field 3 string of 13 bytes.
  expect(hex(ev)).toBe("09" + "0000000000428f40" + "1a0d" + hex(enc("brain.Event:2")));
  // step 300 -> varint ac 02; step 0 is the proto3 default and is omitted.
  expect(hex(encodeEvent({ wallTime: 0, step: 300 }))).toBe("09" + "0000000000000000" + "10ac02");
  expect(hex(encodeEvent({ wallTime: 0, step: 0 }))).toBe("09" + "0000000000000000");
});

it("tensorboard: writer produces readable records with scalars, image and histogram", () => {
  const dir = Deno.makeTempDirSync();
  try {
    let t = 100;
    const w = new TensorBoardWriter(`${dir}/tb`, { now: () => t++, hostname: "testhost" });
    w.addScalar("train/loss", 2.5, 1);
    w.addScalars({ a: 1, b: 2 }, 2);
    const img = { width: 3, height: 2, data: Uint8Array.from({ length: 18 }, (_, i) => i * 10) };
    w.addImage("samples", img, 5);
    w.addHistogram("weights", [0, 1, 1, 2, 3], 6, 3);
    w.close();
    expect(w.path).toBe(`${dir}/tb/events.out.tfevents.100.testhost`);
    const records = readTfRecords(Deno.readFileSync(w.path));
    expect(records.length).toBe(5);
    expect(records[0]).toEqual(encodeEvent({ wallTime: 100, fileVersion: "brain.Event:2" }));
    expect(records[1]).toEqual(
      encodeEvent({ wallTime: 101, step: 1, values: [{ tag: "train/loss", scalar: 2.5 }] }),
    );
    // The image record carries a PNG that decodes back to the image.
    const r = records[3];
    const png = r.subarray(r.indexOf(0x89), r.length);
    const back = decodeImage(png.subarray(0, png.length), "event png");
    expect(back.data).toEqual(img.data);
    // A corrupted byte is caught by the CRC.
    const bad = Deno.readFileSync(w.path);
    bad[30] ^= 1;
    expect(() => readTfRecords(bad)).toThrow(/bad data CRC/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  const h = histogramOf([0, 1, 1, 2, 3], 3);
  expect([h.min, h.max, h.num, h.sum, h.sumSquares]).toEqual([0, 3, 5, 7, 15]);
  expect(h.bucket).toEqual([1, 2, 2]);
  expect(h.bucketLimit).toEqual([1, 2, 3]);
});
