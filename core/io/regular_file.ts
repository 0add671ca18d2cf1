/**
 * The check every reader makes before it opens a path: the path must name a regular file
 * (a FIFO blocks `open` forever, a device such as /dev/zero never ends), and, where the
 * caller gives a cap, one no larger than it. Stat follows symlinks, as open does.
 */

import { formatError } from "./errors.ts";

/** Size in bytes of the regular file at `path`; throws a named error otherwise. */
export function regularFileSize(path: string, what: string, maxBytes = Infinity): number {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw formatError(path, `${what} not found`);
    throw e;
  }
  if (!info.isFile) {
    const kind = info.isDirectory
      ? "a directory"
      : info.isSymlink
      ? "a symlink"
      : "not a regular file (FIFO, socket or device?)";
    throw formatError(path, `${what} must be a regular file; this is ${kind}`);
  }
  if (info.size > maxBytes) {
    throw formatError(path, `${what} is ${info.size} bytes, over the limit of ${maxBytes} bytes`);
  }
  return info.size;
}

/** Read a whole regular file, refusing non-files and files over `maxBytes`. */
export function readRegularFileSync(path: string, what: string, maxBytes = Infinity): Uint8Array {
  regularFileSize(path, what, maxBytes);
  return Deno.readFileSync(path);
}
