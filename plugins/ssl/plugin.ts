/**
 * The SSL plugin: a discriminative self-supervised encoder trained on the dataset itself,
 * so that K-Means on its patch features gives semantic tokens (DiGIT's premise) without
 * downloading DINOv2. It is also the worked example of a plugin that swaps the encoder.
 *
 *   step     train-ssl-encoder   SimCLR on a dataset -> <dir>/encoder (kind "ssl-encoder")
 *   encoder  ssl-encoder         that checkpoint as a core Encoder (8x8 patch grid at 32 px)
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
import { useDevice } from "../../core/device.ts";
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
        await useDevice(ctx.device);
        const dir = experimentDir(p.output.dir, ctx.stepDir);
        await Deno.mkdir(dir, { recursive: true });
        await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(p, null, 2) + "\n");
        using report = new TrainReporter(dir, ctx.log, {
          signal: ctx.signal,
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
        "a train-ssl-encoder checkpoint: l2-normalised last conv feature map as patch features",
      options: s.object({
        checkpoint: s.string({
          nonEmpty: true,
          description: "<dir>/encoder.json written by train-ssl-encoder",
        }),
        normalize: s.bool({
          description: "l2-normalise each patch feature (K-Means then clusters by cosine)",
        }).default(true),
      }),
      create: async (o, ctx) => {
        await useDevice(ctx.device);
        return await SslEncoder.load(o.checkpoint, o.normalize);
      },
    });
  },
});
