/**
 * Loads files written by `torch.save`, without Python.
 *
 * Two layouts exist:
 * - zip (torch ≥ 1.6): `<archive>/data.pkl` is a pickle whose tensors point, via persistent ids
 *   ('storage', <torch.FloatStorage>, key, location, numel), at raw entries `<archive>/data/<key>`;
 *   `<archive>/byteorder` says "little" or "big" (absent means little).
 * - legacy (`_use_new_zipfile_serialization=False`): five things back to back: a pickled magic
 *   number, the protocol version (1001), a sys-info dict, the object pickle, a pickled list of
 *   storage keys; then for each key an int64 element count followed by the raw storage.
 *
 * Tensors are rebuilt with `_rebuild_tensor_v2(storage, offset, size, stride, ...)` honouring
 * offset and strides (so transposed views and storages shared by several tensors come out right),
 * and converted to HostTensor. A file that is neither becomes a plain pickle load.
 */

import { type ByteSource, openSource } from "./byte_source.ts";
import { formatError } from "./errors.ts";
import {
  type DecodedValues,
  decodeValues,
  gatherStrided,
  type HostTensor,
  isContiguous,
  isHostTensor,
  isWideDtype,
  numelOf,
  SOURCE_DTYPES,
  type SourceDtype,
  swapBytes,
  viewExtent,
  wideFromBytes,
  type WideIntTensor,
} from "./host_tensor.ts";
import { PickleGlobal, PickleObject, type PickleReducer, unpickleAt } from "./pickle.ts";
import { shortRepr } from "./pickle_values.ts";
import { looksLikeZip, ZipReader } from "./zip.ts";

const STORAGE_DTYPES: Record<string, SourceDtype> = {
  DoubleStorage: "f64",
  FloatStorage: "f32",
  HalfStorage: "f16",
  BFloat16Storage: "bf16",
  LongStorage: "i64",
  IntStorage: "i32",
  ShortStorage: "i16",
  CharStorage: "i8",
  ByteStorage: "u8",
  BoolStorage: "bool",
  UntypedStorage: "u8",
};

/** torch dtypes as pickled globals (`torch.uint16`), used by `_rebuild_tensor_v3`. */
const TORCH_DTYPES: Record<string, SourceDtype> = {
  float64: "f64",
  double: "f64",
  float32: "f32",
  float: "f32",
  float16: "f16",
  half: "f16",
  bfloat16: "bf16",
  int64: "i64",
  long: "i64",
  int32: "i32",
  int: "i32",
  int16: "i16",
  short: "i16",
  int8: "i8",
  uint8: "u8",
  uint16: "u16",
  uint32: "u32",
  uint64: "u64",
  bool: "bool",
};

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

export interface LoadTorchOptions {
  /** Name used in errors when loading from bytes. */
  name?: string;
  /**
   * Most elements a view may expand to beyond its storage's size (default
   * DEFAULT_MAX_EXPANDED_ELEMENTS). A stride-0 or overlapping view, as `expand` makes, names more
   * elements than its storage holds; a few bytes can name a (16384, 16384) view of one float.
   */
  maxExpandedElements?: number;
}

/** 2^24 elements: 64 MiB of f32, far more than any expanded view a checkpoint saves. */
export const DEFAULT_MAX_EXPANDED_ELEMENTS = 1 << 24;

/** A storage named by a persistent id; its bytes are decoded on first use. */
interface StorageRef {
  key: string;
  dtype: SourceDtype;
  numel: number;
  /** Element offset into the root storage (legacy storage views); 0 for roots. */
  viewOffset: number;
  /** The storage that owns the bytes (itself unless this is a legacy view). */
  root: StorageRef | null;
  values: DecodedValues | null;
  /** Whether some tensor already owns `values.data` (later tensors must copy). */
  claimed: boolean;
  /** The raw bytes, kept only when some value did not fit int32 (to build WideIntTensors). */
  raw?: Uint8Array;
}

/** A tensor whose data is filled once its storage bytes are available. */
interface PendingTensor {
  tensor: HostTensor;
  storage: StorageRef;
  offset: number;
  strides: number[];
}

/**
 * Loads a torch.save file (zip or legacy) into plain data: dicts become Maps, tensors become
 * HostTensors, unknown classes stay inert PickleObjects. Nothing in the file is executed.
 */
