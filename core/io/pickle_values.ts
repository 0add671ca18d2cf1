/**
 * The values the unpickler produces for Python objects it does not turn into plain JS data.
 * None of them can run code: a global is only a (module, name) pair.
 */

import { formatError } from "./errors.ts";

/** A reference to a Python global (class or function), never resolved to code. */
export class PickleGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
  toString(): string {
    return `<global ${this.qualifiedName}>`;
  }
}

/** An object of a class we do not rebuild: what was called, with which arguments, and its state. */
export class PickleObject {
  /** Set by BUILD (usually the instance __dict__ as a Map, or a (dict, slots) pair). */
  state: unknown = undefined;
  /** Items added by SETITEM(S) when the class is a dict subclass. */
  dictItems: Map<unknown, unknown> | null = null;
  /** Items added by APPEND(S) when the class is a list subclass. */
  listItems: unknown[] | null = null;
  constructor(
    readonly cls: unknown,
    readonly args: unknown[],
    readonly kwargs: Map<unknown, unknown> | null = null,
  ) {}
  get className(): string {
    return this.cls instanceof PickleGlobal ? this.cls.qualifiedName : String(this.cls);
  }
}

/** Python's slice(start, stop, step). */
export class PySlice {
  constructor(readonly start: unknown, readonly stop: unknown, readonly step: unknown) {}
}

/** Rebuilds a value from REDUCE/NEWOBJ arguments. `file` is for error messages. */
export type PickleReducer = (args: unknown[], file: string) => unknown;

/** Python ints become numbers when exact, bigints otherwise. */
export function narrow(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(v)
    : v;
}

/** A short description of a value's Python type, for error messages. */
export function describe(v: unknown): string {
  if (v === null) return "None";
  if (v instanceof PickleGlobal) return v.toString();
  if (v instanceof PickleObject) return `<object ${v.className}>`;
  if (v instanceof Map) return "dict";
  if (Array.isArray(v)) return "tuple/list";
  return typeof v;
}

/**
 * A short printable form of any unpickled value for error messages: at most `max` characters,
 * so a class's source code or a huge list cannot flood the message, and bounded in depth, so a
 * deeply nested value cannot overflow the stack.
 */
export function shortRepr(v: unknown, max = 200): string {
  const walk = (x: unknown, depth: number): string => {
    if (typeof x === "string") return JSON.stringify(x.length > max ? x.slice(0, max) : x);
    if (typeof x === "bigint") return `${x}`;
    if (typeof x !== "object" || x === null) return x === null ? "None" : String(x);
    if (x instanceof Uint8Array) return `bytes[${x.length}]`;
    if (Array.isArray(x)) {
      if (depth > 3) return "(...)";
      const head = x.slice(0, 6).map((y) => walk(y, depth + 1));
      return `(${head.join(", ")}${x.length > 6 ? `, ... ${x.length} items` : ""})`;
    }
    return describe(x);
  };
  const out = walk(v, 0);
  return out.length > max ? `${out.slice(0, max)}... (${out.length} chars)` : out;
}

/** bytes(...), bytearray(...) and `_codecs.encode(str, encoding)` arguments → bytes. */
export function toBytes(args: unknown[], file: string, what: string): Uint8Array {
  const [value, encoding] = args;
  if (value === undefined || value === null) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value.slice();
  if (Array.isArray(value)) return Uint8Array.from(value as number[]);
  if (typeof value === "string") {
    const enc = String(encoding ?? "utf-8").toLowerCase().replace("_", "-");
    if (enc === "latin1" || enc === "latin-1" || enc === "iso-8859-1") {
      const out = new Uint8Array(value.length);
      for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i);
        if (c > 255) {
          throw formatError(file, `${what}: character U+${c.toString(16)} is not latin-1`);
        }
        out[i] = c;
      }
      return out;
    }
    if (enc === "utf-8" || enc === "utf8" || enc === "ascii") {
      return new TextEncoder().encode(value);
    }
    throw formatError(file, `${what}: unsupported encoding '${encoding}'`);
  }
  throw formatError(file, `${what}: cannot make bytes from ${describe(value)}`);
}
