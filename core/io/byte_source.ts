/**
 * Random-access reads from a file or an in-memory buffer.
 *
 * Checkpoints can be larger than we want to hold twice, so readers pull only the byte ranges they
 * need (zip central directory, one storage at a time) instead of reading the whole file first.
 * Reads are synchronous because the unpickler asks for storages from inside its opcode loop.
 */

import { formatError } from "./errors.ts";
import { regularFileSize } from "./regular_file.ts";

export interface ByteSource {
  /** Name used in error messages: the path, or the name given for in-memory bytes. */
  readonly name: string;
  readonly size: number;
  /** True when `read` returns fresh copies that the caller may keep and alias. */
  readonly fresh: boolean;
  /** Exactly `length` bytes starting at `offset`; `what` says what was being read, for errors. */
  read(offset: number, length: number, what: string): Uint8Array;
  close(): void;
}

class MemorySource implements ByteSource {
  readonly fresh = false;
  constructor(readonly name: string, private readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.length;
  }
  read(offset: number, length: number, what: string): Uint8Array {
    checkRange(this, offset, length, what);
    return this.bytes.subarray(offset, offset + length);
  }
  close(): void {}
}

class FileSource implements ByteSource {
  private file: Deno.FsFile | null;
  readonly size: number;
  readonly fresh = true;
  constructor(readonly name: string) {
    // open() on a FIFO blocks until a writer appears, and a device never ends: refuse both.
    regularFileSize(name, "file");
    this.file = Deno.openSync(name, { read: true });
    this.size = this.file.statSync().size;
  }
  read(offset: number, length: number, what: string): Uint8Array {
    checkRange(this, offset, length, what);
    if (this.file === null) throw formatError(this.name, `read of ${what} after close`);
    const out = new Uint8Array(length);
    this.file.seekSync(offset, Deno.SeekMode.Start);
    let got = 0;
    while (got < length) {
      const n = this.file.readSync(out.subarray(got));
      if (n === null || n === 0) {
        throw formatError(
          this.name,
          `file ended after ${offset + got} bytes while reading ${what}`,
        );
      }
      got += n;
    }
    return out;
  }
  close(): void {
    this.file?.close();
    this.file = null;
  }
}

function checkRange(src: ByteSource, offset: number, length: number, what: string): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw formatError(src.name, `invalid range offset=${offset} length=${length} for ${what}`);
  }
  if (offset + length > src.size) {
    throw formatError(
      src.name,
      `truncated: ${what} needs bytes [${offset}, ${offset + length}) but the file has ${src.size}`,
    );
  }
}

/** Opens a path (read lazily) or wraps bytes (named `name`, default "<bytes>"). */
export function openSource(input: string | Uint8Array, name?: string): ByteSource {
  if (typeof input === "string") {
    try {
      return new FileSource(input);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw formatError(input, "file not found");
      throw e;
    }
  }
  return new MemorySource(name ?? "<bytes>", input);
}

/** Runs `body` with an open source and always closes it. */
export async function withSource<T>(
  input: string | Uint8Array,
  name: string | undefined,
  body: (src: ByteSource) => T | Promise<T>,
): Promise<T> {
  const src = openSource(input, name);
  try {
    return await body(src);
  } finally {
    src.close();
  }
}
