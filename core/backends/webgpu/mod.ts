/**
 * WebGPU backend entry points.
 *
 *   const gpu = await createWebGPUBackend({ allowFallbackAdapter: true });
 *
 * The device is requested with the adapter's own limits (storage buffers per stage,
 * binding and buffer sizes, workgroup memory and sizes) instead of WebGPU's low
 * defaults, and every kernel checks its shapes against them. On a machine without a GPU,
 * Deno offers a software adapter (llvmpipe/lavapipe, `isFallbackAdapter`); it works but is
 * slower than the CPU backend, so it is refused unless asked for.
 */

import { type DeviceLimits, GpuContext, LIMIT_NAMES } from "./context.ts";
import { ensureRuntimeDir } from "./runtime_dir.ts";
import { WebGPUBackend } from "./webgpu_backend.ts";

export { WebGPUBackend } from "./webgpu_backend.ts";
export { ensureRuntimeDir } from "./runtime_dir.ts";
export { type DeviceLimits, LimitError } from "./context.ts";
export type { MatmulKernel } from "./matmul.ts";

export interface WebGPUOptions {
  /** Accept a software adapter (default false). */
  allowFallbackAdapter?: boolean;
  /**
   * Lower some limits the backend checks against (never raises them). For tests of the
   * over-limit paths on small shapes.
   */
  limits?: Partial<DeviceLimits>;
}

export interface WebGPUProbe {
  available: boolean;
  isFallback: boolean;
  description: string;
}

/** CPU rasterisers that Vulkan/D3D offer as adapters, named when the flag is missing. */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|softpipe|microsoft basic render/i;

/**
 * Deno 2.9 reports the flag on `adapter.info`; the spec once had it on the adapter. Some
 * drivers leave it false for a software rasteriser, so the name counts too.
 */
function isFallback(adapter: GPUAdapter): boolean {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const legacy = adapter as GPUAdapter & { isFallbackAdapter?: boolean };
  if (info.isFallbackAdapter ?? legacy.isFallbackAdapter) return true;
  return SOFTWARE_ADAPTER.test(`${info.description} ${info.device} ${info.architecture}`);
}

function adapterDescription(adapter: GPUAdapter): string {
  const info = adapter.info;
  const name = info.description || info.device || "unknown adapter";
  const extra = [info.vendor && `vendor ${info.vendor}`, info.architecture].filter(Boolean).join(
    ", ",
  );
  return `${name}${extra ? ` (${extra})` : ""}${isFallback(adapter) ? " [fallback]" : ""}`;
}

async function requestAdapter(): Promise<GPUAdapter | null> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) return null;
  ensureRuntimeDir();
  try {
    return await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch {
    return null;
  }
}

/** Whether WebGPU is usable here, and on what; never throws. */
export async function probeWebGPU(): Promise<WebGPUProbe> {
  const adapter = await requestAdapter();
  if (!adapter) return { available: false, isFallback: false, description: "no WebGPU adapter" };
  return {
    available: true,
    isFallback: isFallback(adapter),
    description: adapterDescription(adapter),
  };
}

export async function createWebGPUBackend(opts: WebGPUOptions = {}): Promise<WebGPUBackend> {
  const adapter = await requestAdapter();
  if (!adapter) {
    throw new Error(
      "webgpu: no adapter (navigator.gpu is missing or requestAdapter() returned null); " +
        "on Linux without a GPU install mesa-vulkan-drivers and libvulkan1 for a software adapter",
    );
  }
  const description = adapterDescription(adapter);
  if (isFallback(adapter) && !opts.allowFallbackAdapter) {
    throw new Error(
      `webgpu: only a software adapter is available (${description}); ` +
        "pass { allowFallbackAdapter: true } to use it anyway (it is slower than the cpu backend)",
    );
  }
  const al = adapter.limits as unknown as Record<string, number>;
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) if (typeof al[name] === "number") requiredLimits[name] = al[name];
  const device = await adapter.requestDevice({ requiredLimits, label: "digit-ts" });
  const dl = device.limits as unknown as Record<string, number>;
  const limits = {} as DeviceLimits;
  for (const name of [...LIMIT_NAMES, "minUniformBufferOffsetAlignment" as const]) {
    const lowered = opts.limits?.[name];
    limits[name] = lowered !== undefined ? Math.min(lowered, dl[name]) : dl[name];
  }
  const backend = new WebGPUBackend(`webgpu: ${description}`, isFallback(adapter));
  backend.ctx = new GpuContext(device, limits, backend);
  return backend;
}
