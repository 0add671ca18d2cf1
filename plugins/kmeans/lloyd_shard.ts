/**
 * One Lloyd iteration over every feature row, in one process or split over shards (the
 * `kmeans-lloyd-step` step), for feature sets too large for one machine to iterate over:
 *
 *   lloydIteration     one process: every block, folded, written
 *   lloydShard         the blocks of the shard's contiguous slice of rows (shardSlice aligned to
 *                      whole blocks): each block's statistics, float64, never the features
 *   mergeLloydShards   every shard's blocks folded in order, then the same update and files
 *
 * Both paths make the same additions (lloyd_blocks.ts), so n shards give one process's bytes.
 * A shard file holds per block k + k*D + 1 float64 (counts, sums, sum |x|^2): 50 MB a block
 * for 8192 centroids of dimension 768. Each shard also records a SHA-256 of the centroid file
 * it assigned to, and the merge refuses shards that saw other centroids than the file holds
 * now (an earlier iteration re-ran in between: its shard markers cannot tell).
 */

import { joinPath } from "../../core/tasks.ts";
import { ShardError, shardName, shardSlice, sliceFiles, writeSlice } from "../../core/shard.ts";
import type { StepShard } from "../../core/registry.ts";
import { type Centroids, readCentroids, writeCentroids } from "./centroids.ts";
import {
  type BlockOptions,
  type BlockStats,
  blockStats,
  emptyStats,
  foldBlock,
  type LloydReport,
  updateCentroids,
} from "./lloyd_blocks.ts";
import type { KMeansLogger } from "./lloyd.ts";
import { npyRowReader } from "./row_range.ts";

export interface LloydInputs extends BlockOptions {
  /** Feature .npy files, (n_i, D) float32, taken as one matrix in this order. */
  features: readonly string[];
  /** (K, D) float32 .npy: from fit-kmeans or an earlier iteration. */
  centroids: string;
  /** Rows per block of statistics; fixes the float64 rounding, whatever the shard count. */
  blockRows: number;
  log?: KMeansLogger;
}

/** Where an iteration writes: the centroids (the format fit-kmeans writes) and the report. */
export interface LloydOutputs {
  centroids: string;
  report: string;
}

export const LLOYD_REPORT = "lloyd.json";
const BLOCKS_JSON = "lloyd_blocks.json", BLOCKS_DATA = "lloyd_blocks.f64";

