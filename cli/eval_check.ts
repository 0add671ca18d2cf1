/**
 * What `deno task eval` checks before any work: that every file it will read exists. A missing
 * folder or weight file is a mistake on the command line (exit 2, naming the file), and is
 * reported at once rather than once the step has started, or after the reference pass.
 */

import { ConfigError } from "../core/config.ts";
import { WEIGHT_FILES } from "../plugins/inception/weights.ts";
import { WEIGHTS_ENV } from "../plugins/metrics/eval.ts";

async function stat(path: string): Promise<Deno.FileInfo | null> {
  return await Deno.stat(path).catch(() => null);
}

const WEIGHT_NAMES = Object.values(WEIGHT_FILES).map((w) => w.file);

/** Why the Inception weights cannot be read, or null when they can. */
async function weightsProblem(path: string | undefined): Promise<string | null> {
  const names = WEIGHT_NAMES.join(" or ");
  if (path === undefined) {
    return `eval: FID, IS and precision/recall need the FID Inception-v3 weights (${names}): ` +
      `give --set inception_weights=FILE or set $${WEIGHTS_ENV}`;
  }
  const info = await stat(path);
  if (info === null) return `eval: Inception weights '${path}' do not exist (${names})`;
  if (!info.isDirectory) return null;
  for (const name of WEIGHT_NAMES) {
    if ((await stat(`${path.replace(/\/+$/, "")}/${name}`))?.isFile) return null;
  }
  return `eval: the Inception weights folder '${path}' holds neither ${names}`;
}

/** The eval step's params after validation (the keys this check reads). */
export interface EvalInputs {
  generated: string;
  reference?: string;
  metrics: string[];
  inception_weights?: string;
  domain_classifier?: string;
}

/** Throws a ConfigError naming every input of `eval` that is missing. */
export async function checkEvalInputs(p: EvalInputs): Promise<void> {
  const problems: string[] = [];
  const generated = await stat(p.generated);
  if (generated === null) problems.push(`eval: generated images '${p.generated}' do not exist`);
  else if (!generated.isDirectory) {
    problems.push(`eval: generated images '${p.generated}' is not a folder`);
  }
  if (p.reference !== undefined && (await stat(p.reference)) === null) {
    problems.push(`eval: reference '${p.reference}' does not exist`);
  }
  if (p.metrics.some((m) => m === "fid" || m === "is" || m === "prc")) {
    const problem = await weightsProblem(p.inception_weights ?? Deno.env.get(WEIGHTS_ENV));
    if (problem !== null) problems.push(problem);
  }
  const classifier = p.domain_classifier?.replace(/\.json$/, "");
  if (p.metrics.includes("domain") && classifier !== undefined) {
    if (!(await stat(`${classifier}.json`))?.isFile) {
      problems.push(`eval: domain classifier '${classifier}.json' does not exist`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
}
