/**
 * Fitting the centroids on dumped features (DiGIT preprocess/cluster_kmeans.py, faiss
 * backend): every shard of a complete dump is streamed through fitKMeans, and the result is
 * saved as DiGIT's km_{K//1000}k.npy, (K, D) float32.
 */

import { centroidFileName, writeCentroids } from "../kmeans/centroids.ts";
import { fitKMeans, type KMeansOptions, type KMeansResult } from "../kmeans/lloyd.ts";
import { npyFilesSource } from "../kmeans/source.ts";
import { readManifest } from "./dump.ts";

export interface FitCentroidsOptions extends KMeansOptions {
  /** Output .npy; default `<features folder>/km_{K//1000}k.npy`. */
  out?: string;
}

export async function fitCentroids(
  manifestPath: string,
  opts: FitCentroidsOptions,
): Promise<{ path: string; result: KMeansResult }> {
  const manifest = await readManifest(manifestPath);
  const dir = manifestPath.includes("/")
    ? manifestPath.slice(0, manifestPath.lastIndexOf("/"))
    : ".";
  if (!manifest.complete) {
    throw new Error(
      `fit-kmeans: ${manifestPath} is an unfinished dump; run dump-features again to complete it`,
    );
  }
  const source = npyFilesSource(manifest.shards.map((s) => `${dir}/${s.file}`));
  if (source.dim !== manifest.dim) {
    throw new Error(
      `fit-kmeans: the shards have dimension ${source.dim} but ${manifestPath} says ${manifest.dim}`,
    );
  }
  const spillPath = opts.spillPath ?? `${dir}/kmeans_subsample.npy.tmp`;
  let result: KMeansResult;
  try {
    result = await fitKMeans(source, { ...opts, spillPath });
  } finally {
    await Deno.remove(spillPath).catch(() => {});
  }
  const path = opts.out ?? `${dir}/${centroidFileName(opts.k)}`;
  writeCentroids(path, { data: result.centroids, k: result.k, dim: result.dim });
  opts.log?.info(`fit-kmeans: wrote ${result.k} x ${result.dim} centroids to ${path}`);
  return { path, result };
}
