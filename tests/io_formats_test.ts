// safetensors, .npy and .npz: reading files written by numpy / by hand in Python, round trips
// through our writers, and corrupt files.

import { expect, it } from "./lib/test.ts";
import { type HostTensor, makeHostTensor, type StateDict } from "../core/io/host_tensor.ts";
import {
  encodeNpy,
  encodeNpz,
  parseNpy,
  readNpy,
  readNpz,
  writeNpy,
  writeNpz,
} from "../core/io/npy.ts";
import { encodeSafetensors, readSafetensors, writeSafetensors } from "../core/io/safetensors.ts";
import { detectFormat, loadStateDict } from "../core/io/state_dict.ts";
import {
  assertRejects,
  assertTensor,
  EXPECTED,
  FIXTURES,
  tempDir,
  tempFile,
} from "./fixtures/io/helpers.ts";

for (const file of ["km.npy", "fortran_f8.npy", "v2_i8.npy", "f2.npy", "u1.npy"]) {
  it(`readNpy ${file} matches numpy`, async () => {
    const [[key, exp]] = Object.entries(EXPECTED[file].tensors);
    assertTensor(await readNpy(FIXTURES + file), exp, file);
    const sd = await loadStateDict(FIXTURES + file);
    assertTensor(sd.get(key), exp, `${file} via loadStateDict`);
  });
}

for (const file of ["arrays.npz", "arrays_deflate.npz", "zip64.npz"]) {
  it(`readNpz ${file} (stored/deflated/zip64) matches numpy`, async () => {
    const sd = await readNpz(FIXTURES + file);
    const exp = EXPECTED[file].tensors;
    expect([...sd.keys()]).toEqual(Object.keys(exp));
    for (const [k, e] of Object.entries(exp)) assertTensor(sd.get(k), e, `${file}:${k}`);
    expect(detectFormat(FIXTURES + file)).toBe("npz");
  });
}

it("hand-written safetensors: all dtypes and metadata", async () => {
  const { tensors, metadata } = await readSafetensors(FIXTURES + "hand.safetensors");
  const exp = EXPECTED["hand.safetensors"];
  expect(metadata).toEqual(exp.metadata);
  expect([...tensors.keys()]).toEqual(Object.keys(exp.tensors));
  for (const [k, e] of Object.entries(exp.tensors)) {
    assertTensor(tensors.get(k), e, `hand.safetensors:${k}`);
  }
  expect(detectFormat(FIXTURES + "hand.safetensors")).toBe("safetensors");
});

function sample(): StateDict {
  return new Map<string, HostTensor>([
    ["a.weight", makeHostTensor([2, 3], Float32Array.from([1.5, -2, 3.25, 0, -0, 1e-30]))],
    ["b.idx", makeHostTensor([4], Int32Array.from([-(2 ** 31), 2 ** 31 - 1, 0, 7]))],
    ["c.scalar", makeHostTensor([], Float32Array.from([NaN]))],
    ["d.empty", makeHostTensor([0, 5], new Float32Array(0))],
  ]);
}

function assertSameDict(got: StateDict, want: StateDict): void {
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [k, t] of want) {
    const g = got.get(k)!;
    expect(g.shape, k).toEqual(t.shape);
    expect(g.dtype, k).toBe(t.dtype);
    for (let i = 0; i < t.data.length; i++) {
      expect(Object.is(g.data[i], t.data[i]), `${k}[${i}]`).toBeTruthy();
    }
  }
}

it("safetensors round trip (memory and file) keeps values, order and 8-byte alignment", async () => {
  const sd = sample();
  const bytes = encodeSafetensors(sd, { note: "x" });
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  expect((8 + headerLen) % 8, "data section starts 8-byte aligned").toBe(0);
  const back = await readSafetensors(bytes);
  assertSameDict(back.tensors, sd);
  expect(back.metadata).toEqual({ note: "x" });
  const path = `${tempDir()}/w.safetensors`;
  await writeSafetensors(path, sd);
  expect(await Deno.readFile(path), "streamed file equals in-memory encoding").toEqual(
    encodeSafetensors(sd),
  );
  assertSameDict(await loadStateDict(path), sd);
});

