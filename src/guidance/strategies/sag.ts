/**
 * Self-attention guidance (Hong et al. 2023) and the degradation baselines of
 * its ablation. The negative branch predicts again from a degraded input:
 * x0 of the source branch, blurred where the captured self-attention is high
 * (SAG) or degraded otherwise (global blur, FFT low-pass, random or square
 * reset), re-noised with the model's own noise (src/guidance/degrade.ts).
 * The source is the null branch when a CFG-family strategy is present, else
 * the conditional one (as the reference: with CFG on the null branch, without
 * on the conditional one). Runs as a second stage. The term is the paper's,
 * in noise space: s·((D − x) − (D(x̃) − x̃)); the guided denoiser compares
 * branches with different inputs that way (guided-denoiser.ts, #mix).
 *
 * SAG's mask source is pluggable (`mask`): the denoiser's own self-attention
 * (the method), or the attention of a second model run on the predicted clean
 * image, e.g. a DINO-style ViT (the paper's ablation; attention-mask.ts).
 * The two frequency baselines are named for what they keep: lowPassGuidance
 * keeps the low frequencies of x0 (drops the high ones), highPassGuidance
 * keeps the high frequencies (drops the low ones); the two degraded images
 * add up to x0.
 */
import { z } from 'zod';

import { selectorSchema } from '../../hooks/site-selectors.js';
import { bounded, finite, guidanceScale, scheduledSchema } from '../options.js';
import type { Branch, Degradation, MaskSource, Strategy } from '../types.js';
import { defineStrategy, hasCfg } from './define.js';
import { modelSchema } from './second-model.js';
import { resolveSites, sitesSchema } from './selectors.js';

const common = {
  /** 0.75 in the paper (diffusers), 0.5 in ComfyUI. */
  scale: guidanceScale.default(0.75),
  kernelSize: z.number().int().positive().max(1023, 'must be at most 1023 (a kernel wider than the image blurs no further)').refine((k) => k % 2 === 1, 'must be odd').default(9),
  blurSigma: bounded(0, 1e4, 'in pixels').refine((v) => v > 0, 'must be positive').default(1),
  /** Which prediction is degraded: 'auto' = null if CFG is stacked, else the conditional one. */
  branch: z.enum(['auto', 'null', 'given']).default('auto'),
};

/** The zod schema of {@link SagOptions}. */
/**
 * Where SAG's mask comes from. 'self': the denoiser's attention at `sites`
 * (SAG itself). 'model': a second TorchScript model with attention (a ViT
 * such as DINO) run on the predicted clean image x0; its captured attention
 * over the patch tokens, resized to the sample and thresholded, is the mask.
 */
export const maskSourceSchema = z.discriminatedUnion('source', [
  z.object({ source: z.literal('self') }).strict(),
  z
    .object({
      source: z.literal('model'),
      /** The mask model: forward(image) with softmax or SDPA attention the addon can capture. */
      model: modelSchema,
      /** Its attention sites to read (union of their masks); default its last self-attention site, as DINO's maps. */
      sites: selectorSchema.optional(),
      /** 'cls': the first token's attention to the patches (DINO); 'sum': the attention each patch receives, summed over queries (SAG's rule). */
      reduce: z.enum(['cls', 'sum']).default('cls'),
      /** Tokens before the patch tokens (a class token, registers). */
      prefixTokens: z.number().int().nonnegative().default(1),
      /** A patch is masked when its weight exceeds threshold × the mean over patches (1: above average). */
      threshold: z.number().nonnegative().default(1),
      /** The mask model sees inputScale · x0 + inputShift (e.g. 0.5 and 0.5 for a model trained on [0, 1] images). */
      inputScale: finite.default(1),
      inputShift: finite.default(0),
    })
    .strict()
    .refine((m) => m.reduce !== 'cls' || m.prefixTokens >= 1, {
      message: "reduce 'cls' reads the first token's row, so prefixTokens must be at least 1",
      path: ['prefixTokens'],
    }),
]);

/**
 * Where SAG's mask comes from: the model's own attention (default), or `{ source: 'model', model, ... }`:
 * the attention a second model (a ViT with attention hooks) pays on the predicted clean image.
 */
export type MaskSourceOptions = z.input<typeof maskSourceSchema>;

/** The zod schema of {@link SagOptions}. */
export const sagSchema = scheduledSchema({
  ...common,
  sites: sitesSchema,
  threshold: bounded(0, 1e6, 'in multiples of the average attention').default(1),
  mask: maskSourceSchema.default({ source: 'self' }),
});
export const blurGuidanceSchema = scheduledSchema(common);
const cutoff = z.number().positive().max(1).default(0.25);
export const lowPassGuidanceSchema = scheduledSchema({ ...common, cutoff });
/** The zod schema of {@link HighPassGuidanceOptions}. */
export const highPassGuidanceSchema = scheduledSchema({ ...common, cutoff });
export const resetGuidanceSchema = scheduledSchema({
  ...common,
  fraction: z.number().positive().max(1).default(0.25),
  patch: z.number().int().positive().default(4),
});

/**
 * Options of {@link sag}: `scale` (default 0.75), `kernelSize` (9), `blurSigma`
 * (1), `sites` (the attention whose map makes the mask), `threshold` (1),
 * `branch`, and the scheduling options (`enabled`, `start`, `stop`, `window`).
 */