export function loadTorch(
  input: string | Uint8Array,
  opts: LoadTorchOptions = {},
): Promise<unknown> {
  const src = openSource(input, opts.name);
  try {
    const head = src.read(0, Math.min(src.size, 4), "file header");
    if (src.size === 0) throw formatError(src.name, "empty file");
    const max = opts.maxExpandedElements;
    if (looksLikeZip(head)) return Promise.resolve(loadZip(src, max));
    if (head[0] === 0x80) return Promise.resolve(loadLegacyOrPickle(src, max));
    throw formatError(
      src.name,
      `bad magic: starts with ${hexBytes(head)}; expected a torch zip ("PK") or a pickle (0x80)`,
    );
  } catch (e) {
    return Promise.reject(e);
  } finally {
    src.close();
  }
}

function hexBytes(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");
}

class TensorRebuilder {
  readonly storages = new Map<string, StorageRef>();
  readonly pending: PendingTensor[] = [];
  readonly reducers: Map<string, PickleReducer>;

  constructor(readonly file: string, readonly maxExpanded = DEFAULT_MAX_EXPANDED_ELEMENTS) {
    const rebuildTensor: PickleReducer = (a) => this.rebuild(a[0], a[1], a[2], a[3]);
    const rebuildParameter: PickleReducer = (a) => a[0];
    this.reducers = new Map<string, PickleReducer>([
      ["torch._utils._rebuild_tensor_v2", rebuildTensor],
      ["torch._utils._rebuild_tensor", rebuildTensor],
      // (storage, offset, size, stride, requires_grad, hooks, dtype, metadata): the tensor's dtype
      // is given separately and the (usually untyped) storage is reinterpreted as that dtype
      [
        "torch._utils._rebuild_tensor_v3",
        (a) => this.rebuild(this.reinterpret(a[0], a[6]), a[1], a[2], a[3]),
      ],
      ["torch._utils._rebuild_parameter", rebuildParameter],
      ["torch._utils._rebuild_parameter_with_state", rebuildParameter],
      // (func, new_type, args, state): a tensor subclass; rebuild the plain tensor via func
      ["torch._tensor._rebuild_from_type_v2", (a) => {
        const [fn, , args] = a;
        const inner = fn instanceof PickleGlobal ? this.reducers.get(fn.qualifiedName) : undefined;
        return inner && Array.isArray(args) ? inner(args, this.file) : new PickleObject(fn, a);
      }],
    ]);
  }

  /** Turns a persistent id tuple into a StorageRef (shared by key). */
  storageFromPid(pid: unknown): unknown {
    // Legacy whole-module saves record each module's class as ('module', cls, source_file,
    // source); torch.load returns the class (it only compares the source, to warn).
    if (Array.isArray(pid) && pid[0] === "module") return pid[1];
    if (!Array.isArray(pid) || pid[0] !== "storage") {
      throw formatError(this.file, `unexpected persistent id ${shortRepr(pid)}`);
    }
    const [, type, key, , numel, view] = pid;
    const typeName = type instanceof PickleGlobal ? type.name : shortRepr(type);
    const dtype = STORAGE_DTYPES[typeName];
    const rootKey = typeof key === "string" || typeof key === "number" ? String(key) : null;
    if (!dtype) {
      throw formatError(
        this.file,
        `unsupported storage type '${typeName}' (key ${shortRepr(key)})`,
      );
    }
    if (rootKey === null) {
      throw formatError(this.file, `storage key ${shortRepr(key)} is not a string`);
    }
    if (!Number.isSafeInteger(numel) || (numel as number) < 0) {
      throw formatError(
        this.file,
        `storage '${rootKey}' has invalid element count ${shortRepr(numel)}`,
      );
    }
    let root = this.storages.get(rootKey);
    if (!root) {
      root = {
        key: rootKey,
        dtype,
        numel: Number(numel),
        viewOffset: 0,
        root: null,
        values: null,
        claimed: false,
      };
      this.storages.set(rootKey, root);
    }
    // legacy storage views: (view_key, offset, size) into the root storage
    if (Array.isArray(view) && view.length === 3) {
      const [, vOffset, vSize] = view;
      if (
        !Number.isSafeInteger(vOffset) || !Number.isSafeInteger(vSize) || (vOffset as number) < 0 ||
        (vSize as number) < 0 || (vOffset as number) + (vSize as number) > root.numel
      ) {
        throw formatError(
          this.file,
          `storage view ${
            shortRepr(view)
          } does not fit storage '${rootKey}' of ${root.numel} elements`,
        );
      }
      const viewKey = `${rootKey}/${typeof view[0] === "string" ? view[0] : shortRepr(view[0])}`;
      let v = this.storages.get(viewKey);
      if (!v) {
        v = { ...root, key: viewKey, numel: Number(view[2]), viewOffset: Number(view[1]), root };
        this.storages.set(viewKey, v);
      }
      return v;
    }
    return root;
  }

