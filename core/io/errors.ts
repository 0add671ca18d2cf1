/**
 * Errors raised while reading or writing tensor files. Every message starts with the file name
 * (or the name given for in-memory bytes) so a failing load says which file is at fault.
 */

export class IoFormatError extends Error {
  constructor(readonly file: string, readonly detail: string) {
    super(`${file}: ${detail}`);
    this.name = "IoFormatError";
  }
}

/** Shorthand used by the readers: `throw formatError(file, "what is wrong")`. */
export function formatError(file: string, detail: string): IoFormatError {
  return new IoFormatError(file, detail);
}
