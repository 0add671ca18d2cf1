/**
 * Deno-only environment set-up for adapter discovery, kept apart from mod.ts so that the
 * browser bundle can leave it out (web/import_map.json puts web/platform/runtime_dir.ts in
 * its place: in a page the browser finds the adapter, no Vulkan loader runs in it).
 */

/**
 * The Vulkan loader prints "error: XDG_RUNTIME_DIR is invalid or not set in the environment."
 * (twice) while Deno looks for adapters when that variable is missing, as on servers and in
 * containers. It is harmless but reads as a failure, so point it at a private empty folder
 * for this process first (removed at exit). Needs --allow-env and --allow-write; without
 * them the message stays.
 */
export function ensureRuntimeDir(): void {
  try {
    const dir = Deno.env.get("XDG_RUNTIME_DIR");
    if (dir && Deno.statSync(dir).isDirectory) return;
  } catch {
    // Unset is handled below; a path that is not a folder is as bad as unset.
  }
  try {
    const dir = Deno.makeTempDirSync({ prefix: "digit-xdg-" });
    Deno.chmodSync(dir, 0o700); // what the XDG spec asks of a runtime dir
    Deno.env.set("XDG_RUNTIME_DIR", dir);
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // Already gone, or a file the driver still holds: the OS temp cleaner gets it.
      }
    });
  } catch {
    // No permission: the loader's message is noise, not an error, so go on.
  }
}
