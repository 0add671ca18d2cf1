// vitest in Node runs the Deno-free tests as they are: tests/lib/test.ts (the test API the tests
// import) is aliased to `vitest` itself. Run from the repository root:
//   npx --yes vitest@3.2.7 run --config tests/vitest/vitest.config.mjs
// The list of files is tests/vitest/files.txt (the tests whose code under test needs no Deno API).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const files = readFileSync(new URL("files.txt", import.meta.url), "utf8")
  .split("\n").map((line) => line.trim()).filter((line) => line && !line.startsWith("#"));

export default {
  root,
  resolve: {
    alias: [
      { find: /^(?:\.\.?\/)+(?:tests\/)?lib\/test\.ts$/, replacement: "vitest" },
      // Deno's full specifiers (core imports `npm:yaml@2.8.1`, so that mod.ts imports from
      // outside the repository) are plain package names to Node.
      { find: /^npm:(@?[^@]+)@[^/]+$/, replacement: "$1" },
    ],
  },
  test: {
    include: files,
    // deno test has no per-test time limit; some numeric checks take minutes on one core.
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: "forks",
    poolOptions: { forks: { singleFork: true } },
    watch: false,
  },
};
