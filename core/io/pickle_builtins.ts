/**
 * The fixed set of Python constructors the unpickler rebuilds (everything else stays inert):
 * dict-likes, sets, lists/tuples, slices, bytes (incl. `_codecs.encode(str, "latin1")`, which
 * protocol 2 uses for bytes), torch.Size and numpy scalars/arrays/dtypes.
 */

import { NumpyDtype, numpyScalar, startNumpyArray } from "./pickle_numpy.ts";
import {
  type PickleGlobal,
  PickleObject,
  type PickleReducer,
  PySlice,
  toBytes,
} from "./pickle_values.ts";

// Python 2 module names that protocol-2 pickles still use.
const PY2_MODULES: Record<string, string> = {
  __builtin__: "builtins",
  copy_reg: "copyreg",
  exceptions: "builtins",
};

export function canonical(g: PickleGlobal): string {
  const module = PY2_MODULES[g.module] ?? g.module.replace(/^numpy\._core\b/, "numpy.core");
  return `${module}.${g.name}`;
}

export const DICT_CLASSES = new Set([
  "builtins.dict",
  "collections.OrderedDict",
  "collections.defaultdict",
]);

export const BUILTIN_REDUCERS = new Map<string, PickleReducer>([
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
  ["numpy.core.multiarray._reconstruct", startNumpyArray],
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
