/**
 * libjpeg's "islow" inverse DCT (jidctint.c: 13-bit fixed-point Loeffler-Ligtenberg-
 * Moschytz, two passes with 2 extra bits between them), the default method of
 * libjpeg-turbo and so of PIL. Same constants, same rounding, same range-limit table,
 * so the output samples are bit-identical for valid data.
 *
 * Sums are formed exactly (JS numbers) and descaled with 32-bit arithmetic shifts, as
 * libjpeg-turbo's SIMD islow does in 32-bit lanes; valid 8-bit JPEG data never leaves that
 * range, so the result equals the C code's 64-bit arithmetic.
 */

const CONST_BITS = 13;
const PASS1_BITS = 2;
const F_0_298 = 2446;
const F_0_390 = 3196;
const F_0_541 = 4433;
const F_0_765 = 6270;
const F_0_899 = 7373;
const F_1_175 = 9633;
const F_1_501 = 12299;
const F_1_847 = 15137;
const F_1_961 = 16069;
const F_2_053 = 16819;
const F_2_562 = 20995;
const F_3_072 = 25172;

const PASS1_SHIFT = CONST_BITS - PASS1_BITS;
const PASS1_ROUND = 1 << (PASS1_SHIFT - 1);
const PASS2_SHIFT = CONST_BITS + PASS1_BITS + 3;
const PASS2_ROUND = 1 << (PASS2_SHIFT - 1);
const DC_SHIFT = PASS1_BITS + 3;
const DC_ROUND = 1 << (DC_SHIFT - 1);

/**
 * libjpeg's post-IDCT range-limit table, indexed by (value & 1023): adds the +128 level
 * shift and clamps to 0..255 for |value| < 512 (larger values wrap, as in libjpeg).
 */
const RANGE_LIMIT = (() => {
  const t = new Uint8Array(1024);
  for (let x = 0; x < 1024; x++) {
    if (x < 128) t[x] = x + 128;
    else if (x < 512) t[x] = 255;
    else if (x < 896) t[x] = 0;
    else t[x] = x - 896;
  }
  return t;
})();

const workspace = new Int32Array(64);

/**
 * Dequantise and inverse-transform the block at coefs[offset..offset+64) (natural order),
 * writing 8x8 samples into `out` at `outOffset` with row stride `stride`.
 * (The odd part is written out twice, inline, because this is the decoder's hot loop.)
 */
