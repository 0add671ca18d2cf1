/**
 * The CPU backend's output pool (core/backends/cpu/storage.ts): large kernel outputs of
 * released storages are reused, and an array that left the backend through a read never is.
 */

import { expect, it } from "./lib/test.ts";
import { clearOutputPool, handOut, outputF32, recycle } from "../core/backends/cpu/storage.ts";
import * as ops from "../core/ops/mod.ts";
import { Rng } from "../core/random.ts";

const BIG = 1 << 18; // the smallest pooled length

it("output pool: a recycled array comes back zeroed (or as is, when asked), once", () => {
  clearOutputPool();
  const a = outputF32(BIG);
  a.fill(7);
  recycle(a);
  const b = outputF32(BIG, false);
  expect(b, "same array reused").toBe(a);
  expect(b[123], "not zeroed when zeroed = false").toBe(7);
  recycle(b);
  const c = outputF32(BIG);
  expect(c).toBe(a);
  expect(c.every((v) => v === 0), "zeroed by default").toBeTruthy();
  expect(outputF32(BIG), "handed out once only").not.toBe(a);
  recycle(c);
  recycle(c); // a second release of the same array must not queue it twice
  expect(outputF32(BIG)).toBe(a);
  expect(outputF32(BIG)).not.toBe(a);
});

it("output pool: only its own arrays, never one that was read, never small ones", () => {
  clearOutputPool();
  const foreign = new Float32Array(BIG);
  recycle(foreign);
  expect(outputF32(BIG), "arrays from elsewhere are not taken").not.toBe(foreign);
  const read = outputF32(BIG);
  handOut(read);
  recycle(read);
  expect(outputF32(BIG), "an array handed out is not taken back").not.toBe(read);
  const small = outputF32(100);
  recycle(small);
  expect(outputF32(100)).not.toBe(small);
});

it("output pool: data read from a disposed tensor stays intact while the op runs again", () => {
  clearOutputPool();
  const x = ops.tensor(new Rng(1).fillNormal(new Float32Array(2 * 64 * 64 * 64)), [
    2,
    64,
    64,
    64,
  ]);
  const y = ops.groupNorm(x, 8, null, null);
  const seen = y.dataSync();
  const copy = seen.slice();
  y.dispose();
  // Same size again, with other numbers: must not land in `seen`.
  const x2 = ops.mul(x, 3);
  const y2 = ops.groupNorm(ops.add(x2, 1), 4, null, null);
  expect(seen).toEqual(copy);
  // And an unread output is reused: the next same-size op gets its memory.
  const z = ops.groupNorm(x, 8, null, null);
  const before = y2.dataSync();
  z.dispose();
  const again = ops.groupNorm(x2, 8, null, null);
  expect(before).toEqual(y2.dataSync());
  for (const t of [x, x2, y2, again]) t.dispose();
});