  /** The same storage bytes read as another element type (for `_rebuild_tensor_v3`). */
  private reinterpret(storage: unknown, dtype: unknown): unknown {
    if (!isStorageRef(storage)) return storage;
    const name = dtype instanceof PickleGlobal ? dtype.name : String(dtype);
    const target = TORCH_DTYPES[name];
    if (!target) {
      throw formatError(
        this.file,
        `unsupported tensor dtype 'torch.${name}' (storage ${storage.key})`,
      );
    }
    if (target === storage.dtype) return storage;
    if (storage.root) {
      throw formatError(this.file, `cannot reinterpret legacy storage view '${storage.key}'`);
    }
    const cacheKey = `${storage.key}:${target}`;
    let ref = this.storages.get(cacheKey);
    if (!ref) {
      const bytes = storage.numel * SOURCE_DTYPES[storage.dtype].bytes;
      const numel = Math.floor(bytes / SOURCE_DTYPES[target].bytes);
      ref = { ...storage, dtype: target, numel, values: null, claimed: false };
      this.storages.set(cacheKey, ref);
    }
    return ref;
  }

  private rebuild(storage: unknown, offset: unknown, size: unknown, stride: unknown): HostTensor {
    if (!isStorageRef(storage)) {
      throw formatError(this.file, "_rebuild_tensor called without a storage persistent id");
    }
    if (!Number.isSafeInteger(offset) || (offset as number) < 0) {
      throw formatError(this.file, `tensor storage offset ${shortRepr(offset)} is invalid`);
    }
    const shape = toInts(size, this.file, "tensor size");
    const strides = toInts(stride, this.file, "tensor stride");
    if (strides.length !== shape.length) {
      throw formatError(this.file, `tensor size [${shape}] and stride [${strides}] differ in rank`);
    }
    const host = SOURCE_DTYPES[storage.dtype].host;
    const tensor: HostTensor = {
      dtype: host,
      shape,
      data: host === "f32" ? new Float32Array(0) : new Int32Array(0),
      sourceDtype: storage.dtype,
    };
    this.pending.push({ tensor, storage, offset: Number(offset), strides });
    return tensor;
  }

  /**
   * Fills every pending tensor, reading storages through `bytesOf(rootKey, dtype, numel)`, and
   * returns `result` with every integer tensor whose values do not fit int32 replaced by an
   * exact WideIntTensor (refused only if a caller converts it).
   */
  materialize(
    result: unknown,
    bytesOf: (
      key: string,
      dtype: SourceDtype,
      numel: number,
    ) => { bytes: Uint8Array; fresh: boolean },
  ): unknown {
    const wide = new Map<object, WideIntTensor>();
    for (const p of this.pending) {
      const s = p.storage;
      const root = s.root ?? s;
      if (!root.values) {
        const { bytes, fresh } = bytesOf(root.key, root.dtype, root.numel);
        // alias the bytes only when they are our own copy, never a caller's buffer
        root.values = decodeValues(bytes, root.dtype, root.numel, fresh);
        if (root.values.outOfRange) root.raw = bytes;
      }
      const offset = s.viewOffset + p.offset;
      const last = viewExtent(p.tensor.shape, p.strides, offset);
      const limit = s.viewOffset + s.numel;
      if (last >= limit || offset < 0) {
        throw formatError(
          this.file,
          `tensor [${p.tensor.shape}] with stride [${p.strides}] at offset ${p.offset} needs ` +
            `${last - s.viewOffset + 1} elements but storage '${s.key}' has ${s.numel}`,
        );
      }
      const n = numelOf(p.tensor.shape);
      const values = root.values;
      let badIndex = -1;
      if (isContiguous(p.tensor.shape, p.strides)) {
        if (!root.claimed && offset === 0 && n === values.data.length) {
          p.tensor.data = values.data; // the tensor is the whole storage: no copy
          root.claimed = true;
        } else {
          p.tensor.data = values.data.slice(offset, offset + n);
        }
        if (values.outOfRange) badIndex = values.outOfRange.subarray(offset, offset + n).indexOf(1);
      } else {
        // A view names more elements than its storage holds only by repeating them (stride 0,
        // overlapping strides); materialising those is bounded, as a few bytes can name 2^28.
        const allowed = Math.max(s.numel, this.maxExpanded);
        if (n > allowed) {
          throw formatError(
            this.file,
            `tensor [${p.tensor.shape}] with stride [${p.strides}] expands storage '${s.key}' of ` +
              `${s.numel} elements to ${n}, over the limit of ${allowed} (maxExpandedElements)`,
          );
        }
        const g = gatherStrided(values, p.tensor.shape, p.strides, offset);
        p.tensor.data = g.data;
        badIndex = g.badIndex;
      }
      if (badIndex >= 0 && root.raw && isWideDtype(root.dtype)) {
        wide.set(
          p.tensor,
          wideFromBytes(
            root.raw,
            root.dtype,
            root.numel,
            p.tensor.shape,
            p.strides,
            offset,
            this.file,
          ),
        );
      }
    }
    return wide.size ? replaceValues(result, wide) : result;
  }
}

