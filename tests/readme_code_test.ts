/**
 * Every ```ts block of the README and of the custom-encoder example's README type-checks
 * (issue 20). Each block is written to a temporary file beside its README, so that its
 * relative imports ("./mod.ts", "../../mod.ts") resolve as a reader's would, and all are
 * checked with one `deno check`. Expected: no type errors outside KNOWN_BAD, and every
 * KNOWN_BAD block still fails (a fixed block must leave the list, so nothing is skipped
 * silently).
 */
import { expect, it } from "./lib/test.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const READMES = ["README.md", "examples/custom-encoder/README.md"];

/** "<readme>#<n>" (n: the block's 1-based position among the file's ts blocks) -> why it fails. */
const KNOWN_BAD: Record<string, string> = {};

interface Block {
  id: string;
  readme: string;
  line: number;
  code: string;
}

/** The ```ts (or ```typescript) fenced blocks of a Markdown file. */
export function tsBlocks(readme: string, text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+)\s*(ts|typescript)\s*$/.exec(lines[i]);
    if (!open) continue;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && lines[j].trim() !== open[2]; j++) body.push(lines[j]);
    blocks.push({
      id: `${readme}#${blocks.length + 1}`,
      readme,
      line: i + 1,
      code: body.join("\n"),
    });
    i = j;
  }
  return blocks;
}

it("tsBlocks finds fenced ts blocks with their line numbers", () => {
  const md = "text\n```ts\nconst a = 1;\n```\n```sh\nls\n```\n```typescript\nlet b;\n```\n";
  expect(tsBlocks("X.md", md).map((b) => [b.id, b.line, b.code])).toEqual([
    ["X.md#1", 2, "const a = 1;"],
    ["X.md#2", 8, "let b;"],
  ]);
});

it("README code blocks type-check", async () => {
  const blocks = READMES.flatMap((r) => tsBlocks(r, Deno.readTextFileSync(`${ROOT}${r}`)));
  expect(blocks.length, `found only ${blocks.length} ts blocks`).toBeGreaterThanOrEqual(3);
  const tag = crypto.randomUUID().slice(0, 8);
  const files = new Map<string, Block>();
  for (const [i, b] of blocks.entries()) {
    const dir = b.readme.includes("/") ? b.readme.slice(0, b.readme.lastIndexOf("/") + 1) : "";
    // Inside the repository, beside the README: relative imports resolve as written.
    const path = `${ROOT}${dir}.readme_block_${tag}_${i + 1}.ts`;
    // `export {}` makes each block a module, so blocks do not clash over top-level names.
    Deno.writeTextFileSync(path, `${b.code}\nexport {};\n`);
    files.set(path, b);
  }
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--quiet", ...files.keys()],
      cwd: ROOT,
      env: { NO_COLOR: "1" }, // plain text to match file names in
      stdout: "piped",
      stderr: "piped",
    }).output();
    // deno check stops at the first failing module graph only for the report; every error
    // names its file, so map them back to blocks.
    const report = new TextDecoder().decode(out.stderr);
    const failing = new Map<string, string[]>();
    for (const [path, b] of files) {
      const name = path.slice(path.lastIndexOf("/") + 1);
      const errors = report.split(/\n(?=TS\d+|error:)/).filter((e) => e.includes(name));
      if (errors.length > 0) {
        failing.set(
          b.id,
          // Locations read "<readme> block at line N:<row in block>:<col>".
          errors.map((e) => e.replaceAll(`file://${path}`, `${b.readme} block at line ${b.line}`)),
        );
      }
    }
    if (!out.success) {
      expect(failing.size, `deno check failed without naming a block:\n${report}`).toBeGreaterThan(
        0,
      );
    }
    const unexpected = [...failing].filter(([id]) => !(id in KNOWN_BAD));
    expect(unexpected.map(([id, e]) => `${id}\n${e.join("\n")}`), "blocks that do not type-check")
      .toEqual([]);
    const fixed = Object.keys(KNOWN_BAD).filter((id) => !failing.has(id));
    expect(fixed, "KNOWN_BAD blocks that now pass: remove them from the list").toEqual([]);
  } finally {
    for (const path of files.keys()) Deno.removeSync(path);
  }
});