export function idctIslow(
  coefs: Int16Array,
  offset: number,
  quant: Uint16Array,
  out: Uint8Array,
  outOffset: number,
  stride: number,
): void {
  const ws = workspace;
  // Pass 1: columns from input, into the work array scaled up by 2^PASS1_BITS.
  for (let col = 0; col < 8; col++) {
    const i = offset + col;
    if (
      coefs[i + 8] === 0 && coefs[i + 16] === 0 && coefs[i + 24] === 0 && coefs[i + 32] === 0 &&
      coefs[i + 40] === 0 && coefs[i + 48] === 0 && coefs[i + 56] === 0
    ) {
      const dc = coefs[i] * quant[col] * (1 << PASS1_BITS);
      ws[col] =
        ws[col + 8] =
        ws[col + 16] =
        ws[col + 24] =
          dc;
      ws[col + 32] =
        ws[col + 40] =
        ws[col + 48] =
        ws[col + 56] =
          dc;
      continue;
    }
    // Even part.
    let z2 = coefs[i + 16] * quant[col + 16];
    let z3 = coefs[i + 48] * quant[col + 48];
    let z1 = (z2 + z3) * F_0_541;
    const e2 = z1 - z3 * F_1_847;
    const e3 = z1 + z2 * F_0_765;
    z2 = coefs[i] * quant[col];
    z3 = coefs[i + 32] * quant[col + 32];
    const e0 = (z2 + z3) * 8192;
    const e1 = (z2 - z3) * 8192;
    const tmp10 = e0 + e3;
    const tmp13 = e0 - e3;
    const tmp11 = e1 + e2;
    const tmp12 = e1 - e2;
    // Odd part.
    const t0 = coefs[i + 56] * quant[col + 56];
    const t1 = coefs[i + 40] * quant[col + 40];
    const t2 = coefs[i + 24] * quant[col + 24];
    const t3 = coefs[i + 8] * quant[col + 8];
    z1 = t0 + t3;
    z2 = t1 + t2;
    z3 = t0 + t2;
    let z4 = t1 + t3;
    const z5 = (z3 + z4) * F_1_175;
    z1 *= -F_0_899;
    z2 *= -F_2_562;
    z3 = z3 * -F_1_961 + z5;
    z4 = z4 * -F_0_390 + z5;
    const o0 = t0 * F_0_298 + z1 + z3;
    const o1 = t1 * F_2_053 + z2 + z4;
    const o2 = t2 * F_3_072 + z2 + z3;
    const o3 = t3 * F_1_501 + z1 + z4;
    ws[col] = (tmp10 + o3 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[56 + col] = (tmp10 - o3 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[8 + col] = (tmp11 + o2 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[48 + col] = (tmp11 - o2 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[16 + col] = (tmp12 + o1 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[40 + col] = (tmp12 - o1 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[24 + col] = (tmp13 + o0 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[32 + col] = (tmp13 - o0 + PASS1_ROUND) >> PASS1_SHIFT;
  }
  // Pass 2: rows from the work array, descaled by 2^(CONST_BITS+PASS1_BITS+3), range-limited.
  for (let row = 0; row < 8; row++) {
    const w = row * 8;
    const dst = outOffset + row * stride;
    if (
      ws[w + 1] === 0 && ws[w + 2] === 0 && ws[w + 3] === 0 && ws[w + 4] === 0 &&
      ws[w + 5] === 0 && ws[w + 6] === 0 && ws[w + 7] === 0
    ) {
      out.fill(RANGE_LIMIT[(ws[w] + DC_ROUND) >> DC_SHIFT & 1023], dst, dst + 8);
      continue;
    }
    let z2 = ws[w + 2];
    let z3 = ws[w + 6];
    let z1 = (z2 + z3) * F_0_541;
    const e2 = z1 - z3 * F_1_847;
    const e3 = z1 + z2 * F_0_765;
    const e0 = (ws[w] + ws[w + 4]) * 8192;
    const e1 = (ws[w] - ws[w + 4]) * 8192;
    const tmp10 = e0 + e3;
    const tmp13 = e0 - e3;
    const tmp11 = e1 + e2;
    const tmp12 = e1 - e2;
    const t0 = ws[w + 7];
    const t1 = ws[w + 5];
    const t2 = ws[w + 3];
    const t3 = ws[w + 1];
    z1 = t0 + t3;
    z2 = t1 + t2;
    z3 = t0 + t2;
    let z4 = t1 + t3;
    const z5 = (z3 + z4) * F_1_175;
    z1 *= -F_0_899;
    z2 *= -F_2_562;
    z3 = z3 * -F_1_961 + z5;
    z4 = z4 * -F_0_390 + z5;
    const o0 = t0 * F_0_298 + z1 + z3;
    const o1 = t1 * F_2_053 + z2 + z4;
    const o2 = t2 * F_3_072 + z2 + z3;
    const o3 = t3 * F_1_501 + z1 + z4;
    out[dst] = RANGE_LIMIT[(tmp10 + o3 + PASS2_ROUND) >> PASS2_SHIFT & 1023];
    out[dst + 7] = RANGE_LIMIT[(tmp10 - o3 + PASS2_ROUND) >> PASS2_SHIFT & 1023];
    out[dst + 1] = RANGE_LIMIT[(tmp11 + o2 + PASS2_ROUND) >> PASS2_SHIFT & 1023];
    out[dst + 6] = RANGE_LIMIT[(tmp11 - o2 + PASS2_ROUND) >> PASS2_SHIFT & 1023];
    out[dst + 2] = RANGE_LIMIT[(tmp12 + o1 + PASS2_ROUND) >> PASS2_SHIFT & 1023];
    out[dst + 5] = RANGE_LIMIT[(tmp12 - o1 + PASS2_ROUND) >> PASS2_SHIFT & 1023];
    out[dst + 3] = RANGE_LIMIT[(tmp13 + o0 + PASS2_ROUND) >> PASS2_SHIFT & 1023];
    out[dst + 4] = RANGE_LIMIT[(tmp13 - o0 + PASS2_ROUND) >> PASS2_SHIFT & 1023];
  }
}
