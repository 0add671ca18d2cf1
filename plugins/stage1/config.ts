/**
 * Stage-1 training settings. Keys mirror DiGIT's `config/stage1/dino_base.yaml`
 * (fairseq groups) where they mean the same thing, so a DiGIT user recognises them.
 */

import { type Infer, s } from "../../core/config.ts";
import { decoderSizeFields, fairseqGroups } from "../transformer/fairseq_config.ts";

export const stage1ConfigSchema = s.object({
  common: fairseqGroups.common,
  checkpoint: fairseqGroups.checkpoint,
  task: s.object({
    /** Token file written by the tokenizer (train split). */
    tokens: s.string({
      nonEmpty: true,
      description: "token file of the training set (deno task train tokenizer)",
    }),
    valid_tokens: s.string({ description: "token file of the validation set" }).optional(),
    /** K-Means clusters; checked against the token file. */
    target_vocab_size: s.int({ min: 1 }),
  }),
  dataset: fairseqGroups.dataset,
  criterion: fairseqGroups.criterion,
  optimization: fairseqGroups.optimization,
  optimizer: fairseqGroups.optimizer,
  lr_scheduler: fairseqGroups.lr_scheduler,
  model: s.object({
    ...decoderSizeFields,
    class_conditional: s.bool().default(false),
    num_classes: s.int({ min: 1 }).default(1000),
    /**
     * Share of training sequences whose class token is replaced by the unconditional start
     * (</s>), so that classifier-free guidance has a learned unconditional path to mix in
     * (LlamaGen and VAR train with 0.1). Only meaningful with class_conditional.
     */
    class_dropout_prob: s.number({ min: 0, max: 1 }).default(0),
  }),
  output: fairseqGroups.output,
});

export type Stage1TrainConfig = Infer<typeof stage1ConfigSchema>;