interface BlocksRecord {
  k: number;
  dim: number;
  blockRows: number;
  blocks: number;
  centroidsSha256: string;
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function checkBlockRows(blockRows: number): void {
  if (!Number.isSafeInteger(blockRows) || blockRows < 1) {
    throw new Error(`kmeans-lloyd-step: block_rows must be a whole number >= 1, got ${blockRows}`);
  }
}

async function finish(
  old: Centroids,
  total: BlockStats,
  out: LloydOutputs,
  log?: KMeansLogger,
): Promise<LloydReport> {
  const { centroids, report } = updateCentroids(old, total);
  writeCentroids(out.centroids, { data: centroids, k: old.k, dim: old.dim });
  await Deno.writeTextFile(out.report, JSON.stringify(report, null, 2) + "\n");
  log?.info(
    `kmeans-lloyd-step: ${report.rows} rows, inertia ${report.inertia.toPrecision(8)}, ` +
      `imbalance ${report.imbalance.toFixed(3)}, ${report.empty.length} empty clusters kept`,
  );
  if (report.empty.length > 0) {
    log?.warn(
      `kmeans-lloyd-step: clusters ${report.empty.join(", ")} got no rows and keep their centroids`,
    );
  }
  return report;
}

/** The whole iteration in this process. */
export async function lloydIteration(inp: LloydInputs, out: LloydOutputs): Promise<LloydReport> {
  checkBlockRows(inp.blockRows);
  const rows = npyRowReader(inp.features);
  const old = readCentroids(inp.centroids);
  const total = emptyStats(old.k, old.dim);
  const all = { start: 0, end: rows.rows };
  for await (const b of blockStats(rows, old, all, inp.blockRows, inp)) foldBlock(total, b);
  return await finish(old, total, out, inp.log);
}

/** One shard: the statistics of each block of its slice, into its folder (with slice.json). */
export async function lloydShard(inp: LloydInputs, shard: StepShard): Promise<void> {
  const dir = shard.dir;
  checkBlockRows(inp.blockRows);
  const rows = npyRowReader(inp.features);
  const old = readCentroids(inp.centroids);
  const slice = shardSlice(rows.rows, shard, inp.blockRows);
  inp.log?.info(`kmeans-lloyd-step: rows [${slice.start}, ${slice.end}) of ${rows.rows}`);
  let blocks = 0;
  const file = await Deno.open(joinPath(dir, BLOCKS_DATA), { write: true, create: true });
  try {
    for await (const b of blockStats(rows, old, slice, inp.blockRows, inp)) {
      for (const part of [b.counts, b.sums, new Float64Array([b.squares])]) {
        const bytes = new Uint8Array(part.buffer, part.byteOffset, part.byteLength);
        for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
      }
      blocks++;
    }
  } finally {
    file.close();
  }
  const record: BlocksRecord = {
    k: old.k,
    dim: old.dim,
    blockRows: inp.blockRows,
    blocks,
    centroidsSha256: await sha256(inp.centroids),
  };
  await Deno.writeTextFile(joinPath(dir, BLOCKS_JSON), JSON.stringify(record) + "\n");
  await writeSlice(dir, { ...slice, total: rows.rows, unit: "feature rows" });
}

/** Reads exactly `out.length` bytes at the file's current position. */
async function readExactly(file: Deno.FsFile, out: Uint8Array, what: string): Promise<void> {
  for (let got = 0; got < out.length;) {
    const n = await file.read(out.subarray(got));
    if (n === null) throw new ShardError(`${what}: the file ended early`);
    got += n;
  }
}

/** Every shard's blocks folded in shard and block order; then the update, as in one process. */
export async function mergeLloydShards(
  centroidsPath: string,
  blockRows: number,
  shards: readonly StepShard[],
  out: LloydOutputs,
  log?: KMeansLogger,
): Promise<LloydReport> {
  checkBlockRows(blockRows);
  // Checks that the slices tile the rows with no gap or overlap.
  await sliceFiles(shards, BLOCKS_JSON);
  const old = readCentroids(centroidsPath);
  const { k, dim } = old;
  const hash = await sha256(centroidsPath);
  const stale = [];
  const records: BlocksRecord[] = [];
  for (const s of shards) {
    const r = JSON.parse(await Deno.readTextFile(joinPath(s.dir, BLOCKS_JSON))) as BlocksRecord;
    if (r.k !== k || r.dim !== dim || r.blockRows !== blockRows) {
      throw new ShardError(
        `${shardName(s)}: its blocks are of ${r.k} x ${r.dim} centroids and ${r.blockRows} rows, ` +
          `not ${k} x ${dim} and ${blockRows}`,
      );
    }
    if (r.centroidsSha256 !== hash) stale.push(shardName(s));
    records.push(r);
  }
  if (stale.length > 0) {
    throw new ShardError(
      `cannot merge: ${stale.join(", ")} assigned rows to other centroids than ${centroidsPath} ` +
        `holds now (it changed after they ran): run them again with --force`,
    );
  }
  const total = emptyStats(k, dim);
  const block = emptyStats(k, dim);
  const squares = new Float64Array(1);
  for (const [i, s] of shards.entries()) {
    const path = joinPath(s.dir, BLOCKS_DATA);
    const bytes = records[i].blocks * (k + k * dim + 1) * 8;
    const size = (await Deno.stat(path)).size;
    if (size !== bytes) {
      throw new ShardError(`${path}: ${size} bytes, not ${records[i].blocks} blocks (${bytes})`);
    }
    const file = await Deno.open(path, { read: true });
    try {
      for (let b = 0; b < records[i].blocks; b++) {
        for (const part of [block.counts, block.sums, squares]) {
          await readExactly(file, new Uint8Array(part.buffer), `${path}, block ${b}`);
        }
        block.squares = squares[0];
        foldBlock(total, block);
      }
    } finally {
      file.close();
    }
  }
  log?.info(`kmeans-lloyd-step: folded the blocks of ${shards.length} shards`);
  return await finish(old, total, out, log);
}