/**
 * Replaces every occurrence of the keys of `swap` inside loaded data (Maps, arrays, Sets and
 * PickleObject fields), returning the new root. Iterative, with a visited set: loaded data can
 * be nested deeper than the call stack and can share containers.
 */
function replaceValues(root: unknown, swap: Map<object, unknown>): unknown {
  const sub = (
    v: unknown,
  ) => (typeof v === "object" && v !== null && swap.has(v) ? swap.get(v) : v);
  const seen = new Set<object>();
  const todo: unknown[] = [root];
  while (todo.length) {
    const v = todo.pop();
    if (typeof v !== "object" || v === null || seen.has(v) || isHostTensor(v)) continue;
    seen.add(v);
    if (v instanceof Map) {
      for (const [k, x] of v) {
        if (x !== sub(x)) v.set(k, sub(x));
        else todo.push(x);
      }
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        if (v[i] !== sub(v[i])) v[i] = sub(v[i]);
        else todo.push(v[i]);
      }
    } else if (v instanceof Set) {
      for (const x of [...v]) {
        if (x !== sub(x)) (v.delete(x), v.add(sub(x)));
        else todo.push(x);
      }
    } else if (v instanceof PickleObject) {
      v.state = sub(v.state);
      todo.push(v.state, v.dictItems, v.listItems, v.args, v.kwargs);
    }
  }
  return sub(root);
}

function isStorageRef(x: unknown): x is StorageRef {
  return typeof x === "object" && x !== null && "dtype" in x && "numel" in x && "claimed" in x;
}

function toInts(x: unknown, file: string, what: string): number[] {
  if (!Array.isArray(x)) throw formatError(file, `${what} is not a tuple`);
  return x.map((v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) {
      throw formatError(file, `${what} has invalid entry ${v}`);
    }
    return n;
  });
}

/**
 * Finds a dotted key path to `target` inside loaded data, for error messages. Iterative and
 * depth-first in document order, so arbitrarily deep data cannot overflow the stack.
 */
export function keyPathOf(root: unknown, target: unknown): string | null {
  const seen = new Set<unknown>();
  const todo: [unknown, string][] = [[root, ""]];
  while (todo.length) {
    const [v, path] = todo.pop()!;
    if (v === target) return path;
    if (typeof v !== "object" || v === null || seen.has(v) || isHostTensor(v)) continue;
    seen.add(v);
    const join = (k: unknown) => (path ? `${path}.${String(k)}` : String(k));
    const children: [unknown, string][] = [];
    if (v instanceof Map) {
      for (const [k, x] of v) children.push([x, join(k)]);
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) children.push([v[i], `${path}[${i}]`]);
    } else if (v instanceof PickleObject) {
      for (const x of [v.state, v.dictItems, v.listItems, v.args]) children.push([x, path]);
    }
    for (let i = children.length - 1; i >= 0; i--) todo.push(children[i]);
  }
  return null;
}

