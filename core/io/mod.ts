/** core/io: reading and writing tensors and checkpoints (torch, safetensors, npy/npz, pickle). */

export * from "./errors.ts";
export * from "./host_tensor.ts";
export { type ByteSource, openSource } from "./byte_source.ts";
export {
  numpyDescrToSource,
  NumpyDtype,
  pickleBuildState,
  PickleGlobal,
  PickleObject,
  type PickleReducer,
  PySlice,
  unpickle,
  unpickleAt,
  type UnpickleOptions,
} from "./pickle.ts";
export { keyPathOf, loadTorch, type LoadTorchOptions } from "./torch.ts";
export * from "./safetensors.ts";
export * from "./npy.ts";
export * from "./state_dict.ts";
export * from "./checkpoint.ts";
export * from "./py_config.ts";
export { encodeZip, looksLikeZip, type ZipEntry, ZipReader } from "./zip.ts";
