/**
 * Plain data out of the configuration objects that checkpoints pickle.
 *
 * fairseq stores `cfg` as an omegaconf DictConfig (older files: `args`, an argparse.Namespace).
 * The unpickler keeps those as inert PickleObjects whose state mirrors omegaconf's internals:
 * DictConfig/ListConfig keep their children in `_content`, leaf nodes (AnyNode, IntegerNode, …)
 * their value in `_val`. `configToPlain` unwraps that into ordinary objects and arrays, so a
 * reader can write `cfg.model.decoder_layers`.
 */

import { formatError } from "./errors.ts";
import { PickleObject } from "./pickle.ts";

/** Real configs nest a few levels; a hostile pickle can nest millions, past the call stack. */
const MAX_DEPTH = 512;

const DICT_CONFIG = "omegaconf.dictconfig.DictConfig";
const LIST_CONFIG = "omegaconf.listconfig.ListConfig";
const NAMESPACE = "argparse.Namespace";

function stateOf(o: PickleObject): Map<unknown, unknown> {
  return o.state instanceof Map ? o.state : new Map();
}

/**
 * Converts DictConfig/ListConfig/nodes/Namespace and string-keyed Maps into plain JS data.
 * `file` names the checkpoint in the error for a config nested deeper than MAX_DEPTH.
 */
export function configToPlain(value: unknown, file = "<config>"): unknown {
  const done = new Map<unknown, unknown>();
  let depth = 0;
  const convert = (v: unknown): unknown => {
    if (typeof v !== "object" || v === null) return v;
    if (done.has(v)) return done.get(v);
    if (depth >= MAX_DEPTH) {
      throw formatError(file, `config nested deeper than ${MAX_DEPTH} levels`);
    }
    depth++;
    try {
      return convertObject(v);
    } finally {
      depth--;
    }
  };
  const convertObject = (v: object): unknown => {
    if (v instanceof PickleObject) {
      const name = v.className;
      if (name === DICT_CONFIG || name === LIST_CONFIG) {
        const content = stateOf(v).get("_content");
        return convert(content ?? null);
      }
      if (name.startsWith("omegaconf.nodes.")) return convert(stateOf(v).get("_val") ?? null);
      if (name === NAMESPACE) return convert(stateOf(v));
      return v;
    }
    if (Array.isArray(v)) {
      const out: unknown[] = [];
      done.set(v, out);
      for (const x of v) out.push(convert(x));
      return out;
    }
    if (v instanceof Map) {
      if ([...v.keys()].every((k) => typeof k === "string")) {
        const out: Record<string, unknown> = {};
        done.set(v, out);
        for (const [k, x] of v) out[k as string] = convert(x);
        return out;
      }
      const out = new Map<unknown, unknown>();
      done.set(v, out);
      for (const [k, x] of v) out.set(k, convert(x));
      return out;
    }
    return v;
  };
  return convert(value);
}