export type SagOptions = z.input<typeof sagSchema>;
/** Options of {@link blurGuidance}: as {@link SagOptions} without `sites` and `threshold`. */
export type BlurGuidanceOptions = z.input<typeof blurGuidanceSchema>;
/**
 * Options of {@link lowPassGuidance}: as {@link BlurGuidanceOptions} plus `cutoff`
 * (the kept share of the frequencies, default 0.25).
 */
export type LowPassGuidanceOptions = z.input<typeof lowPassGuidanceSchema>;
/** Options of {@link highPassGuidance}: as {@link LowPassGuidanceOptions} (`cutoff`: the share of the frequencies dropped). */
export type HighPassGuidanceOptions = z.input<typeof highPassGuidanceSchema>;
/**
 * Options of {@link randomResetGuidance} and {@link squareResetGuidance}: as
 * {@link BlurGuidanceOptions} plus `fraction` (the share of the area reset,
 * default 0.25) and `patch` (the random patches' side in pixels, default 4).
 */
export type ResetGuidanceOptions = z.input<typeof resetGuidanceSchema>;

type DegradeSettings = Omit<Degradation, 'source' | 'kind'>;

function degradationStrategy(
  name: string,
  kind: Degradation['kind'],
  settings: { scale: number; kernelSize: number; blurSigma: number; branch: 'auto' | 'null' | 'given' },
  extra: DegradeSettings,
): Omit<Strategy, 'name' | 'settings'> {
  return {
    terms(context) {
      const useNull = settings.branch === 'null' || (settings.branch === 'auto' && hasCfg(context));
      const source: Branch = { model: 'main', condition: useNull ? 'null' : 'given' };
      const sites = extra.sites === undefined ? {} : { sites: resolveSites(extra.sites, name, context) };
      const degrade: Degradation = { ...extra, ...sites, kind, source, kernelSize: settings.kernelSize, blurSigma: settings.blurSigma };
      return [
        {
          label: `${name}(s=${settings.scale})`,
          positive: source,
          negative: { ...source, degrade },
          scale: () => settings.scale,
        },
      ];
    },
  };
}

/**
 * Self-attention guidance (Hong et al. 2023): blurs x0 where the captured
 * attention is high, re-noises it, and guides away from the model's
 * prediction on that input (an eps-space term). Runs as two stages.
 */
export function sag(options: SagOptions = {}): Strategy {
  return defineStrategy('sag', sagSchema, options, (s) => {
    const mask = s.mask;
    if (mask.source === 'self') {
      return degradationStrategy('sag', 'sag', s, { kernelSize: s.kernelSize, blurSigma: s.blurSigma, sites: s.sites, threshold: s.threshold });
    }
    const source: MaskSource = {
      model: mask.model,
      reduce: mask.reduce,
      prefixTokens: mask.prefixTokens,
      threshold: mask.threshold,
      inputScale: mask.inputScale,
      inputShift: mask.inputShift,
      ...(mask.sites === undefined ? {} : { sites: mask.sites }),
    };
    return degradationStrategy('sag', 'sag', s, { kernelSize: s.kernelSize, blurSigma: s.blurSigma, maskSource: source });
  });
}

/** SAG ablation: blur the whole of x0. */
export function blurGuidance(options: BlurGuidanceOptions = {}): Strategy {
  return defineStrategy('blur', blurGuidanceSchema, options, (s) =>
    degradationStrategy('blur', 'blur', s, { kernelSize: s.kernelSize, blurSigma: s.blurSigma }),
  );
}

/** SAG ablation, low-pass baseline: x0 keeps its low frequencies (radius <= cutoff of Nyquist, FFT), loses the high ones. */
export function lowPassGuidance(options: LowPassGuidanceOptions = {}): Strategy {
  return defineStrategy('lowpass', lowPassGuidanceSchema, options, (s) =>
    degradationStrategy('lowpass', 'lowpass', s, { kernelSize: s.kernelSize, blurSigma: s.blurSigma, cutoff: s.cutoff }),
  );
}

/**
 * SAG ablation, high-frequency baseline: x0 keeps its high frequencies
 * (radius > cutoff of Nyquist) and loses the low ones, x0 − lowpass(x0):
 * the complement of lowPassGuidance's degradation at the same cutoff.
 */
export function highPassGuidance(options: HighPassGuidanceOptions = {}): Strategy {
  return defineStrategy('highpass', highPassGuidanceSchema, options, (s) =>
    degradationStrategy('highpass', 'highpass', s, { kernelSize: s.kernelSize, blurSigma: s.blurSigma, cutoff: s.cutoff }),
  );
}

/** SAG ablation: blur random patches covering `fraction` of the area (fresh per evaluation). */
export function randomResetGuidance(options: ResetGuidanceOptions = {}): Strategy {
  return defineStrategy('random-reset', resetGuidanceSchema, options, (s) =>
    degradationStrategy('random-reset', 'random-reset', s, {
      kernelSize: s.kernelSize,
      blurSigma: s.blurSigma,
      fraction: s.fraction,
      patch: s.patch,
    }),
  );
}

/** SAG ablation: blur one centred square covering `fraction` of the area. */
export function squareResetGuidance(options: ResetGuidanceOptions = {}): Strategy {
  return defineStrategy('square-reset', resetGuidanceSchema, options, (s) =>
    degradationStrategy('square-reset', 'square-reset', s, { kernelSize: s.kernelSize, blurSigma: s.blurSigma, fraction: s.fraction }),
  );
}
