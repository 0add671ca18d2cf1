/**
 * `deno task build:web`: one ES module, web/dist/digit.js, from web/entry.ts, through
 * `deno bundle` (esbuild inside Deno 2.9; nothing to install). web/import_map.json puts
 * the browser side of the FFI module in place (see web/platform/openblas.ts).
 *
 *   deno task build:web            build and print the size
 *   deno task build:web --check    also fail if the bundle mentions `Deno.` or imports anything
 */

const WEB = new URL("./", import.meta.url);
export const BUNDLE_PATH = decodeURIComponent(new URL("dist/digit.js", WEB).pathname);

export interface BuiltBundle {
  path: string;
  bytes: number;
}

/** Bundles (minified) to `out`; throws with deno's own output when bundling fails. */
export async function buildWebBundle(out = BUNDLE_PATH): Promise<BuiltBundle> {
  const path = (p: string) => decodeURIComponent(new URL(p, WEB).pathname);
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      "--minify",
      "--import-map",
      path("import_map.json"),
      "--output",
      out,
      path("entry.ts"),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    const text = new TextDecoder().decode(stderr) + new TextDecoder().decode(stdout);
    throw new Error(`deno bundle failed (exit ${code}):\n${text}`);
  }
  return { path: out, bytes: (await Deno.stat(out)).size };
}

/** Every `Deno.` mention in the bundle text, with a little context. */
export function denoMentions(text: string): string[] {
  return [...text.matchAll(/.{0,40}\bDeno\s*\.\s*[A-Za-z_$]*.{0,20}/g)].map((m) => m[0]);
}

/** Module specifiers the bundle still imports (it must be self-contained: none). */
export function bundleImports(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/\bimport\s*(?:[\w$*{}\s,]*?\bfrom\s*)?["']([^"']+)["']/g)) {
    found.push(m[1]);
  }
  for (const m of text.matchAll(/\bimport\s*\(\s*["']([^"']+)["']\s*\)/g)) found.push(m[1]);
  return found;
}

if (import.meta.main) {
  const built = await buildWebBundle();
  const gz = await new Response(
    new Blob([await Deno.readFile(built.path)]).stream().pipeThrough(new CompressionStream("gzip")),
  ).arrayBuffer();
  console.log(
    `${built.path}: ${(built.bytes / 1024).toFixed(1)} KiB (${
      (gz.byteLength / 1024).toFixed(1)
    } KiB gzip)`,
  );
  if (Deno.args.includes("--check")) {
    const text = await Deno.readTextFile(built.path);
    const found = denoMentions(text);
    if (found.length > 0) {
      console.error(`the bundle mentions Deno ${found.length} time(s):\n${found.join("\n")}`);
      Deno.exit(1);
    }
    const imports = bundleImports(text);
    if (imports.length > 0) {
      console.error(`the bundle still imports: ${imports.join(", ")}`);
      Deno.exit(1);
    }
  }
}
