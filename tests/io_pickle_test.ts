// The safe unpickler: the same object pickled by CPython with protocols 0–5, hostile pickles
// that must stay inert, and malformed input.

import { expect, it } from "./lib/test.ts";
import { PickleGlobal, PickleObject, PySlice, unpickle, unpickleAt } from "../core/io/pickle.ts";
import { FIXTURES, PickleWriter } from "./fixtures/io/helpers.ts";

const ascii = (s: string) => Uint8Array.from([...s].map((c) => c.charCodeAt(0)));

for (let proto = 0; proto <= 5; proto++) {
  it(`protocol ${proto} pickle from CPython decodes to the expected values`, async () => {
    const file = `protocol_${proto}.pkl`;
    const v = unpickle(await Deno.readFile(FIXTURES + file), { file }) as Map<string, unknown>;
    // the object written by tests/fixtures/make_io_fixtures.py, section 7
    expect([...v.keys()]).toEqual([
      "int",
      "neg",
      "i32",
      "big",
      "negbig",
      "float",
      "str",
      "bytes",
      "bytearray",
      "list",
      "tuple",
      "set",
      "frozenset",
      "none",
      "true",
      "false",
      "shared",
      "slice",
      "dict",
    ]);
    expect(v.get("int")).toBe(1);
    expect(v.get("neg")).toBe(-5);
    expect(v.get("i32")).toBe(-(2 ** 31));
    expect(v.get("big")).toBe(2n ** 70n);
    expect(v.get("negbig")).toBe(-(2n ** 65n));
    expect(v.get("float")).toBe(1.5);
    expect(v.get("str")).toBe("h\u00e9llo \u2603");
    expect(v.get("bytes")).toEqual(Uint8Array.from([0, 255]));
    expect(v.get("bytearray")).toEqual(Uint8Array.from([97, 98]));
    expect(v.get("list")).toEqual([1, [2, 3]]);
    expect(v.get("tuple")).toEqual([1, 2, 3]);
    expect(v.get("set")).toEqual(new Set([4, 5]));
    expect(v.get("frozenset")).toEqual(new Set([6]));
    expect(v.get("none")).toBe(null);
    expect(v.get("true")).toBe(true);
    expect(v.get("false")).toBe(false);
    const shared = v.get("shared") as unknown[][];
    expect(shared).toEqual([[7, 8], [7, 8]]);
    expect(shared[0], "memo keeps one object for a value pickled twice").toBe(shared[1]);
    expect(v.get("slice")).toEqual(new PySlice(1, 5, 2));
    expect(v.get("dict")).toEqual(new Map([["a", new Map([["b", 2]])]]));
  });
}

it("os.system via STACK_GLOBAL (protocol 4) is an inert record", async () => {
  const v = unpickle(await Deno.readFile(FIXTURES + "evil.pkl")) as Map<string, unknown>;
  const payload = v.get("payload") as PickleObject;
  expect(payload).toBeInstanceOf(PickleObject);
  expect(payload.cls).toEqual(new PickleGlobal("posix", "system"));
  expect(payload.args).toEqual(["echo pwned > /tmp/digit_io_pwned"]);
  expect(v.get("fine")).toEqual([1, 2]);
});

it("hostile globals through GLOBAL, INST and OBJ stay inert; nothing is callable", () => {
  // protocol 0 text: os.system('touch x') via GLOBAL + REDUCE
  const viaReduce = unpickle(ascii("cos\nsystem\n(S'touch /tmp/digit_io_x'\ntR.")) as PickleObject;
  expect(viaReduce).toBeInstanceOf(PickleObject);
  expect(viaReduce.className).toBe("os.system");
  expect(viaReduce.args).toEqual(["touch /tmp/digit_io_x"]);
  // INST: module/name on the opcode line, args after a MARK
  const viaInst = unpickle(ascii("(S'rm -rf /'\nios\nsystem\n.")) as PickleObject;
  expect(viaInst).toBeInstanceOf(PickleObject);
  expect(viaInst.className).toBe("os.system");
  // OBJ: MARK, class, args
  const viaObj = unpickle(ascii("(cbuiltins\neval\nS'1+1'\no.")) as PickleObject;
  expect(viaObj).toBeInstanceOf(PickleObject);
  expect(viaObj.args).toEqual(["1+1"]);
  // builtins.getattr / __import__ are not on the safe list either
  const getattr = unpickle(
    new PickleWriter().global("builtins", "getattr").mark().str("x").str("y").tuple().reduce()
      .bytes(),
  );
  expect(getattr).toBeInstanceOf(PickleObject);
  expect(typeof (getattr as PickleObject).cls).not.toBe("function");
});

it("BUILD state and dict items on unknown classes are kept as data", () => {
  // NEWOBJ of an unknown class, then BUILD with {'a': 1}, then SETITEMS ('k' -> 2)
  const bytes = new PickleWriter().global("mymod", "Thing").op(0x29, 0x81) // EMPTY_TUPLE NEWOBJ
    .op(0x7d).str("a").int(1).op(0x73) // {'a': 1}
    .op(0x62) // BUILD
    .mark().str("k").int(2).op(0x75) // SETITEMS
    .bytes();
  const obj = unpickle(bytes) as PickleObject;
  expect(obj.className).toBe("mymod.Thing");
  expect(obj.state).toEqual(new Map([["a", 1]]));
  expect(obj.dictItems).toEqual(new Map([["k", 2]]));
});

it("malformed pickles fail with the file name and the reason", () => {
  const cases: [Uint8Array, string][] = [
    [Uint8Array.from([0x80, 0x02, 0x58, 0xff, 0x00, 0x00, 0x00, 0x61]), "truncated"],
    [Uint8Array.from([0x80, 0x02, 0xff, 0x2e]), "unknown opcode 0xff"],
    [Uint8Array.from([0x80, 0x06, 0x4e, 0x2e]), "unsupported pickle protocol 6"],
    [Uint8Array.from([0x80, 0x02, 0x68, 0x05, 0x2e]), "memo key 5"],
    [Uint8Array.from([0x80, 0x02, 0x30, 0x2e]), "stack underflow"],
    [Uint8Array.from([0x80, 0x02, 0x4e, 0x4e, 0x2e]), "STOP"],
    [Uint8Array.from([0x80, 0x02, 0x4e, 0x51, 0x2e]), "persistent id"],
  ];
  for (const [bytes, fragment] of cases) {
    const bad = () => unpickle(bytes, { file: "bad.pkl" });
    expect(bad).toThrow(/^bad\.pkl: /);
    expect(bad).toThrow(fragment);
  }
});

it("unpickleAt reads consecutive pickles and reports where each ends", () => {
  const a = new PickleWriter().int(7).bytes();
  const b = new PickleWriter().str("x").bytes();
  const both = new Uint8Array([...a, ...b]);
  const first = unpickleAt(both, 0);
  expect(first).toEqual({ value: 7, end: a.length });
  expect(unpickleAt(both, first.end)).toEqual({ value: "x", end: both.length });
});
