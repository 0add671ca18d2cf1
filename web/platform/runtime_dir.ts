/**
 * The browser's side of core/backends/webgpu/runtime_dir.ts (swapped in by
 * web/import_map.json). That module points the Vulkan loader of Deno's wgpu at an
 * XDG_RUNTIME_DIR; in a page the browser owns adapter discovery and there is no process
 * environment to set, so there is nothing to do.
 */
export function ensureRuntimeDir(): void {}
