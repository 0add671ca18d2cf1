/**
 * The layering, read from the import graph that `deno info --json` reports for the package's
 * entry points (mod.ts, cli/main.ts, plugins/mod.ts, server/main.ts), type-only and dynamic
 * imports included:
 *   - core/ imports nothing from plugins/ or cli/;
 *   - no plugin imports cli/ or server/;
 *   - no cycle between plugin folders (plugins/<a>/ -> plugins/<b>/ -> ... -> plugins/<a>/).
 */

import { expect, it } from "./lib/test.ts";

const ROOT = new URL("../", import.meta.url);
const ENTRIES = ["mod.ts", "cli/main.ts", "plugins/mod.ts", "server/main.ts"];

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier?: string }; type?: { specifier?: string } }[];
}

/** Repository-relative import edges of every module the entry points reach. */
async function importEdges(): Promise<[string, string][]> {
  const dir = await Deno.makeTempDir({ prefix: "digit-graph-" });
  try {
    // One module importing every entry point: one `deno info` for the whole graph.
    const entry = `${dir}/entries.ts`;
    await Deno.writeTextFile(
      entry,
      ENTRIES.map((e) => `import "${new URL(e, ROOT).href}";\n`).join(""),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", "--config", new URL("deno.json", ROOT).pathname, entry],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: InfoModule[] };
    const local = (s: string | undefined) =>
      s?.startsWith(ROOT.href) ? decodeURIComponent(s.slice(ROOT.href.length)) : null;
    const edges: [string, string][] = [];
    for (const m of info.modules) {
      const from = local(m.specifier);
      if (from === null) continue;
      for (const d of m.dependencies ?? []) {
        for (const to of [local(d.code?.specifier), local(d.type?.specifier)]) {
          if (to !== null) edges.push([from, to]);
        }
      }
    }
    return edges;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A cycle of `graph` as its nodes (first = last), or null when there is none. */
function findCycle(graph: ReadonlyMap<string, ReadonlySet<string>>): string[] | null {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (node: string): string[] | null => {
    state.set(node, "open");
    stack.push(node);
    for (const next of [...(graph.get(node) ?? [])].sort()) {
      if (state.get(next) === "open") return [...stack.slice(stack.indexOf(next)), next];
      if (state.get(next) === undefined) {
        const found = visit(next);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(node, "done");
    return null;
  };
  for (const node of [...graph.keys()].sort()) {
    if (state.get(node) === undefined) {
      const found = visit(node);
      if (found) return found;
    }
  }
  return null;
}

it("findCycle finds a cycle and only a cycle", () => {
  const g = (edges: string[]) => {
    const m = new Map<string, Set<string>>();
    for (const e of edges) {
      const [a, b] = e.split(">");
      if (!m.has(a)) m.set(a, new Set());
      m.get(a)!.add(b);
    }
    return m;
  };
  expect(findCycle(g(["a>b", "b>c", "a>c"]))).toBe(null);
  expect(findCycle(g(["a>b", "b>c", "c>b"]))).toEqual(["b", "c", "b"]);
});

it("import graph: core below plugins and cli, plugins below cli and server, no plugin cycle", async () => {
  const edges = await importEdges();
  expect(edges.length).toBeGreaterThan(300);
  const under = (path: string, dir: string) => path.startsWith(`${dir}/`);

  const coreUp = edges.filter(([a, b]) =>
    under(a, "core") && (under(b, "plugins") || under(b, "cli"))
  );
  expect(coreUp.map((e) => e.join(" -> "))).toEqual([]);
  const pluginUp = edges.filter(([a, b]) =>
    under(a, "plugins") && (under(b, "cli") || under(b, "server"))
  );
  expect(pluginUp.map((e) => e.join(" -> "))).toEqual([]);

  // plugins/<name>/... is a plugin folder; plugins/mod.ts (the list of them) is not.
  const folder = (p: string) => /^plugins\/([^/]+)\//.exec(p)?.[1];
  const graph = new Map<string, Set<string>>();
  for (const [a, b] of edges) {
    const [fa, fb] = [folder(a), folder(b)];
    if (fa === undefined || fb === undefined || fa === fb) continue;
    if (!graph.has(fa)) graph.set(fa, new Set());
    graph.get(fa)!.add(fb);
  }
  expect(graph.size).toBeGreaterThan(5);
  expect(findCycle(graph)).toBe(null);
});
