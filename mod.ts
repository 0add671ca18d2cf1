/**
 * digit-ts: DiGIT (Zhu et al., NeurIPS 2024) in Deno + TypeScript.
 *
 * The core (tensors, autograd, layers, optimisers, devices, I/O) is re-exported here;
 * plugins live under `plugins/` and are reached through the registry.
 */
export * from "./core/mod.ts";
