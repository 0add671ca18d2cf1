/**
 * Using digit-ts from code: load a trained pipeline (stage 1 + stage 2 + VQGAN) and write a
 * few images of one class.
 *
 *   deno task demo                                        # trains one into outputs/demo
 *   deno run -A examples/programmatic.ts                  # 8 images of class 3 (a cross)
 *   deno run -A examples/programmatic.ts outputs/demo 6   # another folder, class 6 (a star)
 *
 * The images land in outputs/programmatic/. `dir` finds the newest trained part of each role
 * under a folder; `stage1`, `stage2` and `vqgan` take run folders, checkpoints or the released
 * files (DiGIT's fairseq stage-1 .pt, DiGIT's stage-2 .pt, MAGE's VQGAN .ckpt) one by one.
 */

import { DigitPipeline, imagePng } from "../mod.ts";

const [dir = "outputs/demo", classId = "3"] = Deno.args;
const pipe = await DigitPipeline.load({ dir, device: "cpu" });
const { images } = await pipe.generate({
  classes: Number(classId),
  count: 8,
  seed: 0,
  // The demo's sampling settings (tasks/demo.yaml): its tiny stage 1 draws recognizable grids
  // at temperature 0.4, a third of them at 1.
  topK: 0,
  temperature: 0.4,
  guidance: 1.5,
  stage2: { topP: 0.6 },
  onProgress: (p) => console.log(`${p.stage}: ${p.done}/${p.total}`),
});
await Deno.mkdir("outputs/programmatic", { recursive: true });
for (let i = 0; i < images.count; i++) {
  await Deno.writeFile(`outputs/programmatic/${i}-digit-c${classId}.png`, imagePng(images, i));
}
pipe.dispose();
console.log(`${images.count} images of class ${classId} in outputs/programmatic/`);
