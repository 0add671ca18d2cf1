/**
 * Stage-2 training settings. Keys mirror DiGIT's `config/stage2/dino_base.yaml` and
 * `dino_base_nar.yaml` (fairseq groups); `model._name` picks the variant as there:
 * `st2vtlm` (AR) or `st2vtlm_nar` (MaskGIT).
 */

import { type Infer, s } from "../../core/config.ts";
import { decoderSizeFields, fairseqGroups } from "../transformer/fairseq_config.ts";

export const stage2ConfigSchema = s.object({
  common: fairseqGroups.common,
  checkpoint: fairseqGroups.checkpoint,
  task: s.object({
    /** Semantic token file of the training images (written by the tokenizer). */
    tokens: s.string({ nonEmpty: true, description: "semantic token file of the training set" }),
    /** VQGAN codes of the same images in the same order (written by encode-vqgan). */
    vq_tokens: s.string({
      nonEmpty: true,
      description: "VQ token file of the training set (same images, same order)",
    }),
    valid_tokens: s.string({ description: "semantic token file of the validation set" }).optional(),
    valid_vq_tokens: s.string({ description: "VQ token file of the validation set" }).optional(),
    /** K-Means clusters (DiGIT: 8192). */
    source_vocab_size: s.int({ min: 1 }),
    /** VQGAN codebook size (DiGIT: 1024). */
    target_vocab_size: s.int({ min: 1 }),
  }),
  dataset: fairseqGroups.dataset,
  criterion: fairseqGroups.criterion,
  optimization: fairseqGroups.optimization,
  optimizer: fairseqGroups.optimizer,
  lr_scheduler: fairseqGroups.lr_scheduler,
  model: s.object({
    _name: s.enum(["st2vtlm", "st2vtlm_nar"]).default("st2vtlm"),
    ...decoderSizeFields,
    semantic_input: s.enum(["prefix", "aligned"]).describe(
      "prefix: DiGIT's prefix LM; aligned: semantic token added at its VQ position",
    ).default("prefix"),
    semantic_context: s.int({ min: 1 }).describe(
      "aligned only: side of the semantic neighbourhood (a conv over the token grid) each code reads",
    ).default(1),
    /** The frozen VQGAN whose codes are predicted (used by the pipeline, not by training). */
    vqgan_ckpt_path: s.string().optional(),
  }).default({ _name: "st2vtlm", dropout: 0.1, semantic_input: "prefix", semantic_context: 1 }),
  output: fairseqGroups.output,
});

export type Stage2TrainConfig = Infer<typeof stage2ConfigSchema>;
