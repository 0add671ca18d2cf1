/**
 * Huffman tables and the entropy-coded-segment bit reader of a JPEG decoder.
 *
 * The reader mirrors libjpeg: 0xFF 0x00 is a stuffed 0xFF; on reaching a marker (or the
 * end of the file) it feeds zero bits, so a short segment decodes as zeros instead of
 * throwing, and `fakeBitsUsed()` tells the caller whether such padding was consumed.
 */

/** Zigzag position to natural (row-major) position, padded for corrupt run lengths. */
export const NATURAL_ORDER = new Int32Array([
  0,
  1,
  8,
  16,
  9,
  2,
  3,
  10,
  17,
  24,
  32,
  25,
  18,
  11,
  4,
  5,
  12,
  19,
  26,
  33,
  40,
  48,
  41,
  34,
  27,
  20,
  13,
  6,
  7,
  14,
  21,
  28,
  35,
  42,
  49,
  56,
  57,
  50,
  43,
  36,
  29,
  22,
  15,
  23,
  30,
  37,
  44,
  51,
  58,
  59,
  52,
  45,
  38,
  31,
  39,
  46,
  53,
  60,
  61,
  54,
  47,
  55,
  62,
  63,
  // libjpeg lets a corrupt run overshoot up to position 79 and writes it to 63.
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
]);

const LOOKAHEAD = 9;

export interface HuffmanTable {
  /** Indexed by the next 9 bits: (code length << 8) | symbol, or 0 when the code is longer. */
  fast: Uint16Array;
  /**
   * For AC tables, indexed by the next 9 bits when a code and its magnitude bits both fit:
   * (coefficient << 16) | (run << 8) | bits used; 0 otherwise (take the general path).
   */
  fastAc: Int32Array;
  /** Per code length l (1..16): largest code of that length, -1 if none. */
  maxCode: Int32Array;
  /** Per length: symbols[valOffset[l] + code] is the symbol of `code`. */
  valOffset: Int32Array;
  symbols: Uint8Array;
}

/** Build a canonical table from DHT counts (16 entries) and symbols. */
export function buildHuffmanTable(counts: Uint8Array, symbols: Uint8Array): HuffmanTable {
  const maxCode = new Int32Array(18).fill(-1);
  const valOffset = new Int32Array(18);
  const fast = new Uint16Array(1 << LOOKAHEAD);
  let code = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    const n = counts[len - 1];
    valOffset[len] = k - code;
    for (let i = 0; i < n; i++, k++, code++) {
      if (len <= LOOKAHEAD) {
        const shift = LOOKAHEAD - len;
        const base = code << shift;
        for (let j = 0; j < 1 << shift; j++) fast[base + j] = (len << 8) | symbols[k];
      }
    }
    if (n > 0) maxCode[len] = code - 1;
    if (code > 1 << len) {
      throw new Error(`jpeg: bad Huffman table (too many codes of length ${len})`);
    }
    code <<= 1;
  }
  maxCode[17] = 0x7fffffff; // sentinel: ends the slow search
  const fastAc = new Int32Array(1 << LOOKAHEAD);
  for (let peek = 0; peek < 1 << LOOKAHEAD; peek++) {
    const e = fast[peek];
    if (e === 0) continue;
    const len = e >> 8;
    const s = e & 15;
    if (s === 0 || len + s > LOOKAHEAD) continue;
    const raw = (peek >> (LOOKAHEAD - len - s)) & ((1 << s) - 1);
    const value = raw < 1 << (s - 1) ? raw - (1 << s) + 1 : raw;
    fastAc[peek] = (value << 16) | ((e & 0xf0) << 4) | (len + s);
  }
  return { fast, fastAc, maxCode, valOffset, symbols };
}

export class BitReader {
  private buf = 0;
  private count = 0;
  /** Zero bytes fed because a marker or the end of the data was reached. */
  private fakeBytes = 0;
  hitEnd = false;
  /** Count of invalid Huffman codes met (libjpeg warns and decodes them as 0). */
  badCodes = 0;

  constructor(private readonly data: Uint8Array, public pos: number) {}

  private fill(): void {
    const data = this.data;
    while (this.count <= 24) {
      let byte = 0;
      if (this.fakeBytes > 0 || this.pos >= data.length) {
        if (this.pos >= data.length) this.hitEnd = true;
        this.fakeBytes++;
      } else if (data[this.pos] === 0xff) {
        const next = data[this.pos + 1];
        if (next === 0x00) {
          byte = 0xff;
          this.pos += 2;
        } else if (next === 0xff) {
          this.pos++; // fill byte before a marker: skip it
          continue;
        } else {
          this.fakeBytes++; // a marker: stop here, leave pos on it
        }
      } else {
        byte = data[this.pos++];
      }
      this.buf = ((this.buf << 8) | byte) >>> 0;
      this.count += 8;
    }
  }

  /** True when padding bits (past a marker or the file end) were consumed. */
  fakeBitsUsed(): boolean {
    return this.fakeBytes * 8 > this.count;
  }

  bits(n: number): number {
    if (n === 0) return 0;
    if (this.count < n) this.fill();
    this.count -= n;
    return (this.buf >>> this.count) & ((1 << n) - 1);
  }

  bit(): number {
    if (this.count < 1) this.fill();
    this.count--;
    return (this.buf >>> this.count) & 1;
  }

  /** Read `s` bits as a signed JPEG magnitude category value (EXTEND). */
  receiveExtend(s: number): number {
    if (s === 0) return 0;
    const v = this.bits(s);
    return v < 1 << (s - 1) ? v - (1 << s) + 1 : v;
  }

  decode(t: HuffmanTable): number {
    if (this.count < 16) this.fill();
    const peek = (this.buf >>> (this.count - LOOKAHEAD)) & ((1 << LOOKAHEAD) - 1);
    const e = t.fast[peek];
    if (e !== 0) {
      this.count -= e >> 8;
      return e & 0xff;
    }
    for (let len = LOOKAHEAD + 1; len <= 17; len++) {
      if (len === 17) break;
      const code = (this.buf >>> (this.count - len)) & ((1 << len) - 1);
      if (code <= t.maxCode[len]) {
        this.count -= len;
        return t.symbols[t.valOffset[len] + code];
      }
    }
    // libjpeg: "Corrupt JPEG data: bad Huffman code", decoded as symbol 0.
    this.badCodes++;
    this.count -= Math.min(this.count, 16);
    return 0;
  }

  /** One AC coefficient via the combined table: the packed entry (bits consumed), or 0. */
  decodeAcFast(t: HuffmanTable): number {
    if (this.count < 16) this.fill();
    const e = t.fastAc[(this.buf >>> (this.count - LOOKAHEAD)) & ((1 << LOOKAHEAD) - 1)];
    if (e !== 0) this.count -= e & 0xff;
    return e;
  }

  /** Drop buffered bits and position on the next marker (restart handling). */
  resetAtMarker(): void {
    this.buf = 0;
    this.count = 0;
    this.fakeBytes = 0;
  }
}
