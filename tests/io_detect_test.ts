/** Format detection must not mistake a safetensors header length of 0x..80 for a pickle. */

import { expect, it } from "./lib/test.ts";
import { detectFormat, loadStateDict } from "../core/io/state_dict.ts";
import { writeSafetensors } from "../core/io/safetensors.ts";

it("a safetensors file whose header length starts with byte 0x80 is detected as safetensors", async () => {
  const dir = await Deno.makeTempDir();
  // Grow a key name until the JSON header (padded to 8) is 0x180 = 384 bytes long.
  for (let pad = 0; pad < 400; pad++) {
    const path = `${dir}/w.safetensors`;
    const key = "k" + "x".repeat(pad);
    await writeSafetensors(
      path,
      new Map([[key, {
        dtype: "f32",
        shape: [2],
        data: new Float32Array([1, 2]),
        sourceDtype: "f32",
      }]]),
    );
    const head = (await Deno.readFile(path)).subarray(0, 1)[0];
    if (head !== 0x80) continue;
    expect(detectFormat(path)).toBe("safetensors");
    expect(Array.from((await loadStateDict(path)).get(key)!.data)).toEqual([1, 2]);
    await Deno.remove(dir, { recursive: true });
    return;
  }
  expect.unreachable("could not make a header of length 0x..80");
});
