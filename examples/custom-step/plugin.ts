/**
 * A custom task step, complete: `token-stats` reads a token file (what the tokenizer and
 * the stage-1 sampler write) and reports how the vocabulary is used: entropy, perplexity,
 * unused and most frequent tokens, per class when the file has labels.
 *
 *   deno task run examples/custom-step/task.yaml
 *
 * A step type is a name, a params schema (checked, with defaults, before anything runs),
 * the outputs it promises (relative paths land in the step's own folder, and later steps
 * can reference them as ${steps.<name>.outputs.<key>}), and `run`. The task runner marks a
 * step finished when `run` returns and every output exists; a re-run with the same params
 * skips it.
 */

import { s } from "../../core/config.ts";
import { readTokenFile } from "../../core/io/tokens.ts";
import { definePlugin } from "../../core/registry.ts";

export interface TokenUsage {
  images: number;
  tokensPerImage: number;
  vocab: number;
  /** Entropy of the token frequencies, in bits. */
  entropyBits: number;
  /** 2^entropy: how many tokens are "in use" on average. */
  perplexity: number;
  unused: number;
  top: { token: number; share: number }[];
}

/** Usage statistics of `tokens` (ids in 0..vocab-1). */
export function tokenUsage(
  tokens: Int32Array,
  vocab: number,
  images: number,
  top: number,
): TokenUsage {
  const counts = new Float64Array(vocab);
  for (const t of tokens) counts[t]++;
  let entropy = 0;
  for (const c of counts) if (c > 0) entropy -= (c / tokens.length) * Math.log2(c / tokens.length);
  const order = Array.from(counts.keys()).sort((a, b) => counts[b] - counts[a]);
  return {
    images,
    tokensPerImage: images > 0 ? tokens.length / images : 0,
    vocab,
    entropyBits: entropy,
    perplexity: 2 ** entropy,
    unused: counts.filter((c) => c === 0).length,
    top: order.slice(0, top).map((token) => ({ token, share: counts[token] / tokens.length })),
  };
}

export default definePlugin({
  name: "example-token-stats",
  version: "0.1.0",
  description: "example: a custom step that reports how a token file uses its vocabulary",
  register(r) {
    r.step({
      name: "token-stats",
      description:
        "entropy, perplexity and most frequent tokens of a token file (overall and per class)",
      params: s.object({
        tokens: s.string({ nonEmpty: true, description: "token file (core/io/tokens.ts)" }),
        top: s.int({ min: 1 }).default(5).describe("how many of the most frequent tokens to list"),
      }),
      outputs: () => ({ report: "token-stats.json" }),
      run: async (p, ctx) => {
        const file = await readTokenFile(p.tokens);
        const L = file.height * file.width;
        const report: { all: TokenUsage; classes: Record<string, TokenUsage> } = {
          all: tokenUsage(file.tokens, file.vocab, file.count, p.top),
          classes: {},
        };
        ctx.log.info(
          `${p.tokens}: ${file.count} images x ${L} tokens, vocabulary ${file.vocab}: ` +
            `perplexity ${report.all.perplexity.toFixed(1)}, ${report.all.unused} unused`,
        );
        if (file.labels) {
          const labels = Array.from(file.labels);
          for (const cls of [...new Set(labels)].sort((a, b) => a - b)) {
            ctx.signal.throwIfAborted(); // long loops stop at Ctrl-C
            const rows = labels.flatMap((y, i) => (y === cls ? [i] : []));
            const mine = new Int32Array(rows.length * L);
            rows.forEach((row, j) => mine.set(file.tokens.subarray(row * L, (row + 1) * L), j * L));
            const usage = tokenUsage(mine, file.vocab, rows.length, p.top);
            report.classes[cls] = usage;
            ctx.log.info(
              `  class ${cls}: perplexity ${usage.perplexity.toFixed(1)}, top token ${
                usage.top[0]?.token
              }`,
            );
          }
        }
        await Deno.writeTextFile(ctx.outputs.report, JSON.stringify(report, null, 2) + "\n");
      },
    });
  },
});
