/**
 * Entropy decoding of one JPEG scan into per-component DCT coefficient arrays
 * (baseline/extended sequential and progressive Huffman; the four progressive passes
 * follow ITU T.81 Annex G and libjpeg's jdphuff.c, including its handling of EOB runs).
 *
 * Coefficients are stored in natural (row-major) order, 64 per block, blocks laid out on
 * the component's MCU-padded grid.
 */

import { BitReader, type HuffmanTable, NATURAL_ORDER } from "./jpeg_huffman.ts";

export interface JpegComponent {
  id: number;
  h: number;
  v: number;
  quantId: number;
  /** Blocks that hold image samples (libjpeg's width_in_blocks / height_in_blocks). */
  blocksWide: number;
  blocksHigh: number;
  /** Allocated grid: a whole number of MCUs, also used as the row stride in blocks. */
  gridWide: number;
  gridHigh: number;
  coefs: Int16Array;
  /** Quantisation table in natural order, latched when the first scan uses it. */
  quant?: Uint16Array;
}

export interface ScanParams {
  components: JpegComponent[];
  dcTables: (HuffmanTable | undefined)[];
  acTables: (HuffmanTable | undefined)[];
  progressive: boolean;
  ss: number;
  se: number;
  ah: number;
  al: number;
  mcusWide: number;
  mcusHigh: number;
  restartInterval: number;
}

type BlockDecoder = (c: number, offset: number) => void;

/** Decode one scan starting at `pos`; returns the position just after its entropy data. */
export function decodeScan(data: Uint8Array, pos: number, p: ScanParams): BitReader {
  const r = new BitReader(data, pos);
  const comps = p.components;
  const preds = new Int32Array(comps.length);
  let eobrun = 0;
  const { ss, se, ah, al } = p;

  const decodeBaseline: BlockDecoder = (c, off) => {
    const comp = comps[c];
    const coefs = comp.coefs;
    const dc = p.dcTables[c]!;
    const ac = p.acTables[c]!;
    const t = r.decode(dc);
    preds[c] += t === 0 ? 0 : r.receiveExtend(t);
    coefs[off] = preds[c];
    for (let k = 1; k < 64; k++) {
      const fa = r.decodeAcFast(ac);
      if (fa !== 0) {
        k += (fa >> 8) & 15;
        coefs[off + NATURAL_ORDER[k]] = fa >> 16;
        continue;
      }
      const rs = r.decode(ac);
      const s = rs & 15;
      const run = rs >> 4;
      if (s === 0) {
        if (run !== 15) break;
        k += 15;
        continue;
      }
      k += run;
      coefs[off + NATURAL_ORDER[k]] = r.receiveExtend(s);
    }
  };

  const decodeDcFirst: BlockDecoder = (c, off) => {
    const t = r.decode(p.dcTables[c]!);
    preds[c] += t === 0 ? 0 : r.receiveExtend(t);
    comps[c].coefs[off] = preds[c] * (1 << al);
  };

  const decodeDcRefine: BlockDecoder = (c, off) => {
    if (r.bit()) comps[c].coefs[off] |= 1 << al;
  };

  const decodeAcFirst: BlockDecoder = (c, off) => {
    if (eobrun > 0) {
      eobrun--;
      return;
    }
    const coefs = comps[c].coefs;
    const ac = p.acTables[c]!;
    for (let k = ss; k <= se; k++) {
      const rs = r.decode(ac);
      const s = rs & 15;
      const run = rs >> 4;
      if (s === 0) {
        if (run < 15) {
          eobrun = (1 << run) - 1 + r.bits(run);
          break;
        }
        k += 15;
        continue;
      }
      k += run;
      coefs[off + NATURAL_ORDER[k]] = r.receiveExtend(s) * (1 << al);
    }
  };

  const decodeAcRefine: BlockDecoder = (c, off) => {
    const coefs = comps[c].coefs;
    const ac = p.acTables[c]!;
    const p1 = 1 << al;
    const m1 = -1 << al;
    let k = ss;
    // Correction bit for an already-nonzero coefficient: move it away from zero.
    const refine = (z: number) => {
      if (r.bit() && (coefs[z] & p1) === 0) coefs[z] += coefs[z] >= 0 ? p1 : m1;
    };
    if (eobrun === 0) {
      for (; k <= se; k++) {
        const rs = r.decode(ac);
        let s = rs & 15;
        let run = rs >> 4;
        if (s !== 0) {
          s = r.bit() ? p1 : m1; // a new coefficient of magnitude 1 << al
        } else if (run !== 15) {
          eobrun = (1 << run) + r.bits(run);
          break;
        }
        // Skip `run` zero coefficients, refining the nonzero ones passed on the way.
        while (k <= se) {
          const z = off + NATURAL_ORDER[k];
          if (coefs[z] !== 0) refine(z);
          else if (--run < 0) break;
          k++;
        }
        if (s !== 0) coefs[off + NATURAL_ORDER[k]] = s;
      }
    }
    if (eobrun > 0) {
      for (; k <= se; k++) {
        const z = off + NATURAL_ORDER[k];
        if (coefs[z] !== 0) refine(z);
      }
      eobrun--;
    }
  };

  let decodeBlock: BlockDecoder;
  if (!p.progressive) decodeBlock = decodeBaseline;
  else if (ss === 0) decodeBlock = ah === 0 ? decodeDcFirst : decodeDcRefine;
  else decodeBlock = ah === 0 ? decodeAcFirst : decodeAcRefine;

  const restart = () => {
    r.resetAtMarker();
    // Find the RSTn marker (skipping garbage, as libjpeg's resync would) and step over it.
    let q = r.pos;
    while (
      q + 1 < data.length && !(data[q] === 0xff && data[q + 1] >= 0xd0 && data[q + 1] <= 0xd7)
    ) {
      if (data[q] === 0xff && data[q + 1] !== 0 && data[q + 1] !== 0xff) break; // another marker
      q++;
    }
    if (q + 1 < data.length && data[q + 1] >= 0xd0 && data[q + 1] <= 0xd7) q += 2;
    r.pos = q;
    preds.fill(0);
    eobrun = 0;
  };

  const interval = p.restartInterval;
  let unitsToRestart = interval;
  if (comps.length === 1) {
    // Non-interleaved: one block per MCU, over the blocks holding image data only.
    const comp = comps[0];
    for (let by = 0; by < comp.blocksHigh; by++) {
      for (let bx = 0; bx < comp.blocksWide; bx++) {
        if (interval > 0 && unitsToRestart === 0) {
          restart();
          unitsToRestart = interval;
        }
        decodeBlock(0, (by * comp.gridWide + bx) * 64);
        unitsToRestart--;
      }
    }
  } else {
    for (let my = 0; my < p.mcusHigh; my++) {
      for (let mx = 0; mx < p.mcusWide; mx++) {
        if (interval > 0 && unitsToRestart === 0) {
          restart();
          unitsToRestart = interval;
        }
        for (let c = 0; c < comps.length; c++) {
          const comp = comps[c];
          for (let v = 0; v < comp.v; v++) {
            const row = (my * comp.v + v) * comp.gridWide;
            for (let h = 0; h < comp.h; h++) decodeBlock(c, (row + mx * comp.h + h) * 64);
          }
        }
        unitsToRestart--;
      }
    }
  }
  return r;
}
