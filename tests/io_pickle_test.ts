// The safe unpickler: the same object pickled by CPython with protocols 0–5, hostile pickles
// that must stay inert, and malformed input.

import assert from "node:assert/strict";
import { PickleGlobal, PickleObject, PySlice, unpickle, unpickleAt } from "../core/io/pickle.ts";
import { FIXTURES, PickleWriter } from "./fixtures/io/helpers.ts";

const ascii = (s: string) => Uint8Array.from([...s].map((c) => c.charCodeAt(0)));

for (let proto = 0; proto <= 5; proto++) {
  Deno.test(`protocol ${proto} pickle from CPython decodes to the expected values`, async () => {
    const file = `protocol_${proto}.pkl`;
    const v = unpickle(await Deno.readFile(FIXTURES + file), { file }) as Map<string, unknown>;
    // the object written by tests/fixtures/make_io_fixtures.py, section 7
    assert.deepEqual([...v.keys()], [
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
    assert.equal(v.get("int"), 1);
    assert.equal(v.get("neg"), -5);
    assert.equal(v.get("i32"), -(2 ** 31));
    assert.equal(v.get("big"), 2n ** 70n);
    assert.equal(v.get("negbig"), -(2n ** 65n));
    assert.equal(v.get("float"), 1.5);
    assert.equal(v.get("str"), "h\u00e9llo \u2603");
    assert.deepEqual(v.get("bytes"), Uint8Array.from([0, 255]));
    assert.deepEqual(v.get("bytearray"), Uint8Array.from([97, 98]));
    assert.deepEqual(v.get("list"), [1, [2, 3]]);
    assert.deepEqual(v.get("tuple"), [1, 2, 3]);
    assert.deepEqual(v.get("set"), new Set([4, 5]));
    assert.deepEqual(v.get("frozenset"), new Set([6]));
    assert.equal(v.get("none"), null);
    assert.equal(v.get("true"), true);
    assert.equal(v.get("false"), false);
    const shared = v.get("shared") as unknown[][];
    assert.deepEqual(shared, [[7, 8], [7, 8]]);
    assert.equal(shared[0], shared[1], "memo keeps one object for a value pickled twice");
    assert.deepEqual(v.get("slice"), new PySlice(1, 5, 2));
    assert.deepEqual(v.get("dict"), new Map([["a", new Map([["b", 2]])]]));
  });
}

Deno.test("os.system via STACK_GLOBAL (protocol 4) is an inert record", async () => {
  const v = unpickle(await Deno.readFile(FIXTURES + "evil.pkl")) as Map<string, unknown>;
  const payload = v.get("payload") as PickleObject;
  assert.ok(payload instanceof PickleObject);
  assert.deepEqual(payload.cls, new PickleGlobal("posix", "system"));
  assert.deepEqual(payload.args, ["echo pwned > /tmp/digit_io_pwned"]);
  assert.deepEqual(v.get("fine"), [1, 2]);
});

Deno.test("hostile globals through GLOBAL, INST and OBJ stay inert; nothing is callable", () => {
  // protocol 0 text: os.system('touch x') via GLOBAL + REDUCE
  const viaReduce = unpickle(ascii("cos\nsystem\n(S'touch /tmp/digit_io_x'\ntR."));
  assert.ok(viaReduce instanceof PickleObject);
  assert.equal(viaReduce.className, "os.system");
  assert.deepEqual(viaReduce.args, ["touch /tmp/digit_io_x"]);
  // INST: module/name on the opcode line, args after a MARK
  const viaInst = unpickle(ascii("(S'rm -rf /'\nios\nsystem\n."));
  assert.ok(viaInst instanceof PickleObject);
  assert.equal(viaInst.className, "os.system");
  // OBJ: MARK, class, args
  const viaObj = unpickle(ascii("(cbuiltins\neval\nS'1+1'\no."));
  assert.ok(viaObj instanceof PickleObject);
  assert.deepEqual(viaObj.args, ["1+1"]);
  // builtins.getattr / __import__ are not on the safe list either
  const getattr = unpickle(
    new PickleWriter().global("builtins", "getattr").mark().str("x").str("y").tuple().reduce()
      .bytes(),
  );
  assert.ok(getattr instanceof PickleObject);
  assert.notEqual(typeof (getattr as PickleObject).cls, "function");
});

Deno.test("BUILD state and dict items on unknown classes are kept as data", () => {
  // NEWOBJ of an unknown class, then BUILD with {'a': 1}, then SETITEMS ('k' -> 2)
  const bytes = new PickleWriter().global("mymod", "Thing").op(0x29, 0x81) // EMPTY_TUPLE NEWOBJ
    .op(0x7d).str("a").int(1).op(0x73) // {'a': 1}
    .op(0x62) // BUILD
    .mark().str("k").int(2).op(0x75) // SETITEMS
    .bytes();
  const obj = unpickle(bytes) as PickleObject;
  assert.equal(obj.className, "mymod.Thing");
  assert.deepEqual(obj.state, new Map([["a", 1]]));
  assert.deepEqual(obj.dictItems, new Map([["k", 2]]));
});

Deno.test("malformed pickles fail with the file name and the reason", () => {
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
    assert.throws(() => unpickle(bytes, { file: "bad.pkl" }), (e: Error) => {
      assert.ok(e.message.startsWith("bad.pkl: "), e.message);
      assert.ok(e.message.includes(fragment), `"${e.message}" lacks "${fragment}"`);
      return true;
    });
  }
});

Deno.test("unpickleAt reads consecutive pickles and reports where each ends", () => {
  const a = new PickleWriter().int(7).bytes();
  const b = new PickleWriter().str("x").bytes();
  const both = new Uint8Array([...a, ...b]);
  const first = unpickleAt(both, 0);
  assert.deepEqual(first, { value: 7, end: a.length });
  assert.deepEqual(unpickleAt(both, first.end), { value: "x", end: both.length });
});
