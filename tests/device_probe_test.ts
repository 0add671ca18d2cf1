/**
 * The WebGPU probe (issue 20), in a child process started without XDG_RUNTIME_DIR, as on a
 * server: no Vulkan-loader "XDG_RUNTIME_DIR is invalid" lines; `auto` takes the CPU when the
 * only adapter is a software one; `webgpu` on a software adapter warns once that it is a
 * CPU emulation and that `--device cpu` is faster. Without any adapter (no Mesa Vulkan
 * driver), the probe says so and `auto` still takes the CPU.
 */
import { expect, it } from "./lib/test.ts";

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

it("device probe: no XDG noise, auto avoids software adapters, webgpu warns once", async () => {
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
    expect(out.success, stderr).toBeTruthy();
    const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
    expect(stderr).not.toMatch(/XDG_RUNTIME_DIR/);
    if (!r.probe.available) {
      expect(r.auto).toBe("cpu");
      return;
    }
    // The probe pointed the loader at a private folder for this process.
    expect(r.xdg, "XDG_RUNTIME_DIR set for the process").toBeTruthy();
    if (r.probe.isFallback) {
      expect(r.auto).toBe("cpu");
      expect(r.gpu).toBe("webgpu");
      expect(r.warnings).toBe(1);
      expect(stderr).toMatch(/software adapter .*CPU emulation.*--device cpu/s);
      expect(stderr.match(/software adapter/g)?.length).toBe(1);
    } else {
      // A real GPU: auto takes it, and nothing warns.
      expect(r.auto).toBe("webgpu");
      expect(r.warnings).toBe(0);
    }
    // The private folder is removed when the process ends.
    expect(await Deno.stat(r.xdg).then(() => true, () => false)).toBe(false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
