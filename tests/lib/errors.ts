/**
 * The error a call throws or a promise rejects with, for tests that check more about it
 * than one `toThrow` matcher can (its class and several parts of its message).
 * Plain TypeScript with no Deno API, so vitest runs it too.
 */

// "../lib/test.ts", not "./test.ts": the path vitest's alias (tests/vitest/vitest.config.mjs) matches.
import { expect } from "../lib/test.ts";

/** The error `fn` throws; fails the test when `fn` returns. */
export function thrown(fn: () => unknown, message?: string): Error {
  try {
    fn();
  } catch (e) {
    expect(e, message).toBeInstanceOf(Error);
    return e as Error;
  }
  expect.unreachable(message ?? "expected the call to throw");
}

/** The error `promise` (or the promise `fn` returns) rejects with; fails the test when it resolves. */
export async function rejected(
  promise: Promise<unknown> | (() => Promise<unknown>),
  message?: string,
): Promise<Error> {
  try {
    await (typeof promise === "function" ? promise() : promise);
  } catch (e) {
    expect(e, message).toBeInstanceOf(Error);
    return e as Error;
  }
  expect.unreachable(message ?? "expected the promise to reject");
}
