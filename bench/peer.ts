/** Running a Python peer (numpy, PyTorch, faiss) in the same benchmark run. */

export const PYTHON = "/usr/bin/python3";

/**
 * Runs a Python snippet that prints one JSON object on its last line. Returns null (and
 * says why) when Python or a module is missing, so a benchmark can skip its peer cleanly.
 */
export async function runPeer(name: string, code: string): Promise<Record<string, number> | null> {
  try {
    const out = await new Deno.Command(PYTHON, {
      args: ["-c", code],
      stdout: "piped",
      stderr: "piped",
      env: { OMP_NUM_THREADS: "2" },
    }).output();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").pop();
      console.log(`  peer ${name}: skipped (${err})`);
      return null;
    }
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    return JSON.parse(lines[lines.length - 1]);
  } catch (e) {
    console.log(`  peer ${name}: skipped (${PYTHON} not runnable: ${(e as Error).message})`);
    return null;
  }
}

/** Best-of-n wall time in seconds of an async or sync function. */
export async function bestOf(n: number, fn: () => unknown | Promise<unknown>): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    best = Math.min(best, (performance.now() - t) / 1000);
  }
  return best;
}

export function ratioLine(
  label: string,
  ours: number,
  peer: number | undefined,
  unit: string,
  higherIsBetter: boolean,
) {
  const r = peer === undefined ? "n/a" : (higherIsBetter ? ours / peer : ours / peer).toFixed(2);
  console.log(
    `${label}: ours ${ours.toFixed(3)} ${unit}, peer ${
      peer === undefined ? "skipped" : peer.toFixed(3) + " " + unit
    }, ratio ${r}`,
  );
}
