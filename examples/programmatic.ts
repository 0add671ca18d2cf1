/**
 * Using digit-ts from code: load a trained pipeline (stage 1 + stage 2 + VQGAN) through the
 * plugin registry and write a few images of one class.
 *
 *   deno task demo                                        # trains one into outputs/demo
 *   deno run -A examples/programmatic.ts                  # 8 images of class 3 (a cross)
 *   deno run -A examples/programmatic.ts outputs/demo 6   # another folder, class 6 (a star)
 *
 * The images land in outputs/programmatic/. Any folder holding trained parts works;
 * `registry.create("previews", "digit", { stage1, stage2, vqgan })` takes them one by one.
 */

import { Registry, silentLogger } from "../mod.ts";
import builtins from "../plugins/mod.ts";

const [dir = "outputs/demo", classId = "3"] = Deno.args;
const registry = new Registry();
for (const plugin of builtins) await registry.use(plugin);
const ctx = {
  registry,
  device: "cpu" as const,
  log: silentLogger,
  outputDir: "outputs",
  signal: new AbortController().signal,
};
const model = await registry.create("previews", "digit", { dir }, ctx);
const request = { classId: Number(classId), seed: 0, topK: 0, temperature: 1, steps: 8, count: 8 };
const images = await model.generate(
  request,
  (p) => console.log(`${p.stage ?? "generating"}: ${p.done}/${p.total}`),
);
await Deno.mkdir("outputs/programmatic", { recursive: true });
for (const [i, image] of images.entries()) {
  await Deno.writeFile(`outputs/programmatic/${i}-${image.name}.png`, image.png);
}
console.log(`${images.length} images of class ${classId} in outputs/programmatic/`);
