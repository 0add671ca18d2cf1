/**
 * What every optional native library here shares: an environment switch to turn it off,
 * permission checks that never prompt (a prompt would stall a test run), and opening the
 * first of several candidate paths. Callers fall back to TypeScript when `openFirst`
 * returns a failure instead of a library.
 */

/** Checks a permission without ever prompting. */
export function granted(desc: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(desc).state === "granted";
  } catch {
    return false;
  }
}

export function readEnv(name: string): string | undefined {
  return granted({ name: "env", variable: name }) ? Deno.env.get(name) : undefined;
}

export type Opened<S extends Deno.ForeignLibraryInterface> =
  | { lib: Deno.DynamicLibrary<S>; path: string }
  | { failure: string };

/**
 * Opens the first loadable candidate, unless `envSwitch` is set to off/0/false/no/none.
 * `hint` says how to install the library; it ends the failure message.
 */
export function openFirst<S extends Deno.ForeignLibraryInterface>(
  name: string,
  candidates: readonly string[],
  symbols: S,
  envSwitch: string,
  hint: string,
): Opened<S> {
  if (typeof Deno === "undefined" || typeof Deno.dlopen !== "function") {
    return { failure: "no FFI in this runtime" };
  }
  const env = readEnv(envSwitch);
  if (env && /^(off|0|false|no|none)$/i.test(env)) return { failure: `${envSwitch}=${env}` };
  if (!granted({ name: "ffi" })) return { failure: `${name} not loaded: run with --allow-ffi` };
  let lastError = "";
  for (const path of candidates) {
    try {
      return { lib: Deno.dlopen(path, symbols), path };
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
    }
  }
  return { failure: `${name} not found: ${hint} (last error: ${lastError})` };
}
