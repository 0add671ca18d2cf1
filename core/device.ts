/**
 * Device selection. `cpu` is always there; `webgpu` needs an adapter; `auto` takes a
 * real GPU when one exists and the CPU otherwise, because a software adapter (llvmpipe,
 * lavapipe) is far slower than the CPU backend.
 */

import type { Backend } from "./backend.ts";
import { CpuBackend } from "./backends/cpu/mod.ts";

/** A device choice as configs and `useDevice` spell it. */
export type DeviceName = "cpu" | "webgpu" | "auto";

let cpu: Backend | null = null;
let current: Backend | null = null;

/** The process-wide CPU backend, created on first use. */
export function cpuBackend(): Backend {
  cpu ??= new CpuBackend();
  return cpu;
}

/** The backend new tensors go to unless told otherwise. */
export function defaultBackend(): Backend {
  return current ?? cpuBackend();
}

/** Make `b` the backend new tensors go to. */
export function setDefaultBackend(b: Backend): void {
  current = b;
}

let webgpu: Promise<Backend> | null = null;

/** Resolve a device name to a backend (and make it the default). */
export async function useDevice(name: DeviceName = "auto"): Promise<Backend> {
  let b: Backend;
  if (name === "cpu") b = cpuBackend();
  else if (name === "webgpu") {
    b = await webgpuBackend(true);
    warnSoftwareAdapter(b);
  } else if (name === "auto") {
    const { probeWebGPU } = await import("./backends/webgpu/mod.ts");
    const probe = await probeWebGPU();
    b = cpuBackend();
    if (probe.available && !probe.isFallback) {
      try {
        b = await webgpuBackend(false);
      } catch (e) {
        console.warn(
          `device auto: the GPU adapter '${probe.description}' failed (${
            (e as Error).message
          }); using the CPU`,
        );
      }
    }
  } else {
    throw new Error(`device: unknown device '${name}' (expected cpu, webgpu or auto)`);
  }
  setDefaultBackend(b);
  return b;
}

let warned = false;

/** Once per process: asking for WebGPU and getting a CPU rasteriser is a slow surprise. */
function warnSoftwareAdapter(b: Backend): void {
  if (warned || !(b as Backend & { isFallbackAdapter?: boolean }).isFallbackAdapter) return;
  warned = true;
  console.warn(
    `warning: --device webgpu runs on a software adapter (${
      b.description.replace(/^webgpu: /, "")
    }): ` +
      "a CPU emulation of a GPU, " +
      "far slower than the CPU backend; use --device cpu (or auto) unless you are testing WebGPU",
  );
}

async function webgpuBackend(allowFallbackAdapter: boolean): Promise<Backend> {
  if (!webgpu) {
    webgpu = import("./backends/webgpu/mod.ts").then((m) =>
      m.createWebGPUBackend({ allowFallbackAdapter })
    );
    webgpu.catch(() => (webgpu = null));
  }
  return await webgpu;
}
