/** Running a Python peer (numpy, PyTorch, faiss) in the same benchmark run. */

import { openblas } from "../core/native/openblas.ts";

export const PYTHON = "/usr/bin/python3";

/**
 * The peer's environment: two OpenMP threads, and the OpenBLAS kernels ours run. Loading
 * OpenBLAS sets OPENBLAS_CORETYPE from the CPU flags when the user did not (an OpenBLAS older
 * than the CPU would take SSE3 kernels), and numpy and PyTorch here call the same library.
 */
function peerEnv(): Record<string, string> {
  openblas();
  const core = Deno.env.get("OPENBLAS_CORETYPE");
  return { OMP_NUM_THREADS: "2", ...(core ? { OPENBLAS_CORETYPE: core } : {}) };
}

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
      env: peerEnv(),
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

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
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

/**
 * A Python peer kept running across an interleaved comparison. `code` sets up the model
 * once and defines `measure()`, which runs the workload once and returns a dict of
 * numbers (e.g. {"seconds": ...}); each `measure()` call here runs it once more. The
 * process waits on stdin between calls, so it takes no CPU while ours runs.
 */
export class PeerProcess {
  private lines: AsyncIterator<string>;
  private constructor(
    readonly name: string,
    private child: Deno.ChildProcess,
    private stdin: WritableStreamDefaultWriter<Uint8Array>,
  ) {
    this.lines = readLines(child.stdout);
  }

  /** Starts the peer; null (and says why) when Python or a module is missing. */
  static async start(name: string, code: string): Promise<PeerProcess | null> {
    const driver = `${code}
import json as _json, sys as _sys
print(_json.dumps({"ready": 1}), flush=True)
for _line in _sys.stdin:
    if _line.strip() != "run":
        break
    print(_json.dumps(measure()), flush=True)
`;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(PYTHON, {
        args: ["-c", driver],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        env: peerEnv(),
      }).spawn();
    } catch (e) {
      console.log(`  peer ${name}: skipped (${PYTHON} not runnable: ${(e as Error).message})`);
      return null;
    }
    const peer = new PeerProcess(name, child, child.stdin.getWriter());
    const first = await peer.lines.next();
    if (first.done) {
      await peer.stdin.close().catch(() => {});
      const out = await child.output().catch(() => null);
      const err = out ? new TextDecoder().decode(out.stderr).trim().split("\n").pop() : "";
      console.log(`  peer ${name}: skipped (${err || "exited"})`);
      return null;
    }
    return peer;
  }

  /** Runs the workload once in the peer. */
  async measure(): Promise<Record<string, number>> {
    await this.stdin.write(new TextEncoder().encode("run\n"));
    const line = await this.lines.next();
    if (line.done) throw new Error(`peer ${this.name} exited`);
    return JSON.parse(line.value);
  }

  async close(): Promise<void> {
    await this.stdin.close().catch(() => {});
    await this.child.stderr.cancel().catch(() => {});
    await this.child.status;
  }
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line.startsWith("{")) yield line;
    }
  }
}

/** Median, min and max of ours / peer over the rounds of an interleaved comparison. */
export interface Interleaved {
  ours: number[];
  peer: number[];
  /** ours / peer seconds per round (below 1: ours is faster). */
  ratios: number[];
}

/**
 * The comparison protocol: ours and the peer alternate, A B A B ..., `rounds` times (at
 * least 3), each side running its workload once per round (after one warm-up run each),
 * so that a load change on the machine hits both sides alike. `ours` and the peer's
 * `key` give seconds per run. Prints ours, the peer, and ours / peer as median
 * [min, max] over the rounds; the ratio is time over time, so below 1.0 means faster.
 * With no peer, prints ours alone and returns null.
 */
export async function interleave(
  label: string,
  rounds: number,
  ours: () => number | Promise<number>,
  peer: PeerProcess | null,
  key = "seconds",
): Promise<Interleaved | null> {
  rounds = Math.max(3, rounds);
  await ours();
  if (peer) await peer.measure();
  const o: number[] = [], p: number[] = [], r: number[] = [];
  for (let i = 0; i < rounds; i++) {
    o.push(await ours());
    if (peer) {
      p.push((await peer.measure())[key]);
      r.push(o[i] / p[i]);
    }
  }
  const mm = (xs: number[], f: (x: number) => string) =>
    `${f(median(xs))} [${f(Math.min(...xs))}, ${f(Math.max(...xs))}]`;
  const sec = (x: number) => x.toFixed(3);
  console.log(
    `${label}: ours ${mm(o, sec)} s` +
      (peer
        ? `, ${peer.name} ${mm(p, sec)} s, ratio ours/${peer.name} ${
          mm(r, (x) => x.toFixed(2))
        } (median [min, max] of ${rounds} interleaved rounds)`
        : ` (median [min, max] of ${rounds} rounds; peer skipped)`),
  );
  return peer ? { ours: o, peer: p, ratios: r } : null;
}

/** Seconds of one call. */
export async function timed(fn: () => unknown | Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
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
