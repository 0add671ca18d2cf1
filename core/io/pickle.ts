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
import {
  type HostTensor,
  hostTensorFromBytes,
  isSourceDtype,
  type SourceDtype,
} from "./host_tensor.ts";

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

/** A numpy dtype as pickled: descr like "f8" plus the byte order set later by BUILD. */
export class NumpyDtype {
  byteOrder = "=";
  constructor(readonly descr: string) {}
}

/** Rebuilds a value from REDUCE/NEWOBJ arguments. `file` is for error messages. */
export type PickleReducer = (args: unknown[], file: string) => unknown;

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

// Python 2 module names that protocol-2 pickles still use.
const PY2_MODULES: Record<string, string> = {
  __builtin__: "builtins",
  copy_reg: "copyreg",
  exceptions: "builtins",
};

function canonical(g: PickleGlobal): string {
  const module = PY2_MODULES[g.module] ?? g.module.replace(/^numpy\._core\b/, "numpy.core");
  return `${module}.${g.name}`;
}

const DICT_CLASSES = new Set([
  "builtins.dict",
  "collections.OrderedDict",
  "collections.defaultdict",
]);

/** numpy arrays are rebuilt into HostTensors; BUILD fills this placeholder in place. */
const pendingNumpy = new WeakSet<object>();

const BUILTIN_REDUCERS = new Map<string, PickleReducer>([
  [
    "collections.OrderedDict",
    (a) => new Map(Array.isArray(a[0]) ? (a[0] as [unknown, unknown][]) : []),
  ],
  ["builtins.dict", (a) => new Map(Array.isArray(a[0]) ? (a[0] as [unknown, unknown][]) : [])],
  ["collections.defaultdict", () => new Map()],
  ["builtins.set", (a) => new Set(iterableArg(a[0]))],
  ["builtins.frozenset", (a) => new Set(iterableArg(a[0]))],
  ["builtins.list", (a) => [...iterableArg(a[0])]],
  ["builtins.tuple", (a) => [...iterableArg(a[0])]],
  ["builtins.slice", (a) => new PySlice(a[0] ?? null, a[1] ?? null, a[2] ?? null)],
  ["builtins.bytearray", (a, file) => toBytes(a, file, "bytearray")],
  ["builtins.bytes", (a, file) => toBytes(a, file, "bytes")],
  ["_codecs.encode", (a, file) => toBytes(a, file, "_codecs.encode")],
  ["copyreg._reconstructor", (a) => new PickleObject(a[0], [])],
  ["torch.Size", (a) => [...iterableArg(a[0])]],
  ["numpy.dtype", (a) => new NumpyDtype(String(a[0]))],
  ["numpy.core.multiarray.scalar", numpyScalar],
  ["numpy.core.multiarray._reconstruct", () => {
    const t: HostTensor = { dtype: "f32", shape: [0], data: new Float32Array(0), sourceDtype: "?" };
    pendingNumpy.add(t);
    return t;
  }],
]);

function iterableArg(x: unknown): unknown[] {
  if (x === undefined || x === null) return [];
  if (Array.isArray(x)) return x;
  if (x instanceof Set) return [...x];
  if (x instanceof Map) return [...x.keys()];
  if (x instanceof Uint8Array) return [...x];
  if (typeof x === "string") return [...x];
  return [x];
}

