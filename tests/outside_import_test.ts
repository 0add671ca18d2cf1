/**
 * The package imports from outside this repository. Deno applies deno.json's import map only
 * to the project that declares it, so a script elsewhere that imports mod.ts sees none of its
 * bare specifiers ("yaml" failed with `Import "yaml" not a dependency`). What mod.ts reaches
 * therefore imports npm packages by full, versioned specifier; this test pins those versions to
 * deno.json's and runs such a script from a temporary folder with no deno.json.
 */

import { expect, it } from "./lib/test.ts";

const ROOT = new URL("../", import.meta.url);

/** `"npm:name@version"` specifiers in the .ts files under `dir`, recursively. */
async function npmSpecifiers(dir: URL, found = new Map<string, string>()) {
  for await (const e of Deno.readDir(dir)) {
    const url = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
    if (e.isDirectory) await npmSpecifiers(url, found);
    else if (e.name.endsWith(".ts")) {
      const text = await Deno.readTextFile(url);
      for (const m of text.matchAll(/["']npm:((?:@[\w.-]+\/)?[\w.-]+)@([^"'/]+)[^"']*["']/g)) {
        found.set(`${url.pathname.slice(ROOT.pathname.length)}: ${m[1]}`, m[2]);
      }
    }
  }
  return found;
}

it("full npm: specifiers in core/ and plugins/ name deno.json's versions", async () => {
  const map = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).imports as Record<
    string,
    string
  >;
  const found = new Map([
    ...await npmSpecifiers(new URL("core/", ROOT)),
    ...await npmSpecifiers(new URL("plugins/", ROOT)),
  ]);
  expect(found.size).toBeGreaterThan(0);
  for (const [where, version] of found) {
    const name = where.split(": ")[1];
    expect(map[name], `${where}: deno.json imports has no '${name}'`).toBe(
      `npm:${name}@${version}`,
    );
  }
});

it("a script in a folder without deno.json imports mod.ts and runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "digit-outside-" });
  try {
    await Deno.writeTextFile(
      `${dir}/use.ts`,
      `import { parseYaml, Rng } from ${JSON.stringify(new URL("mod.ts", ROOT).href)};\n` +
        `console.log(JSON.stringify(parseYaml("a: [1, 2]")), new Rng(3).uniform() < 1);\n`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", "use.ts"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    expect(out.code, err).toBe(0);
    expect(new TextDecoder().decode(out.stdout).trim()).toBe('{"a":[1,2]} true');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
