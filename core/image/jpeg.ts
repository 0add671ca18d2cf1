/**
 * JPEG decoder (baseline, extended sequential and progressive Huffman; 8-bit; gray,
 * YCbCr, RGB, CMYK, YCCK) that reproduces libjpeg-turbo's default output, i.e. what
 * `PIL.Image.open(f).convert("RGB")` returns: islow IDCT, fancy upsampling, jdcolor.c
 * tables, PIL's CMYK conversion. Not supported: arithmetic coding, lossless and
 * hierarchical modes, 12-bit samples, and progressive block smoothing (libjpeg applies
 * it only to files whose last scans are missing).
 */

import { buildHuffmanTable, type HuffmanTable, NATURAL_ORDER } from "./jpeg_huffman.ts";
import { decodeScan, type JpegComponent } from "./jpeg_scan.ts";
import { idctIslow } from "./jpeg_idct.ts";
import { cmykToRgb, type Plane, upsample, ycckToCmyk, yccToRgb } from "./jpeg_color.ts";
import type { RgbImage } from "./rgb.ts";
import { checkPixelLimit, type DecodeOptions, ImageDecodeError } from "./errors.ts";

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

interface Frame {
  progressive: boolean;
  width: number;
  height: number;
  maxH: number;
  maxV: number;
  mcusWide: number;
  mcusHigh: number;
  components: JpegComponent[];
}

