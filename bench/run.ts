/**
 * `deno task bench`: runs every bench/*_bench.ts in turn (each prints its own ratios
 * against a peer measured in the same run). `deno task bench matmul gpt` runs a subset.
 */

const filter = Deno.args;
const files = [...Deno.readDirSync(new URL(".", import.meta.url))]
  .map((e) => e.name)
  .filter((n) =>
    n.endsWith("_bench.ts") && (filter.length === 0 || filter.some((f) => n.includes(f)))
  )
  .sort();
let failed = 0;
for (const f of files) {
  console.log(`\n=== ${f}`);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(f, import.meta.url).pathname],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) {
    failed++;
    console.log(`=== ${f} failed (exit ${out.code})`);
  }
}
Deno.exit(failed ? 1 : 0);
