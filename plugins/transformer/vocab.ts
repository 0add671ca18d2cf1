/**
 * What the stage-1 and stage-2 models share: fairseq's dictionary conventions and the
 * named GPT sizes.
 *
 * Token ids follow fairseq's dictionary: <s>=0, <pad>=1, </s>=2, <unk>=3, <n>=4; the
 * model's own symbols (semantic clusters, VQ codes) start at 5.
 */

export const SPECIALS = { bos: 0, pad: 1, eos: 2, unk: 3, newline: 4, count: 5 } as const;

export interface DecoderSize {
  layers: number;
  dim: number;
  heads: number;
  ffnDim: number;
  dropout: number;
}

/** Named sizes. `base` and `large` are the paper's; the small ones run on a CPU. */
export const DECODER_PRESETS: Record<string, DecoderSize> = {
  tiny: { layers: 2, dim: 64, heads: 4, ffnDim: 256, dropout: 0.1 },
  small: { layers: 4, dim: 128, heads: 4, ffnDim: 512, dropout: 0.1 },
  medium: { layers: 8, dim: 512, heads: 8, ffnDim: 2048, dropout: 0.1 },
  base: { layers: 16, dim: 1024, heads: 16, ffnDim: 4096, dropout: 0.1 },
  /** Width 1536 is published; depth 24 and FFN 6144 are inferred from 732M parameters. */
  large: { layers: 24, dim: 1536, heads: 16, ffnDim: 6144, dropout: 0.1 },
};
