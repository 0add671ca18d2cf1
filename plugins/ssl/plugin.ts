/**
 * The SSL plugin: a discriminative self-supervised encoder trained on the dataset itself,
 * so that K-Means on its patch features gives semantic tokens (DiGIT's premise) without
 * downloading DINOv2. It is also the worked example of a plugin that swaps the encoder.
 *
 *   step     train-ssl-encoder   SimCLR (+ patch-to-image term) on a dataset -> <dir>/encoder
 *                                (kind "ssl-encoder")
 *   encoder  ssl-encoder         that checkpoint as a core Encoder (8x8 patch grid at 32 px)
 *
 * Choices, measured on 32x32 shapes (2048 training / 512 held-out images, K = 64 tokens,
 * logistic regression on each image's token histogram; random projection: 18%):
 *   - SimCLR on RGB learns shapes very slowly here (a bag-of-tokens probe of 23-26% after
 *     60-300 updates: random colours and contrast polarity hide the silhouettes). A fixed
 *     Sobel front end (model.input "edges") is colour- and polarity-free: 44% after 100.
 *   - Crops from 70% of the area rather than SimCLR's 20% (53% vs 44%); flips help (43% without
 *     the vertical one); rotation, blur and pixel noise did not (50%, 31%).
 *   - The mean feature is linearly 75-80% class-informative, but its patches' K-Means tokens
 *     only 53%: the patch-to-image term (loss.patch_weight) makes every patch find its image's
 *     other view, and lifts the tokens to 56-60% after 100 updates; clustering the patches
 *     after the projection head (encoder option features: head), the space that term
 *     trained, gives 79% (62% on the backbone map of the same 150-update encoder).
 *
 * In a task:
 *
 *   - name: ssl
 *     type: train-ssl-encoder
 *     params: { dataset: { source: { kind: shapes, size: 32, length: 2048, seed: 0 } } }
 *   - name: tokenizer
 *     type: train-tokenizer
 *     params:
 *       encoder: { name: ssl-encoder, options: { checkpoint: "${steps.ssl.outputs.checkpoint}" } }
 */

import { s } from "../../core/config.ts";
import { definePlugin } from "../../core/registry.ts";
import { experimentDir, experimentPath } from "../../core/tasks.ts";
import { TrainReporter } from "../../core/train/reporter.ts";
import { sslTrainConfigSchema } from "./config.ts";
import { SslEncoder } from "./encoder.ts";
import { trainSslFromConfig } from "./train.ts";

export default definePlugin({
  name: "digit-ssl",
  version: "0.1.0",
  description:
    "a self-supervised (SimCLR) patch encoder trained on the dataset: semantic tokens without downloads",
  register(r) {
    r.step({
      name: "train-ssl-encoder",
      description:
        "train a small conv encoder with SimCLR (crops + colour distortion, NT-Xent) on a dataset",
      params: sslTrainConfigSchema,
      outputs: (p) => ({ checkpoint: experimentPath(p.output.dir, "encoder.json") }),
      run: async (p, ctx) => {
        const dir = experimentDir(p.output.dir, ctx.stepDir);
        await Deno.mkdir(dir, { recursive: true });
        await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(p, null, 2) + "\n");
        using report = new TrainReporter(dir, ctx.log, {
          signal: ctx.signal,
          fresh: ctx.fresh,
          label: "ssl",
          unit: "img",
        });
        const run = await trainSslFromConfig(p, dir, report.hooks);
        run.model.dispose();
        report.finish(run.result);
      },
    });
    r.encoder({
      name: "ssl-encoder",
      description:
        "a train-ssl-encoder checkpoint: l2-normalised patch features of its last conv map (through the head)",
      options: s.object({
        checkpoint: s.string({
          nonEmpty: true,
          description: "<dir>/encoder.json written by train-ssl-encoder",
        }),
        features: s.enum(["head", "backbone"]).default("head")
          .describe(
            "head: each patch through the projection head (trained by the patch-to-image term); backbone: the conv map",
          ),
        normalize: s.bool({
          description: "l2-normalise each patch feature (K-Means then clusters by cosine)",
        }).default(true),
      }),
      create: async (o) => {
        return await SslEncoder.load(o.checkpoint, o.features, o.normalize);
      },
    });
  },
});
