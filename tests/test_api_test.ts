/**
 * tests/lib/test.ts, the vitest-compatible test API: its matchers pass and fail as vitest's
 * do, a message given to `expect` reaches the failure, and `it.skipIf` skips; and the error
 * helpers of tests/lib/errors.ts.
 */

import { describe, expect, it } from "./lib/test.ts";
import { rejected, thrown } from "./lib/errors.ts";

describe("expect", () => {
  it("passes and fails like vitest's matchers", () => {
    expect(1e-5).toBeLessThan(1e-4);
    expect(() => expect(2).toBeLessThan(1)).toThrow();
    expect({ a: [1, 2], b: new Float32Array([0.5]) }).toEqual({
      a: [1, 2],
      b: new Float32Array([0.5]),
    });
    expect(new Float32Array([1])).not.toEqual([1]);
    expect(0.1 + 0.2).toBeCloseTo(0.3, 10);
    expect("shape (2, 3)").toMatch(/\(2, 3\)/);
    expect(() => {
      throw new RangeError("bad shape");
    }).toThrow(/shape/);
  });

  it("puts the message of expect(actual, message) in the failure, .not included", () => {
    expect(() => expect(2, "maxDiff at i=7").toBeLessThan(1)).toThrow(/maxDiff at i=7/);
    expect(() => expect(1, "same value").not.toBe(1)).toThrow(/same value/);
    expect(2, "a passing matcher with a message").toBe(2);
  });

  it("awaits .rejects, with and without a message", async () => {
    await expect(Promise.reject(new Error("nope"))).rejects.toThrow("nope");
    await expect(Promise.reject(new Error("nope")), "ctx").rejects.toThrow(/nope/);
    await expect(expect(Promise.resolve(1)).rejects.toThrow()).rejects.toThrow();
  });

  it("expect.unreachable fails with its message", () => {
    expect(() => expect.unreachable("should have thrown")).toThrow(/should have thrown/);
  });
});

describe("it", () => {
  it.skipIf(true)("is skipped when skipIf's condition holds", () => {
    expect.unreachable("skipped test ran");
  });
  it.runIf(false)("is skipped when runIf's condition fails", () => {
    expect.unreachable("skipped test ran");
  });
  it.skipIf(false)("runs when skipIf's condition fails", () => {
    expect(true).toBe(true);
  });
});

describe("lib/errors.ts", () => {
  it("thrown and rejected give the error, and fail when nothing is thrown", async () => {
    const e = thrown(() => {
      throw new RangeError("bad shape");
    });
    expect(e).toBeInstanceOf(RangeError);
    expect(e.message).toBe("bad shape");
    expect(() => thrown(() => 1, "no throw here")).toThrow(/no throw here/);
    expect((await rejected(Promise.reject(new Error("nope")))).message).toBe("nope");
    expect((await rejected(() => Promise.reject(new Error("late")))).message).toBe("late");
    await expect(rejected(Promise.resolve(1))).rejects.toThrow(/expected the promise to reject/);
  });
});
