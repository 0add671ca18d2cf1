/**
 * Every `deno task ...` command in the README's ```sh blocks (and the examples' READMEs) is
 * one the project has: the task exists in deno.json, and the CLI accepts the command line,
 * run in-process with `--help` (or `--dry-run` for `run` and `demo`, which also checks the task
 * file). Usage notation is read the way a person reads it: `[...]` is included, `a | b` and
 * `DIR|STATS` take each / the first alternative, and `...` is dropped.
 */

import { expect, it } from "./lib/test.ts";
import { main } from "../cli/main.ts";

const ROOT = new URL("../", import.meta.url);
const READMES = [
  "README.md",
  ...[...Deno.readDirSync(new URL("examples/", ROOT))]
    .filter((e) => e.isDirectory)
    .map((e) => `examples/${e.name}/README.md`)
    .filter((p) => {
      try {
        return Deno.statSync(new URL(p, ROOT)).isFile;
      } catch {
        return false;
      }
    }),
].sort();

/** The `deno task` command lines of a Markdown file's sh blocks, comments removed. */
function commandsOf(markdown: string): string[] {
  const lines: string[] = [];
  let inSh = false;
  for (const line of markdown.split("\n")) {
    if (/^```/.test(line)) {
      inSh = !inSh && /^```(sh|bash)\s*$/.test(line);
      continue;
    }
    if (!inSh) continue;
    const code = line.replace(/(^|\s)#.*$/, "").trim();
    const m = /\bdeno(?:@[\d.]+)? task (.+)$/.exec(code);
    if (m) lines.push(m[1].trim());
  }
  return lines;
}

/** One usage line as the argument lists it stands for. */
function expand(usage: string): string[][] {
  const [first, ...alternatives] = usage.split(/\s+\|\s+/).map((part) =>
    part.replace(/[[\]]/g, " ").split(/\s+/).filter((t) => t !== "" && t !== "...")
      .map((t) => t.split("|")[0])
  );
  return [
    first,
    ...alternatives.map((alt) => [...first.slice(0, first.length - alt.length), ...alt]),
  ];
}

it("README commands: usage lines expand as a reader reads them", () => {
  expect(
    commandsOf("```sh\ndeno task a --x 1  # note\n# deno task b\n```\n```ts\ndeno task c\n```"),
  )
    .toEqual(["a --x 1"]);
  expect(expand("train stage2 | vqgan")).toEqual([["train", "stage2"], ["train", "vqgan"]]);
  expect(expand("eval --input2 DIR|STATS [--fid --isc] ...")).toEqual([
    ["eval", "--input2", "DIR", "--fid", "--isc"],
  ]);
});

it("README commands: every `deno task` line is a task of deno.json the CLI accepts", async () => {
  const tasks: Record<string, string> = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", ROOT)),
  ).tasks;
  const outputs = await Deno.makeTempDir({ prefix: "digit-readme-" });
  let checked = 0;
  try {
    for (const readme of READMES) {
      for (const usage of commandsOf(await Deno.readTextFile(new URL(readme, ROOT)))) {
        for (const [task, ...args] of expand(usage)) {
          const where = `${readme}: deno task ${usage}`;
          expect(tasks[task], `${where}: no task '${task}' in deno.json`).toBeDefined();
          const cli = /^deno run -A cli\/main\.ts (\S+)$/.exec(tasks[task]);
          if (!cli) continue; // test, bench, build:web: deno.json has them, and they are not the CLI
          const dry = cli[1] === "run" || cli[1] === "demo";
          const argv = [
            cli[1],
            ...args,
            ...(dry ? ["--dry-run", "--outputs", outputs] : ["--help"]),
          ];
          let out = "";
          const code = await main(argv, {
            stdout: (t) => (out += t),
            stderr: (t) => (out += t),
            tty: false,
          });
          checked++;
          // A task file for data that is not here (your own folder) is recognised and checked;
          // only its dataset paths are missing.
          const onlyData = code === 2 &&
            out.split("\n").filter((l) => l.startsWith("error: ")).every((l) =>
              /\.params\.(\w+\.)*(root|dir|images|labels|tsv): '.*' does not exist/.test(l)
            );
          if (!onlyData) expect(code, `${where}\n(${argv.join(" ")})\n${out}`).toBe(0);
        }
      }
    }
  } finally {
    await Deno.remove(outputs, { recursive: true });
  }
  expect(checked).toBeGreaterThan(10);
});
