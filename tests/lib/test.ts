/**
 * The test API the tests import: `describe`, `it` and `expect` with vitest's names and
 * matchers, so a test file runs under `deno test` as it is and under vitest in Node when
 * this module is aliased to `vitest` (tests/vitest/vitest.config.mjs).
 *
 * Under Deno, `describe`/`it` are node:test's (deno test reports each top-level `it` or
 * `describe` as one test and the `it`s inside a `describe` as its steps) and `expect` is
 * Jest's (npm:expect), which vitest's matchers follow. Two vitest additions are provided
 * here: `expect(actual, message)` (the message prefixes a failure, for diagnostic values)
 * and `expect.unreachable(message)`; and `it.skipIf(cond)` / `it.runIf(cond)`.
 *
 * Only vitest's own API belongs here: anything else would break the alias.
 */

import * as nodeTest from "node:test";
import { expect as jestExpect } from "expect";

type TestFn = () => void | Promise<void>;
type SuiteFn = () => void;

interface TestApi {
  (name: string, fn: TestFn): void;
  skip(name: string, fn: TestFn): void;
  only(name: string, fn: TestFn): void;
  todo(name: string): void;
  /** Skips the test when `condition` is truthy (vitest's `it.skipIf`). */
  skipIf(condition: unknown): (name: string, fn: TestFn) => void;
  /** Runs the test only when `condition` is truthy (vitest's `it.runIf`). */
  runIf(condition: unknown): (name: string, fn: TestFn) => void;
}

interface SuiteApi {
  (name: string, fn: SuiteFn): void;
  skip(name: string, fn: SuiteFn): void;
  only(name: string, fn: SuiteFn): void;
  skipIf(condition: unknown): (name: string, fn: SuiteFn) => void;
  runIf(condition: unknown): (name: string, fn: SuiteFn) => void;
}

function makeTest(): TestApi {
  const run = (name: string, fn: TestFn) => void nodeTest.it(name, async () => await fn());
  const skip = (name: string, _fn: TestFn) => void nodeTest.it(name, { skip: true }, () => {});
  return Object.assign(run, {
    skip,
    only: (name: string, fn: TestFn) =>
      void nodeTest.it(name, { only: true }, async () => await fn()),
    todo: (name: string) => void nodeTest.it(name, { todo: true }, () => {}),
    skipIf: (condition: unknown) => condition ? skip : run,
    runIf: (condition: unknown) => condition ? run : skip,
  });
}

function makeSuite(): SuiteApi {
  const run = (name: string, fn: SuiteFn) => void nodeTest.describe(name, fn);
  const skip = (name: string, fn: SuiteFn) => void nodeTest.describe(name, { skip: true }, fn);
  return Object.assign(run, {
    skip,
    only: (name: string, fn: SuiteFn) => void nodeTest.describe(name, { only: true }, fn),
    skipIf: (condition: unknown) => condition ? skip : run,
    runIf: (condition: unknown) => condition ? run : skip,
  });
}

export const it: TestApi = makeTest();
export const test: TestApi = it;
export const describe: SuiteApi = makeSuite();

/** Runs `fn` once before the tests of the enclosing `describe` (node:test's `before`). */
export function beforeAll(fn: () => void | Promise<void>): void {
  nodeTest.before(async () => await fn());
}
/** Runs `fn` once after the tests of the enclosing `describe` (node:test's `after`). */
export function afterAll(fn: () => void | Promise<void>): void {
  nodeTest.after(async () => await fn());
}

/** Prefixes the message (and stack) of a failed matcher with `message`. */
function prefixed(error: unknown, message: string): unknown {
  if (error instanceof Error) {
    const old = error.message;
    error.message = `${message}: ${old}`;
    if (error.stack) error.stack = error.stack.replace(old, error.message);
  }
  return error;
}

/** The matchers of `target` (and of its `.not`, `.rejects`, `.resolves`), failing with `message`. */
function withMessage<T extends object>(target: T, message: string): T {
  return new Proxy(target, {
    get(object, key) {
      const value = Reflect.get(object, key);
      if (typeof value === "function") {
        return (...args: unknown[]) => {
          try {
            const result = value.apply(object, args);
            if (result instanceof Promise) {
              return result.catch((e: unknown) => {
                throw prefixed(e, message);
              });
            }
            return result;
          } catch (e) {
            throw prefixed(e, message);
          }
        };
      }
      if (value !== null && typeof value === "object") return withMessage(value, message);
      return value;
    },
  });
}

type JestExpect = typeof jestExpect;
type Matchers<T> = ReturnType<typeof jestExpect<T>>;

/** vitest's `expect`: Jest's matchers, an optional failure message, `expect.unreachable`. */
export type Expect = Omit<JestExpect, never> & {
  <T>(actual: T, message?: string): Matchers<T>;
  /** Fails the test: the line should not be reached. */
  unreachable(message?: string): never;
};

export const expect: Expect = Object.assign(
  <T>(actual: T, message?: string): Matchers<T> =>
    message === undefined ? jestExpect(actual) : withMessage(jestExpect(actual), message),
  jestExpect,
  {
    unreachable(message?: string): never {
      throw new Error(message ?? "expected not to be reached");
    },
  },
) as unknown as Expect;