/** Decode a JPEG file's bytes to RGB. `name` (a path) is only used in error messages. */
export function decodeJpeg(
  bytes: Uint8Array,
  name = "<jpeg>",
  opts: DecodeOptions = {},
): RgbImage {
  const fail = (msg: string): never => {
    throw new ImageDecodeError("jpeg", name, msg);
  };
  if (!isJpeg(bytes)) fail("not a JPEG file (no SOI marker)");
  const quant: (Uint16Array | undefined)[] = [];
  const dcTables: (HuffmanTable | undefined)[] = [];
  const acTables: (HuffmanTable | undefined)[] = [];
  let frame: Frame | undefined;
  let restartInterval = 0;
  let sawJfif = false;
  let adobeTransform = -1;
  let scans = 0;
  let pos = 2;

  const u16 = (p: number) => (bytes[p] << 8) | bytes[p + 1];

  for (;;) {
    // Find the next marker, skipping fill bytes (and garbage, as libjpeg's next_marker does).
    while (pos < bytes.length && bytes[pos] !== 0xff) pos++;
    while (pos < bytes.length && bytes[pos] === 0xff) pos++;
    if (pos >= bytes.length) {
      if (frame && scans > 0) break; // missing EOI: libjpeg warns and finishes
      fail("truncated file (no image data)");
    }
    const marker = bytes[pos++];
    if (marker === 0xd9) break; // EOI
    if (marker >= 0xd0 && marker <= 0xd7) continue; // stray RST
    if (marker === 0x01 || marker === 0x00) continue; // TEM, or a stuffed byte in skipped data
    if (pos + 2 > bytes.length) fail(`truncated marker segment 0xFF${hex(marker)}`);
    const len = u16(pos);
    const end = pos + len;
    if (len < 2 || end > bytes.length) fail(`truncated marker segment 0xFF${hex(marker)}`);
    const seg = pos + 2;

    if (marker === 0xdb) {
      for (let p = seg; p < end;) {
        const pq = bytes[p] >> 4;
        const tq = bytes[p] & 15;
        if (tq > 3) fail(`bad quantisation table id ${tq}`);
        const q = new Uint16Array(64);
        for (let k = 0; k < 64; k++) {
          q[NATURAL_ORDER[k]] = pq ? u16(p + 1 + 2 * k) : bytes[p + 1 + k];
        }
        quant[tq] = q;
        p += 1 + (pq ? 128 : 64);
      }
    } else if (marker === 0xc4) {
      for (let p = seg; p < end;) {
        const tc = bytes[p] >> 4;
        const th = bytes[p] & 15;
        const counts = bytes.subarray(p + 1, p + 17);
        let total = 0;
        for (const c of counts) total += c;
        if (p + 17 + total > end || th > 3 || tc > 1) fail("bad Huffman table segment");
        let table: HuffmanTable;
        try {
          table = buildHuffmanTable(counts, bytes.subarray(p + 17, p + 17 + total));
        } catch (e) {
          return fail((e as Error).message.replace(/^jpeg: /, ""));
        }
        (tc === 0 ? dcTables : acTables)[th] = table;
        p += 17 + total;
      }
    } else if (marker === 0xdd) {
      restartInterval = u16(seg);
    } else if (marker === 0xe0) {
      if (len >= 7 && String.fromCharCode(...bytes.subarray(seg, seg + 5)) === "JFIF\0") {
        sawJfif = true;
      }
    } else if (marker === 0xee) {
      if (len >= 14 && String.fromCharCode(...bytes.subarray(seg, seg + 5)) === "Adobe") {
        adobeTransform = bytes[seg + 11];
      }
    } else if (marker === 0xc0 || marker === 0xc1 || marker === 0xc2) {
      if (frame) fail("more than one frame");
      frame = parseFrame(
        bytes,
        seg,
        marker === 0xc2,
        fail,
        (w, h) => checkPixelLimit("jpeg", name, w, h, opts),
      );
    } else if (
      marker >= 0xc3 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc
    ) {
      fail(
        `unsupported JPEG process (SOF 0xFF${hex(marker)}: lossless, hierarchical or arithmetic)`,
      );
    } else if (marker === 0xda) {
      if (!frame) fail("scan before frame header");
      const f = frame!;
      const ns = bytes[seg];
      const comps: JpegComponent[] = [];
      const dcs: (HuffmanTable | undefined)[] = [];
      const acs: (HuffmanTable | undefined)[] = [];
      for (let i = 0; i < ns; i++) {
        const id = bytes[seg + 1 + 2 * i];
        const comp = f.components.find((c) => c.id === id) ??
          fail(`scan names unknown component ${id}`);
        comp.quant ??= quant[comp.quantId] ?? fail(`missing quantisation table ${comp.quantId}`);
        comps.push(comp);
        dcs.push(dcTables[bytes[seg + 2 + 2 * i] >> 4]);
        acs.push(acTables[bytes[seg + 2 + 2 * i] & 15]);
      }
      const sp = seg + 1 + 2 * ns;
      const ss = bytes[sp];
      const se = bytes[sp + 1];
      const ah = bytes[sp + 2] >> 4;
      const al = bytes[sp + 2] & 15;
      const needDc = !f.progressive || (ss === 0 && ah === 0);
      const needAc = !f.progressive || ss > 0;
      for (let i = 0; i < ns; i++) {
        if (needDc && !dcs[i]) fail(`scan ${scans}: missing DC Huffman table`);
        if (needAc && !acs[i]) fail(`scan ${scans}: missing AC Huffman table`);
      }
      if (f.progressive && (se > 63 || ss > se || (ss > 0 && ns !== 1) || (ss === 0 && se !== 0))) {
        fail(`bad progressive scan parameters Ss=${ss} Se=${se} Ns=${ns}`);
      }
      const reader = decodeScan(bytes, end, {
        components: comps,
        dcTables: dcs,
        acTables: acs,
        progressive: f.progressive,
        ss,
        se,
        ah,
        al,
        mcusWide: f.mcusWide,
        mcusHigh: f.mcusHigh,
        restartInterval,
      });
      if (reader.hitEnd && reader.fakeBitsUsed()) fail("image file is truncated");
      scans++;
      pos = reader.pos;
      continue;
    }
    // APPn, COM, DNL and unknown segments are skipped.
    pos = end;
  }
  if (!frame) fail("no frame header");
  return toRgb(frame!, sawJfif, adobeTransform, fail);
}

function hex(b: number): string {
  return b.toString(16).toUpperCase().padStart(2, "0");
}

