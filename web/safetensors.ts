/**
 * safetensors from bytes, for the browser: the header is parsed and validated by
 * `core/io/safetensors.ts` itself (`readSafetensorsHeader`), over an in-memory ByteSource
 * defined here.
 *
 * Why not `readSafetensors(bytes)`: it opens its input through `openSource`, whose file
 * branch (Deno.openSync, Deno.errors) would then be bundled even though bytes never take
 * it. Going through the exported header reader and the `ByteSource` interface lets the
 * bundler drop the file code entirely.
 */

import type { ByteSource } from "../core/io/byte_source.ts";
import { formatError } from "../core/io/errors.ts";
import { hostTensorFromBytes, type SourceDtype, type StateDict } from "../core/io/host_tensor.ts";
import { readSafetensorsHeader } from "../core/io/safetensors.ts";

class BytesSource implements ByteSource {
  /** `read` returns views into the caller's buffer, so tensors must copy (mayAlias false). */
  readonly fresh = false;
  constructor(readonly name: string, private readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.length;
  }
  read(offset: number, length: number, what: string): Uint8Array {
    if (
      !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 ||
      offset + length > this.bytes.length
    ) {
      throw formatError(
        this.name,
        `truncated: ${what} needs bytes [${offset}, ${
          offset + length
        }) but there are ${this.bytes.length}`,
      );
    }
    return this.bytes.subarray(offset, offset + length);
  }
  close(): void {}
}

export interface SafetensorsBytes {
  tensors: StateDict;
  metadata: Record<string, string>;
}

/** Every tensor of an in-memory .safetensors file; `name` labels errors. */
export function readSafetensorsBytes(bytes: Uint8Array, name = "<bytes>"): SafetensorsBytes {
  const src = new BytesSource(name, bytes);
  const { entries, metadata, dataStart } = readSafetensorsHeader(src);
  const tensors: StateDict = new Map();
  for (const [key, e] of entries) {
    const raw = src.read(dataStart + e.begin, e.end - e.begin, `tensor '${key}'`);
    tensors.set(
      key,
      hostTensorFromBytes(raw, e.dtype as SourceDtype, e.shape, {
        file: name,
        key,
        mayAlias: false,
      }),
    );
  }
  return { tensors, metadata };
}
