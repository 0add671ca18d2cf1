/**
 * A safe Python unpickler (protocols 0–5) that never executes anything.
 *
 * GLOBAL / STACK_GLOBAL produce an inert `PickleGlobal` naming the class or function. REDUCE,
 * NEWOBJ and BUILD rebuild data only for a fixed set of known constructors (dict-likes, sets,
 * bytes via `_codecs.encode`, numpy scalars and arrays) plus the reducers a caller passes (torch
 * passes its tensor rebuilders). Anything else becomes an inert `PickleObject` record holding the
 * class, the arguments and the state, so a hostile `os.system` REDUCE is just data.
 *
 * Python values map to: None → null, bool → boolean, int → number (bigint beyond 2^53),
 * float → number, str → string, bytes/bytearray → Uint8Array, tuple/list → array,
 * dict/OrderedDict → Map, set/frozenset → Set.
 */

import { formatError } from "./errors.ts";
import { BUILTIN_REDUCERS, canonical, DICT_CLASSES } from "./pickle_builtins.ts";
import { finishNumpyArray, NumpyDtype } from "./pickle_numpy.ts";
import {
  describe,
  narrow,
  PickleGlobal,
  PickleObject,
  type PickleReducer,
} from "./pickle_values.ts";

export { numpyDescrToSource, NumpyDtype, transposeAll } from "./pickle_numpy.ts";
export { PickleGlobal, PickleObject, type PickleReducer, PySlice } from "./pickle_values.ts";

export interface UnpickleOptions {
  /** Name for error messages. */
  file?: string;
  /** Resolves persistent ids (PERSID/BINPERSID); without it they are an error. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Extra safe reducers keyed by "module.name", consulted before the built-in ones. */
  reducers?: ReadonlyMap<string, PickleReducer>;
}

/** State that BUILD attached to values that are not PickleObjects (e.g. OrderedDict._metadata). */
const buildStates = new WeakMap<object, unknown>();

export function pickleBuildState(value: object): unknown {
  return buildStates.get(value);
}

/** Unpickles the single pickle at the start of `bytes`. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions = {}): unknown {
  return unpickleAt(bytes, 0, opts).value;
}

/** Unpickles the pickle that starts at `offset`; `end` is the offset just past its STOP. */
export function unpickleAt(
  bytes: Uint8Array,
  offset: number,
  opts: UnpickleOptions = {},
): { value: unknown; end: number } {
  return new Unpickler(bytes, offset, opts).run();
}

class Unpickler {
  private stack: unknown[] = [];
  private marks: number[] = [];
  private memo = new Map<number, unknown>();
  private readonly file: string;
  private readonly dv: DataView;
  private readonly utf8 = new TextDecoder();

