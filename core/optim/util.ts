import type { Storage } from "../backend.ts";
import { Tensor } from "../tensor.ts";

export const tensorOf = (s: Storage) => Tensor.fromStorage(s, [s.length]);
