/**
 * Times the /web page in headless Chromium and saves its screenshot:
 *
 *   deno run -A web/tools/measure.ts [--count 16] [--variant ar] [--screenshot docs/web-page.png]
 *
 * Serves random-weight parts with the demo's shapes (web/tools/random_parts.ts; time does not
 * depend on the weights' values), opens the page, generates `count` images in the page on
 * WebGPU and then on the page's CPU path, and prints each run's timing line as the page
 * shows it, with the adapter's name. Each device is timed on a second run, once its weights
 * are downloaded and its shaders compiled; the first run's time is printed too.
 */

import { parseArgs } from "node:util";
import { CpuBackend } from "../../core/backends/cpu/mod.ts";
import { setDefaultBackend } from "../../core/device.ts";
import { DigitPreview } from "../../plugins/preview/model.ts";
import type { Stage2Variant } from "../../plugins/stage2/model.ts";
import { startServer } from "../../server/serve.ts";
import { Browser, findChromium } from "./chromium.ts";
import { randomParts } from "./random_parts.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    count: { type: "string", default: "16" },
    variant: { type: "string", default: "ar" },
    screenshot: { type: "string" },
    devices: { type: "string", default: "webgpu,cpu" },
  },
});
const count = Number(values.count);
const chromium = findChromium();
if (!chromium) throw new Error("chromium is not installed");

setDefaultBackend(new CpuBackend());
const model = new DigitPreview(randomParts("demo", values.variant as Stage2Variant));
const samples = await Deno.makeTempDir({ prefix: "digit-measure-" });
const server = startServer({ samplesDir: samples, model, port: 0 });
const browser = await Browser.launch(chromium);
try {
  await browser.navigate(`${server.url}web`);
  await browser.waitFor(`document.getElementById("app")?.dataset.state === "idle"`, 60_000);
  console.log(await browser.evaluate<string>(`document.getElementById("adapter").textContent`));
  const run = async (device: string) => {
    await browser.evaluate(`(() => {
      const f = document.getElementById("controls");
      f.elements.where.value = "browser";
      f.elements.device.value = ${JSON.stringify(device)};
      f.elements.count.value = "${count}";
      f.elements.seed.value = "0";
      f.elements.classId.value = "3";
      document.getElementById("go").click();
    })()`);
    await browser.waitFor(
      `["done", "error"].includes(document.getElementById("app").dataset.state)`,
      590_000,
      `${device} generation`,
    );
    const [state, line, status] = await browser.evaluate<string[]>(
      `["app", "timing", "status"].map((id) => id === "app" ? document.getElementById(id).dataset.state : document.getElementById(id).textContent)`,
    );
    if (state !== "done") throw new Error(`${device}: ${status}`);
    return line;
  };
  for (const device of values.devices.split(",")) {
    console.log(`${device} first run (downloads, builds, compiles): ${await run(device)}`);
    console.log(`${device}: ${await run(device)}`);
    if (device === "webgpu" && values.screenshot) {
      await Deno.writeFile(values.screenshot, await browser.screenshot(1000, 800));
      console.log(`screenshot: ${values.screenshot}`);
    }
  }
  const bytes = await browser.evaluate<number>(`document.getElementById("download").max`);
  console.log(`weights downloaded: ${(bytes / 1024).toFixed(0)} KiB`);
} finally {
  await browser.close();
  await server.shutdown();
  model.dispose();
  await Deno.remove(samples, { recursive: true });
}