function loadZip(src: ByteSource, maxExpanded?: number): unknown {
  const zip = new ZipReader(src);
  const pklName = zip.names.find((n) => n === "data.pkl" || n.endsWith("/data.pkl"));
  if (!pklName) {
    const sample = zip.names.slice(0, 5).join(", ");
    throw formatError(
      src.name,
      `zip archive has no data.pkl, so it is not a torch.save file (entries: ${sample})`,
    );
  }
  const prefix = pklName.slice(0, pklName.length - "data.pkl".length);
  const byteOrderName = `${prefix}byteorder`;
  const bigEndian = zip.entries.has(byteOrderName) &&
    new TextDecoder().decode(zip.read(byteOrderName)).trim() === "big";
  const rebuilder = new TensorRebuilder(src.name, maxExpanded);
  const { value } = unpickleAt(zip.read(pklName), 0, {
    file: src.name,
    persistentLoad: (pid) => rebuilder.storageFromPid(pid),
    reducers: rebuilder.reducers,
  });
  return rebuilder.materialize(value, (key, dtype, numel) => {
    const entry = `${prefix}data/${key}`;
    if (!zip.entries.has(entry)) {
      throw formatError(src.name, `storage '${key}' missing: no zip entry '${entry}'`);
    }
    const bytes = zip.read(entry);
    const need = numel * SOURCE_DTYPES[dtype].bytes;
    if (bytes.length < need) {
      throw formatError(
        src.name,
        `storage '${key}' holds ${bytes.length} bytes but ${numel} ${dtype} elements need ${need}`,
      );
    }
    if (bigEndian) {
      return { bytes: swapBytes(bytes.subarray(0, need), SOURCE_DTYPES[dtype].bytes), fresh: true };
    }
    return { bytes, fresh: src.fresh };
  });
}

function loadLegacyOrPickle(src: ByteSource, maxExpanded?: number): unknown {
  const bytes = src.read(0, src.size, "whole file");
  const file = src.name;
  const first = unpickleAt(bytes, 0, { file });
  if (first.value !== LEGACY_MAGIC) {
    // Not torch's legacy layout: an ordinary pickle. Tensors in it cannot have storages.
    if (first.end !== bytes.length) {
      throw formatError(
        file,
        `bad magic: first pickle is not torch's magic number and ${
          bytes.length - first.end
        } bytes follow it`,
      );
    }
    return first.value;
  }
  const proto = unpickleAt(bytes, first.end, { file });
  if (proto.value !== LEGACY_PROTOCOL) {
    throw formatError(
      file,
      `unsupported legacy torch protocol ${String(proto.value)} (expected ${LEGACY_PROTOCOL})`,
    );
  }
  const sysInfo = unpickleAt(bytes, proto.end, { file });
  const littleEndian = !(sysInfo.value instanceof Map) ||
    sysInfo.value.get("little_endian") !== false;
  const rebuilder = new TensorRebuilder(file, maxExpanded);
  const body = unpickleAt(bytes, sysInfo.end, {
    file,
    persistentLoad: (pid) => rebuilder.storageFromPid(pid),
    reducers: rebuilder.reducers,
  });
  const keys = unpickleAt(bytes, body.end, { file });
  if (!Array.isArray(keys.value)) {
    throw formatError(file, "legacy torch file: storage key list missing");
  }
  // raw storages follow in key order, each as int64 count + data
  const raws = new Map<string, Uint8Array>();
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = keys.end;
  let swapped = false;
  for (const key of keys.value.map(String)) {
    const ref = rebuilder.storages.get(key);
    if (!ref) {
      throw formatError(file, `legacy torch file lists storage '${key}' that no tensor uses`);
    }
    if (pos + 8 > bytes.length) {
      throw formatError(
        file,
        `truncated: storage '${key}' header at ${pos} beyond file size ${bytes.length}`,
      );
    }
    const count = Number(dv.getBigInt64(pos, littleEndian));
    if (count < 0 || count > bytes.length) {
      throw formatError(file, `storage '${key}' has invalid element count ${count}`);
    }
    const size = count * SOURCE_DTYPES[ref.dtype].bytes;
    pos += 8;
    if (pos + size > bytes.length) {
      throw formatError(
        file,
        `truncated: storage '${key}' needs bytes [${pos}, ${
          pos + size
        }) but the file has ${bytes.length}`,
      );
    }
    const raw = bytes.subarray(pos, pos + size);
    raws.set(key, littleEndian ? raw : swapBytes(raw, SOURCE_DTYPES[ref.dtype].bytes));
    if (!littleEndian) swapped = true;
    pos += size;
  }
  return rebuilder.materialize(body.value, (key, dtype, numel) => {
    const raw = raws.get(key);
    if (!raw) {
      throw formatError(file, `storage '${key}' is used by a tensor but has no data in the file`);
    }
    const need = numel * SOURCE_DTYPES[dtype].bytes;
    if (raw.length < need) {
      throw formatError(
        file,
        `storage '${key}' holds ${raw.length} bytes but ${numel} ${dtype} elements need ${need}`,
      );
    }
    return { bytes: raw, fresh: src.fresh || swapped };
  });
}