function parseFrame(
  bytes: Uint8Array,
  p: number,
  progressive: boolean,
  fail: (m: string) => never,
  checkSize: (width: number, height: number) => void,
): Frame {
  const precision = bytes[p];
  if (precision !== 8) fail(`unsupported sample precision ${precision} (only 8-bit)`);
  const height = (bytes[p + 1] << 8) | bytes[p + 2];
  const width = (bytes[p + 3] << 8) | bytes[p + 4];
  const n = bytes[p + 5];
  if (width === 0 || height === 0) fail(`bad image size ${width}x${height} (DNL not supported)`);
  // before the coefficient buffers below are allocated from the declared size
  checkSize(width, height);
  if (n !== 1 && n !== 3 && n !== 4) fail(`unsupported component count ${n}`);
  const raw = [];
  for (let i = 0; i < n; i++) {
    const q = p + 6 + 3 * i;
    const h = bytes[q + 1] >> 4;
    const v = bytes[q + 1] & 15;
    if (h < 1 || h > 4 || v < 1 || v > 4) fail(`bad sampling factors ${h}x${v}`);
    raw.push({ id: bytes[q], h, v, quantId: bytes[q + 2] });
  }
  const maxH = Math.max(...raw.map((c) => c.h));
  const maxV = Math.max(...raw.map((c) => c.v));
  const mcusWide = Math.ceil(width / (8 * maxH));
  const mcusHigh = Math.ceil(height / (8 * maxV));
  const components = raw.map((c) => {
    const gridWide = mcusWide * c.h;
    const gridHigh = mcusHigh * c.v;
    return {
      ...c,
      blocksWide: Math.ceil(Math.ceil((width * c.h) / maxH) / 8),
      blocksHigh: Math.ceil(Math.ceil((height * c.v) / maxV) / 8),
      gridWide,
      gridHigh,
      coefs: new Int16Array(gridWide * gridHigh * 64),
    };
  });
  return { progressive, width, height, maxH, maxV, mcusWide, mcusHigh, components };
}

function toRgb(
  f: Frame,
  sawJfif: boolean,
  adobeTransform: number,
  fail: (m: string) => never,
): RgbImage {
  const { width, height } = f;
  const full = f.components.map((c) => {
    if (!c.quant) fail(`component ${c.id} has no data (no scan)`);
    if (f.maxH % c.h !== 0 || f.maxV % c.v !== 0) fail(`unsupported sampling ${c.h}x${c.v}`);
    const stride = c.gridWide * 8;
    const samples = new Uint8Array(stride * c.gridHigh * 8);
    for (let by = 0; by < c.blocksHigh; by++) {
      for (let bx = 0; bx < c.blocksWide; bx++) {
        idctIslow(
          c.coefs,
          (by * c.gridWide + bx) * 64,
          c.quant!,
          samples,
          by * 8 * stride + bx * 8,
          stride,
        );
      }
    }
    const plane: Plane = {
      data: samples,
      stride,
      width: Math.ceil((width * c.h) / f.maxH),
      height: Math.ceil((height * c.v) / f.maxV),
      hs: f.maxH / c.h,
      vs: f.maxV / c.v,
    };
    return upsample(plane, width, height);
  });
  const out = new Uint8Array(width * height * 3);
  if (full.length === 1) {
    const g = full[0];
    for (let i = 0, o = 0; i < g.length; i++, o += 3) out[o] = out[o + 1] = out[o + 2] = g[i];
  } else if (full.length === 3) {
    const ids = f.components.map((c) => c.id).join(",");
    const isRgb = !sawJfif && (adobeTransform === 0 || (adobeTransform < 0 && ids === "82,71,66"));
    if (isRgb) {
      for (let i = 0, o = 0; i < width * height; i++, o += 3) {
        out[o] = full[0][i];
        out[o + 1] = full[1][i];
        out[o + 2] = full[2][i];
      }
    } else {
      yccToRgb(full[0], full[1], full[2], out);
    }
  } else {
    if (adobeTransform > 0) ycckToCmyk(full[0], full[1], full[2]);
    cmykToRgb(full, out);
  }
  return { width, height, data: out };
}
