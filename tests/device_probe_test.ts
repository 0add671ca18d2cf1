/**
 * The WebGPU probe (issue 20), in a child process started without XDG_RUNTIME_DIR, as on a
 * server: no Vulkan-loader "XDG_RUNTIME_DIR is invalid" lines; `auto` takes the CPU when the
 * only adapter is a software one; `webgpu` on a software adapter warns once that it is a
 * CPU emulation and that `--device cpu` is faster. Without any adapter (no Mesa Vulkan
 * driver), the probe says so and `auto` still takes the CPU.
 */
import assert from "node:assert/strict";

const probeScript = `
import { probeWebGPU } from "${new URL("../core/backends/webgpu/mod.ts", import.meta.url)}";
import { useDevice } from "${new URL("../core/device.ts", import.meta.url)}";
const probe = await probeWebGPU();
const auto = await useDevice("auto");
const result = { probe, auto: auto.name, xdg: Deno.env.get("XDG_RUNTIME_DIR") ?? null, gpu: null, warnings: 0 };
if (probe.available) {
  const warn = console.warn;
  console.warn = (...a) => { result.warnings++; warn(...a); };
  result.gpu = (await useDevice("webgpu")).name;
  await useDevice("webgpu"); // a second call must not warn again
}
console.log(JSON.stringify(result));
`;

Deno.test("device probe: no XDG noise, auto avoids software adapters, webgpu warns once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/probe.ts`;
    await Deno.writeTextFile(script, probeScript);
    const env = Deno.env.toObject();
    delete env.XDG_RUNTIME_DIR;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-check", script],
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, stderr);
    const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
    assert.doesNotMatch(stderr, /XDG_RUNTIME_DIR/);
    if (!r.probe.available) {
      assert.equal(r.auto, "cpu");
      return;
    }
    // The probe pointed the loader at a private folder for this process.
    assert.ok(r.xdg, "XDG_RUNTIME_DIR set for the process");
    if (r.probe.isFallback) {
      assert.equal(r.auto, "cpu");
      assert.equal(r.gpu, "webgpu");
      assert.equal(r.warnings, 1);
      assert.match(stderr, /software adapter .*CPU emulation.*--device cpu/s);
      assert.equal(stderr.match(/software adapter/g)?.length, 1);
    } else {
      // A real GPU: auto takes it, and nothing warns.
      assert.equal(r.auto, "webgpu");
      assert.equal(r.warnings, 0);
    }
    // The private folder is removed when the process ends.
    assert.equal(await Deno.stat(r.xdg).then(() => true, () => false), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
