/**
 * K-Means for the DiGIT tokenizer: faiss-like Lloyd iterations over features that may be
 * sharded on disk, distances through the tensor runtime's matmul, centroids as DiGIT's .npy.
 */

export { CentroidIndex } from "./assign.ts";
export {
  centroidFileName,
  type Centroids,
  centroidsFromHost,
  readCentroids,
  writeCentroids,
} from "./centroids.ts";
export {
  INIT_METHODS,
  type InitMethod,
  kmeansPlusPlusInit,
  kmeansPlusPlusInMemory,
  randomInit,
} from "./init.ts";
export {
  evaluateKMeans,
  fitKMeans,
  type IterationStats,
  type KMeansLogger,
  type KMeansOptions,
  type KMeansResult,
  splitEmptyClusters,
  trainingSet,
} from "./lloyd.ts";
export {
  npyMatrixInfo,
  NpyMatrixWriter,
  readNpyMatrix,
  readNpyRows,
  writeNpyMatrix,
} from "./npy_matrix.ts";
export {
  type FeatureSource,
  gatherRows,
  memorySource,
  npyFilesSource,
  permutationPrefix,
  type RowBlock,
  sampleRows,
  subsetSource,
} from "./source.ts";
