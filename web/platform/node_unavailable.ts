/**
 * What the web build resolves `node:path` and `node:zlib` to (web/import_map.json).
 *
 * They are reached only through core/io's file readers (npy names, zip checkpoints), which
 * core/nn/module.ts imports for `checkStateDict`; the page never calls them, so the bundler
 * drops these functions and the import statements with them. Should a future page call one,
 * it fails loudly here instead of the bundle failing to load for want of a Node module.
 * tests/browser_bundle_test.ts checks that neither the message nor any import survives.
 */

function unavailable(name: string): never {
  throw new Error(`${name} is not available in a browser (web/platform/node_unavailable.ts)`);
}

export function basename(_path: string, _suffix?: string): string {
  return unavailable("node:path basename");
}

export function crc32(_data: Uint8Array, _value?: number): number {
  return unavailable("node:zlib crc32");
}

export function inflateRawSync(_data: Uint8Array, _options?: unknown): Uint8Array {
  return unavailable("node:zlib inflateRawSync");
}