  constructor(
    private readonly b: Uint8Array,
    private pos: number,
    private readonly opts: UnpickleOptions,
  ) {
    this.file = opts.file ?? "<pickle>";
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  fail(detail: string): never {
    throw formatError(this.file, `pickle: ${detail} (at byte ${this.pos})`);
  }

  private need(n: number): number {
    if (this.pos + n > this.b.length) this.fail(`truncated: needs ${n} more bytes`);
    const at = this.pos;
    this.pos += n;
    return at;
  }
  private u8(): number {
    return this.b[this.need(1)];
  }
  private u16(): number {
    return this.dv.getUint16(this.need(2), true);
  }
  private i32(): number {
    return this.dv.getInt32(this.need(4), true);
  }
  private u32(): number {
    return this.dv.getUint32(this.need(4), true);
  }
  private u64(): number {
    const v = this.dv.getBigUint64(this.need(8), true);
    if (v > BigInt(this.b.length)) this.fail(`length ${v} exceeds the data`);
    return Number(v);
  }
  private raw(n: number): Uint8Array {
    const at = this.need(n);
    return this.b.subarray(at, at + n);
  }
  private line(): string {
    const start = this.pos;
    const nl = this.b.indexOf(0x0a, start);
    if (nl < 0) this.fail("truncated: unterminated text line");
    this.pos = nl + 1;
    return latin1(this.b.subarray(start, nl));
  }

  private pop(): unknown {
    if (this.stack.length === 0) this.fail("stack underflow");
    return this.stack.pop();
  }
  private top(): unknown {
    if (this.stack.length === 0) this.fail("stack underflow");
    return this.stack[this.stack.length - 1];
  }
  private popMark(): unknown[] {
    const at = this.marks.pop();
    if (at === undefined) this.fail("MARK expected");
    const items = this.stack.splice(at);
    return items;
  }
  private getMemo(i: number): unknown {
    if (!this.memo.has(i)) this.fail(`memo key ${i} not defined`);
    return this.memo.get(i);
  }

  run(): { value: unknown; end: number } {
    for (;;) {
      const opAt = this.pos;
      const op = this.u8();
      switch (op) {
        case 0x80: { // PROTO
          const v = this.u8();
          if (v > 5) this.fail(`unsupported pickle protocol ${v}`);
          break;
        }
        case 0x95: // FRAME: frames are transparent when the whole buffer is in memory
          this.need(8);
          break;
        case 0x2e: // STOP
          if (this.stack.length !== 1 || this.marks.length) {
            this.fail("malformed: STOP with stack not of size 1");
          }
          return { value: this.stack[0], end: this.pos };
        // ---- marks and stack manipulation
        case 0x28: // MARK
          this.marks.push(this.stack.length);
          break;
        case 0x30: // POP
          if (this.marks.length && this.marks[this.marks.length - 1] === this.stack.length) {
            this.marks.pop();
          } else this.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        case 0x32: // DUP
          this.stack.push(this.top());
          break;
        // ---- constants and numbers
        case 0x4e: // NONE
          this.stack.push(null);
          break;
        case 0x88: // NEWTRUE
          this.stack.push(true);
          break;
        case 0x89: // NEWFALSE
          this.stack.push(false);
          break;
        case 0x4a: // BININT
          this.stack.push(this.i32());
          break;
        case 0x4b: // BININT1
          this.stack.push(this.u8());
          break;
        case 0x4d: // BININT2
          this.stack.push(this.u16());
          break;
        case 0x8a: // LONG1
          this.stack.push(decodeLong(this.raw(this.u8())));
          break;
        case 0x8b: { // LONG4
          const n = this.i32();
          if (n < 0) this.fail("negative LONG4 length");
          this.stack.push(decodeLong(this.raw(n)));
          break;
        }
        case 0x49: { // INT (text); "00"/"01" are False/True in protocol 0
          const s = this.line().trim();
          if (s === "00") this.stack.push(false);
          else if (s === "01") this.stack.push(true);
          else this.stack.push(parseIntText(s, this));
          break;
        }
        case 0x4c: // LONG (text)
          this.stack.push(parseIntText(this.line().trim().replace(/L$/, ""), this));
          break;
        case 0x46: // FLOAT (text)
          this.stack.push(parseFloat(this.line()));
          break;
        case 0x47: // BINFLOAT (big-endian)
          this.stack.push(this.dv.getFloat64(this.need(8), false));
          break;
        // ---- strings and bytes
        case 0x58: // BINUNICODE
          this.stack.push(this.utf8.decode(this.raw(this.u32())));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.stack.push(this.utf8.decode(this.raw(this.u8())));
          break;
        case 0x8d: // BINUNICODE8
          this.stack.push(this.utf8.decode(this.raw(this.u64())));
          break;
        case 0x56: // UNICODE (raw-unicode-escape, text)
          this.stack.push(rawUnicodeEscape(this.line()));
          break;
        case 0x53: // STRING (quoted repr, text)
          this.stack.push(pyStringLiteral(this.line().trim(), this));
          break;
        case 0x54: { // BINSTRING (Python 2 str)
          const n = this.i32();
          if (n < 0) this.fail("negative BINSTRING length");
          this.stack.push(py2String(this.raw(n)));
          break;
        }
        case 0x55: // SHORT_BINSTRING
          this.stack.push(py2String(this.raw(this.u8())));
          break;
        case 0x42: // BINBYTES
          this.stack.push(this.raw(this.u32()).slice());
          break;
        case 0x43: // SHORT_BINBYTES
          this.stack.push(this.raw(this.u8()).slice());
          break;
        case 0x8e: // BINBYTES8
          this.stack.push(this.raw(this.u64()).slice());
          break;
        case 0x96: // BYTEARRAY8
          this.stack.push(this.raw(this.u64()).slice());
          break;
        case 0x97: // NEXT_BUFFER
          this.fail("out-of-band buffers (NEXT_BUFFER) are not supported");
          break;
        case 0x98: // READONLY_BUFFER: no-op on our copies
          break;
        // ---- containers
        case 0x29: // EMPTY_TUPLE
          this.stack.push([]);
          break;
        case 0x74: // TUPLE
          this.stack.push(this.popMark());
          break;
        case 0x85: // TUPLE1
          this.stack.push([this.pop()]);
          break;
        case 0x86: { // TUPLE2
          const b = this.pop(), a = this.pop();
          this.stack.push([a, b]);
          break;
        }
        case 0x87: { // TUPLE3
          const c = this.pop(), b = this.pop(), a = this.pop();
          this.stack.push([a, b, c]);
          break;
        }
        case 0x5d: // EMPTY_LIST
          this.stack.push([]);
          break;
        case 0x6c: // LIST
          this.stack.push(this.popMark());
          break;
        case 0x61: { // APPEND
          const v = this.pop();
          this.append(this.top(), [v]);
          break;
        }
        case 0x65: { // APPENDS
          const items = this.popMark();
          this.append(this.top(), items);
          break;
        }
        case 0x7d: // EMPTY_DICT
          this.stack.push(new Map());
          break;
        case 0x64: { // DICT
          const items = this.popMark();
          const m = new Map();
          for (let i = 0; i + 1 < items.length; i += 2) m.set(items[i], items[i + 1]);
          this.stack.push(m);
          break;
        }
        case 0x73: { // SETITEM
          const v = this.pop(), k = this.pop();
          this.setItems(this.top(), [k, v]);
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.popMark();
          this.setItems(this.top(), items);
          break;
        }
        case 0x8f: // EMPTY_SET
          this.stack.push(new Set());
          break;
        case 0x90: { // ADDITEMS
          const items = this.popMark();
          const s = this.top();
          if (!(s instanceof Set)) this.fail(`ADDITEMS on ${describe(s)}`);
          for (const x of items) s.add(x);
          break;
        }
        case 0x91: // FROZENSET
          this.stack.push(new Set(this.popMark()));
          break;
        // ---- memo
        case 0x67: // GET
          this.stack.push(this.getMemo(Number(this.line())));
          break;
        case 0x68: // BINGET
          this.stack.push(this.getMemo(this.u8()));
          break;
        case 0x6a: // LONG_BINGET
          this.stack.push(this.getMemo(this.u32()));
          break;
        case 0x70: // PUT
          this.memo.set(Number(this.line()), this.top());
          break;
        case 0x71: // BINPUT
          this.memo.set(this.u8(), this.top());
          break;
        case 0x72: // LONG_BINPUT
          this.memo.set(this.u32(), this.top());
          break;
        case 0x94: // MEMOIZE
          this.memo.set(this.memo.size, this.top());
          break;
        // ---- globals and object construction (never executed)
        case 0x63: { // GLOBAL
          const module = this.line();
          const name = this.line();
          this.stack.push(new PickleGlobal(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop(), module = this.pop();
          if (typeof module !== "string" || typeof name !== "string") {
            this.fail("STACK_GLOBAL needs two strings");
          }
          this.stack.push(new PickleGlobal(module, name));
          break;
        }
        case 0x82:
        case 0x83:
        case 0x84: { // EXT1 / EXT2 / EXT4
          const code = op === 0x82 ? this.u8() : op === 0x83 ? this.u16() : this.i32();
          this.fail(`extension-registry code ${code} is not supported`);
          break;
        }
        case 0x52: { // REDUCE
          const args = this.pop(), fn = this.pop();
          this.stack.push(this.call(fn, asArgs(args, this)));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = this.pop(), cls = this.pop();
          this.stack.push(this.newObject(cls, asArgs(args, this), null));
          break;
        }
        case 0x92: { // NEWOBJ_EX
          const kwargs = this.pop(), args = this.pop(), cls = this.pop();
          this.stack.push(
            this.newObject(cls, asArgs(args, this), kwargs instanceof Map ? kwargs : null),
          );
          break;
        }
        case 0x69: { // INST (protocol 0): module, name lines, then marked args
          const module = this.line();
          const name = this.line();
          this.stack.push(this.call(new PickleGlobal(module, name), this.popMark()));
          break;
        }
        case 0x6f: { // OBJ: marked [cls, ...args]
          const items = this.popMark();
          if (items.length === 0) this.fail("OBJ without a class");
          this.stack.push(this.call(items[0], items.slice(1)));
          break;
        }
        case 0x62: { // BUILD
          const state = this.pop();
          this.build(this.top(), state);
          break;
        }
        case 0x50: // PERSID
          this.stack.push(this.persistent(this.line()));
          break;
        case 0x51: // BINPERSID
          this.stack.push(this.persistent(this.pop()));
          break;
        default:
          this.pos = opAt;
          this.fail(`unknown opcode 0x${op.toString(16).padStart(2, "0")}`);
      }
    }
  }

  private persistent(pid: unknown): unknown {
    if (!this.opts.persistentLoad) {
      this.fail("persistent id found but no persistent loader was given");
    }
    return this.opts.persistentLoad(pid);
  }

  /** REDUCE: rebuild known constructors, keep everything else as an inert record. */
  private call(fn: unknown, args: unknown[]): unknown {
    if (fn instanceof PickleGlobal) {
      const key = canonical(fn);
      const reducer = this.opts.reducers?.get(key) ?? this.opts.reducers?.get(fn.qualifiedName) ??
        BUILTIN_REDUCERS.get(key);
      if (reducer) return reducer(args, this.file);
    }
    return new PickleObject(fn, args);
  }

  /** NEWOBJ: cls.__new__(cls, *args). Only dict-likes become real values. */
  private newObject(cls: unknown, args: unknown[], kwargs: Map<unknown, unknown> | null): unknown {
    if (cls instanceof PickleGlobal) {
      const key = canonical(cls);
      if (DICT_CLASSES.has(key)) return new Map();
      if (key === "builtins.set" || key === "builtins.frozenset") return new Set();
      if (key === "builtins.list") return [];
      if (key === "builtins.object") return new PickleObject(cls, args, kwargs);
    }
    return new PickleObject(cls, args, kwargs);
  }

  private build(target: unknown, state: unknown): void {
    if (target instanceof PickleObject) {
      if (target.state instanceof Map && state instanceof Map) {
        for (const [k, v] of state) target.state.set(k, v);
      } else {
        target.state = state;
      }
    } else if (target instanceof NumpyDtype) {
      if (Array.isArray(state) && typeof state[1] === "string") target.byteOrder = state[1];
    } else if (typeof target === "object" && target !== null) {
      const array = finishNumpyArray(target, state, this.file);
      if (array === null) buildStates.set(target, state);
      else if (array !== target) this.replace(target, array);
    } else {
      this.fail(`BUILD on ${describe(target)}`);
    }
  }

  /** Puts `value` where the stack and memo hold `placeholder` (a numpy array that BUILD widened). */
  private replace(placeholder: object, value: unknown): void {
    for (let i = 0; i < this.stack.length; i++) {
      if (this.stack[i] === placeholder) this.stack[i] = value;
    }
    for (const [k, v] of this.memo) if (v === placeholder) this.memo.set(k, value);
  }

  private setItems(target: unknown, items: unknown[]): void {
    let map: Map<unknown, unknown>;
    if (target instanceof Map) map = target;
    else if (target instanceof PickleObject) map = target.dictItems ??= new Map();
    else this.fail(`SETITEMS on ${describe(target)}`);
    for (let i = 0; i + 1 < items.length; i += 2) map.set(items[i], items[i + 1]);
  }

  private append(target: unknown, items: unknown[]): void {
    let list: unknown[];
    if (Array.isArray(target)) list = target;
    else if (target instanceof PickleObject) list = target.listItems ??= [];
    else this.fail(`APPENDS on ${describe(target)}`);
    // One push per item: push(...items) passes every item as an argument on the stack, and
    // 300k items in one APPENDS overflow it.
    for (const x of items) list.push(x);
  }
}

function asArgs(args: unknown, u: { fail(d: string): never }): unknown[] {
  if (Array.isArray(args)) return args;
  if (args === null) return [];
  return u.fail(`call arguments must be a tuple, got ${describe(args)}`);
}

/** Little-endian two's-complement integer of any length. */
function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let hex = "0x"; // one BigInt parse stays linear in the length
  for (let i = bytes.length - 1; i >= 0; i--) hex += bytes[i].toString(16).padStart(2, "0");
  let v = BigInt(hex);
  if (bytes[bytes.length - 1] & 0x80) v -= 1n << BigInt(8 * bytes.length);
  return narrow(v);
}

function parseIntText(s: string, u: { fail(d: string): never }): number | bigint {
  if (!/^[+-]?\d+$/.test(s)) u.fail(`bad integer literal '${s}'`);
  return narrow(BigInt(s));
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 8192) {
    s += String.fromCharCode(...b.subarray(i, i + 8192));
  }
  return s;
}

/** Python 2 `str`: utf-8 when it decodes cleanly, else latin-1 so no byte is lost. */
function py2String(b: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(b);
  } catch {
    return latin1(b);
  }
}

function rawUnicodeEscape(s: string): string {
  return s.replace(
    /\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g,
    (_m, a, b) => String.fromCodePoint(parseInt(a ?? b, 16)),
  );
}

/** A quoted Python 2 string literal as written by protocol 0 STRING. */
function pyStringLiteral(s: string, u: { fail(d: string): never }): string {
  const q = s[0];
  if ((q !== "'" && q !== '"') || s[s.length - 1] !== q || s.length < 2) {
    u.fail(`STRING opcode argument must be quoted: ${s}`);
  }
  const body = s.slice(1, -1);
  const simple: Record<string, string> = {
    n: "\n",
    t: "\t",
    r: "\r",
    "\\": "\\",
    "'": "'",
    '"': '"',
    a: "\x07",
    b: "\b",
    f: "\f",
    v: "\v",
    "0": "\0",
  };
  return body.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_m, e: string) => {
    if (e[0] === "x") return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(parseInt(e, 8));
    return simple[e] ?? "\\" + e;
  });
}
