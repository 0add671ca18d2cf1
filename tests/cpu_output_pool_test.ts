/**
 * The CPU backend's output pool (core/backends/cpu/storage.ts): large kernel outputs of
 * released storages are reused, and an array that left the backend through a read never is.
 */

import assert from "node:assert/strict";
import { clearOutputPool, handOut, outputF32, recycle } from "../core/backends/cpu/storage.ts";
import * as ops from "../core/ops/mod.ts";
import { Generator } from "../core/random.ts";

const BIG = 1 << 18; // the smallest pooled length

Deno.test("output pool: a recycled array comes back zeroed (or as is, when asked), once", () => {
  clearOutputPool();
  const a = outputF32(BIG);
  a.fill(7);
  recycle(a);
  const b = outputF32(BIG, false);
  assert.ok(b === a, "same array reused");
  assert.equal(b[123], 7, "not zeroed when zeroed = false");
  recycle(b);
  const c = outputF32(BIG);
  assert.ok(c === a);
  assert.ok(c.every((v) => v === 0), "zeroed by default");
  assert.ok(outputF32(BIG) !== a, "handed out once only");
  recycle(c);
  recycle(c); // a second release of the same array must not queue it twice
  assert.ok(outputF32(BIG) === a);
  assert.ok(outputF32(BIG) !== a);
});

Deno.test("output pool: only its own arrays, never one that was read, never small ones", () => {
  clearOutputPool();
  const foreign = new Float32Array(BIG);
  recycle(foreign);
  assert.ok(outputF32(BIG) !== foreign, "arrays from elsewhere are not taken");
  const read = outputF32(BIG);
  handOut(read);
  recycle(read);
  assert.ok(outputF32(BIG) !== read, "an array handed out is not taken back");
  const small = outputF32(100);
  recycle(small);
  assert.ok(outputF32(100) !== small);
});

Deno.test("output pool: data read from a disposed tensor stays intact while the op runs again", () => {
  clearOutputPool();
  const x = ops.tensor(new Generator(1).fillNormal(new Float32Array(2 * 64 * 64 * 64)), [
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
  assert.deepEqual(seen, copy);
  // And an unread output is reused: the next same-size op gets its memory.
  const z = ops.groupNorm(x, 8, null, null);
  const before = y2.dataSync();
  z.dispose();
  const again = ops.groupNorm(x2, 8, null, null);
  assert.deepEqual(before, y2.dataSync());
  for (const t of [x, x2, y2, again]) t.dispose();
});
