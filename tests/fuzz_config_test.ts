/**
 * Bounded fuzzing of YAML task files: the shipped tasks/*.yaml are mutated (byte flips,
 * truncation, YAML syntax inserted, lines deleted, duplicated or re-indented) under a fixed
 * seed. Every mutant must either plan cleanly with the built-in plugins or fail with a
 * ConfigError whose every line names the mutant's file, within a per-case time limit.
 *
 *   DIGIT_FUZZ_CASES=5000 deno test -A tests/fuzz_config_test.ts    # a longer run
 *   DIGIT_FUZZ_SEED=7 ...                                           # another sequence
 */

import { expect, it } from "./lib/test.ts";
import { ConfigError } from "../core/config.ts";
import { Registry } from "../core/registry.ts";
import { loadTask } from "../core/tasks.ts";
import { loadBuiltinPlugins } from "../cli/main.ts";

const CASES = Number(Deno.env.get("DIGIT_FUZZ_CASES") ?? 300);
const SEED = Number(Deno.env.get("DIGIT_FUZZ_SEED") ?? 16);
/** Generous for 2 shared cores; a clean run takes a few ms per case. */
const CASE_LIMIT_MS = 2000;

/** mulberry32: small, seedable, the same sequence everywhere. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fragments that exercise the parser's and the checker's edges. */
const SNIPPETS = [
  "&a ",
  "*a",
  "<<: *a",
  "[",
  "]",
  "{",
  "}",
  ": ",
  "- ",
  "'",
  '"',
  "\t",
  "#",
  "!!binary ",
  "!!str ",
  "? ",
  "|\n",
  "%YAML 1.1\n---\n",
  "${steps.",
  "${steps.x.outputs.constructor}",
  "__proto__: ",
  "constructor: ",
  "extends: /dev/zero\n",
  "\u0000",
  "\ufeff",
  "1e999",
  "-0",
  "~",
];

function mutate(text: string, next: () => number): { text: string; how: string } {
  const pick = (n: number) => Math.floor(next() * n);
  const bytes = new TextEncoder().encode(text);
  const lines = text.split("\n");
  switch (pick(7)) {
    case 0: {
      const out = bytes.slice();
      const flips = 1 + pick(8);
      for (let i = 0; i < flips; i++) out[pick(out.length)] ^= 1 << pick(8);
      return { text: new TextDecoder().decode(out), how: `${flips} bit flips` };
    }
    case 1: {
      const at = pick(bytes.length);
      return { text: new TextDecoder().decode(bytes.subarray(0, at)), how: `truncated at ${at}` };
    }
    case 2: {
      const at = pick(text.length + 1);
      const snippet = SNIPPETS[pick(SNIPPETS.length)];
      return {
        text: text.slice(0, at) + snippet + text.slice(at),
        how: `inserted ${JSON.stringify(snippet)} at ${at}`,
      };
    }
    case 3: {
      const at = pick(lines.length);
      lines.splice(at, 1);
      return { text: lines.join("\n"), how: `deleted line ${at + 1}` };
    }
    case 4: {
      const at = pick(lines.length);
      const times = 1 + pick(4);
      lines.splice(at, 0, ...Array(times).fill(lines[at]));
      return { text: lines.join("\n"), how: `line ${at + 1} repeated ${times} times` };
    }
    case 5: {
      const at = pick(lines.length);
      const shift = pick(5) - 2;
      lines[at] = shift >= 0 ? " ".repeat(shift) + lines[at] : lines[at].slice(-shift);
      return { text: lines.join("\n"), how: `line ${at + 1} indented by ${shift}` };
    }
    default: {
      const a = pick(lines.length);
      const b = pick(lines.length);
      [lines[a], lines[b]] = [lines[b], lines[a]];
      return { text: lines.join("\n"), how: `lines ${a + 1} and ${b + 1} swapped` };
    }
  }
}

it(`fuzz: ${CASES} mutants of tasks/*.yaml plan cleanly or fail with a ConfigError naming the file`, async () => {
  const tasksDir = new URL("../tasks/", import.meta.url).pathname;
  const sources = [...Deno.readDirSync(tasksDir)]
    .filter((e) => e.isFile && e.name.endsWith(".yaml"))
    .map((e) => e.name)
    .sort()
    .map((name) => ({ name, text: Deno.readTextFileSync(`${tasksDir}${name}`) }));
  expect(sources.length, "no task files to mutate").toBeGreaterThan(0);

  const registry = new Registry();
  const builtins = await loadBuiltinPlugins(registry);
  expect(builtins.broken, builtins.note).toBeFalsy();

  const dir = await Deno.makeTempDir({ prefix: "digit-fuzz-config-" });
  const next = rng(SEED);
  const tally = { planned: 0, refused: 0 };
  let slowest = 0;
  try {
    for (let i = 0; i < CASES; i++) {
      const source = sources[Math.floor(next() * sources.length)];
      const { text, how } = mutate(source.text, next);
      // Mutants sit beside nothing, so a `plugins:` path or `extends:` cannot reach real code.
      const file = `${dir}/case-${i}.yaml`;
      Deno.writeTextFileSync(file, text);
      const label = `case ${i} (${source.name}, ${how}, seed ${SEED})`;
      const start = performance.now();
      try {
        await loadTask(file, { registry, outputDir: `${dir}/out` });
        tally.planned++;
      } catch (e) {
        if (!(e instanceof ConfigError)) {
          expect.unreachable(`${label}: ${(e as Error)?.name}: ${(e as Error)?.message}`);
        }
        for (const line of e.problems) {
          if (line.startsWith("note: ")) continue;
          expect(line.includes(file), `${label}: a problem without the file name: ${line}`)
            .toBeTruthy();
        }
        tally.refused++;
      }
      const ms = performance.now() - start;
      slowest = Math.max(slowest, ms);
      expect(ms, `${label} took ${ms.toFixed(0)} ms`).toBeLessThan(CASE_LIMIT_MS);
      Deno.removeSync(file);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // Both outcomes must occur, or the mutations are too weak (or too strong) to test anything.
  expect(tally.planned > 0 && tally.refused > 0, JSON.stringify(tally)).toBeTruthy();
  console.log(`fuzz_config: ${JSON.stringify(tally)}, slowest case ${slowest.toFixed(1)} ms`);
});