it("npy/npz round trip; our npy header is byte-identical to numpy's", async () => {
  const km = await Deno.readFile(FIXTURES + "km.npy");
  expect(encodeNpy(parseNpy(km, "km.npy"))).toEqual(km);
  const sd = sample();
  for (const [k, t] of sd) {
    assertSameDict(new Map([[k, parseNpy(encodeNpy(t), k)]]), new Map([[k, t]]));
  }
  const dir = tempDir();
  await writeNpy(`${dir}/one.npy`, sd.get("a.weight")!);
  assertSameDict(await loadStateDict(`${dir}/one.npy`), new Map([["one", sd.get("a.weight")!]]));
  await writeNpz(`${dir}/all.npz`, sd);
  assertSameDict(await readNpz(`${dir}/all.npz`), sd);
  assertSameDict(await readNpz(encodeNpz(sd)), sd);
});

it("corrupt safetensors: header beyond file, bad JSON, unknown dtype, short data", async () => {
  const good = await Deno.readFile(FIXTURES + "hand.safetensors");
  const huge = good.slice();
  new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
  await assertRejects(
    () => readSafetensors(huge, { name: "huge.st" }),
    "huge.st",
    "header length",
    "beyond file size",
  );
  const path = tempFile("cut.safetensors", good.subarray(0, good.length - 5));
  await assertRejects(
    () => readSafetensors(path),
    path,
    "truncated",
    "'f_f64' ends at data byte 98",
  );
  const enc = (header: string, data = new Uint8Array(0)) => {
    const h = new TextEncoder().encode(header);
    const out = new Uint8Array(8 + h.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    out.set(data, 8 + h.length);
    return out;
  };
  await assertRejects(
    () =>
      readSafetensors(
        enc('{"x": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}', new Uint8Array(1)),
        { name: "f8.st" },
      ),
    "f8.st",
    "unknown dtype 'F8_E4M3'",
    "'x'",
  );
  await assertRejects(
    () =>
      readSafetensors(
        enc('{"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}', new Uint8Array(8)),
        { name: "span.st" },
      ),
    "span.st",
    "needs 12 bytes",
  );
  await assertRejects(
    () => readSafetensors(enc("{not json"), { name: "json.st" }),
    "json.st",
    "not valid JSON",
  );
});

it("corrupt npy/npz: bad magic, truncated data, header beyond file, CRC mismatch", async () => {
  const km = await Deno.readFile(FIXTURES + "km.npy");
  expect(() => parseNpy(km.subarray(0, km.length - 4), "km.npy")).toThrow(
    /km\.npy.*truncated npy.*needs 512 data bytes/,
  );
  expect(() => parseNpy(km.subarray(0, 40), "km.npy")).toThrow(
    /km\.npy.*header length 118 beyond file size 40/,
  );
  const bad = km.slice();
  bad[1] = 0x58;
  expect(() => parseNpy(bad, "km.npy")).toThrow(/km\.npy.*bad magic/);
  const cplx = km.slice();
  cplx.set([0x3c, 0x63, 0x38], km.indexOf(0x3c)); // '<f4' -> '<c8'
  expect(km.indexOf(0x3c), "descr sits at its usual place in numpy's header").toBe(21);
  expect(() => parseNpy(cplx, "c.npy")).toThrow(/c\.npy.*unsupported npy dtype '<c8'/);

  const npz = (await Deno.readFile(FIXTURES + "arrays.npz")).slice();
  const at = npz.indexOf(0x93, 40); // inside the first entry's data (its \x93NUMPY magic is at ~30)
  npz[at + 120] ^= 1;
  const path = tempFile("flip.npz", npz);
  await assertRejects(() => readNpz(path), path, "CRC mismatch");
});