function toBytes(args: unknown[], file: string, what: string): Uint8Array {
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

/** numpy descr ("f8", "<i4", "|b1") → our element type name. */
export function numpyDescrToSource(descr: string): { src: SourceDtype; bigEndian: boolean } | null {
  const m = /^([<>|=]?)([fiub])(\d+)$/.exec(descr);
  if (!m) return null;
  const [, order, kind, bytes] = m;
  const name = kind === "b" ? (bytes === "1" ? "bool" : "") : `${kind}${Number(bytes) * 8}`;
  if (!isSourceDtype(name)) return null;
  return { src: name, bigEndian: order === ">" };
}

function dtypeOf(
  d: unknown,
  file: string,
): { src: SourceDtype; bigEndian: boolean; descr: string } {
  if (!(d instanceof NumpyDtype)) throw formatError(file, `numpy value with dtype ${describe(d)}`);
  const parsed = numpyDescrToSource(d.descr);
  if (!parsed) throw formatError(file, `unsupported numpy dtype '${d.descr}'`);
  return { ...parsed, bigEndian: d.byteOrder === ">", descr: d.descr };
}

function numpyScalar(args: unknown[], file: string): unknown {
  const { src, bigEndian } = dtypeOf(args[0], file);
  const raw = args[1];
  if (!(raw instanceof Uint8Array)) throw formatError(file, "numpy scalar without its bytes");
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const le = !bigEndian;
  switch (src) {
    case "f64":
      return dv.getFloat64(0, le);
    case "f32":
      return dv.getFloat32(0, le);
    case "bool":
      return raw[0] !== 0;
    case "i64":
      return narrow(dv.getBigInt64(0, le));
    case "u64":
      return narrow(dv.getBigUint64(0, le));
    case "i32":
      return dv.getInt32(0, le);
    case "u32":
      return dv.getUint32(0, le);
    case "i16":
      return dv.getInt16(0, le);
    case "u16":
      return dv.getUint16(0, le);
    case "i8":
      return dv.getInt8(0);
    case "u8":
      return dv.getUint8(0);
    default: {
      const t = hostTensorFromBytes(raw, src, [], { file, key: "numpy scalar", bigEndian });
      return t.data[0];
    }
  }
}

/** Fills a pending numpy array from its BUILD state (version, shape, dtype, fortran, data). */
function buildNumpyArray(t: HostTensor, state: unknown, file: string): void {
  if (!Array.isArray(state) || state.length < 5) {
    throw formatError(file, "malformed numpy array state");
  }
  const [, shape, dtype, fortran, raw] = state as [unknown, number[], unknown, boolean, unknown];
  const { src, bigEndian, descr } = dtypeOf(dtype, file);
  let bytes: Uint8Array;
  if (raw instanceof Uint8Array) bytes = raw;
  else if (typeof raw === "string") bytes = toBytes([raw, "latin1"], file, "numpy array");
  else throw formatError(file, `numpy array of dtype '${descr}' without raw bytes (object array?)`);
  const dims = shape.map(Number);
  let built: HostTensor;
  if (fortran && dims.length > 1) {
    // Fortran order: read with the reversed shape, then transpose back to C order.
    const rev = hostTensorFromBytes(bytes, src, [...dims].reverse(), {
      file,
      key: "numpy array",
      bigEndian,
    });
    built = transposeAll(rev);
  } else {
    built = hostTensorFromBytes(bytes, src, dims, { file, key: "numpy array", bigEndian });
  }
  Object.assign(t, built);
}

/** Reverses all axes of a C-order tensor (turns a Fortran-order read into C order). */
export function transposeAll(t: HostTensor): HostTensor {
  const shape = [...t.shape].reverse();
  const n = t.data.length;
  const out = t.data instanceof Float32Array ? new Float32Array(n) : new Int32Array(n);
  const rank = shape.length;
  // source strides (of the reversed shape), read in reversed axis order
  const srcStrides = new Array<number>(rank);
  let s = 1;
  for (let i = 0; i < rank; i++) {
    srcStrides[i] = s;
    s *= shape[i];
  }
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < n; o++) {
    let src = 0;
    for (let d = 0; d < rank; d++) src += idx[d] * srcStrides[d];
    out[o] = t.data[src];
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return { ...t, shape, data: out };
}

function narrow(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(v)
    : v;
}

function describe(v: unknown): string {
  if (v === null) return "None";
  if (v instanceof PickleGlobal) return v.toString();
  if (v instanceof PickleObject) return `<object ${v.className}>`;
  if (v instanceof Map) return "dict";
  if (Array.isArray(v)) return "tuple/list";
  return typeof v;
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

const MARK = Symbol("mark");

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
    const v = this.stack.pop();
    if (v === MARK) this.fail("unexpected MARK on the stack");
    return v;
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
    } else if (typeof target === "object" && target !== null && pendingNumpy.has(target)) {
      buildNumpyArray(target as HostTensor, state, this.file);
      pendingNumpy.delete(target);
    } else if (typeof target === "object" && target !== null) {
      buildStates.set(target, state);
    } else {
      this.fail(`BUILD on ${describe(target)}`);
    }
  }

  private setItems(target: unknown, items: unknown[]): void {
    let map: Map<unknown, unknown>;
    if (target instanceof Map) map = target;
    else if (target instanceof PickleObject) map = target.dictItems ??= new Map();
    else this.fail(`SETITEMS on ${describe(target)}`);
    for (let i = 0; i + 1 < items.length; i += 2) map.set(items[i], items[i + 1]);
  }

  private append(target: unknown, items: unknown[]): void {
    if (Array.isArray(target)) target.push(...items);
    else if (target instanceof PickleObject) (target.listItems ??= []).push(...items);
    else this.fail(`APPENDS on ${describe(target)}`);
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
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
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
