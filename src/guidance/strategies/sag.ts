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
 */
import { z } from 'zod';

import { bounded, guidanceScale, windowSchema, windowed } from '../options.js';
import type { Branch, Degradation, Strategy } from '../types.js';
import { defineStrategy, hasCfg } from './define.js';
import { sitesSchema } from './selectors.js';

const common = {
  /** 0.75 in the paper (diffusers), 0.5 in ComfyUI. */
  scale: guidanceScale.default(0.75),
  kernelSize: z.number().int().positive().max(1023, 'must be at most 1023 (a kernel wider than the image blurs no further)').refine((k) => k % 2 === 1, 'must be odd').default(9),
  blurSigma: bounded(0, 1e4, 'in pixels').refine((v) => v > 0, 'must be positive').default(1),
  /** Which prediction is degraded: 'auto' = null if CFG is stacked, else the conditional one. */
  branch: z.enum(['auto', 'null', 'given']).default('auto'),
  window: windowSchema.optional(),
};

export const sagSchema = z
  .object({ ...common, sites: sitesSchema, threshold: bounded(0, 1e6, 'in multiples of the average attention').default(1) })
  .strict();
export const blurGuidanceSchema = z.object(common).strict();
export const lowPassGuidanceSchema = z.object({ ...common, cutoff: z.number().positive().max(1).default(0.25) }).strict();
export const resetGuidanceSchema = z
  .object({
    ...common,
    fraction: z.number().positive().max(1).default(0.25),
    patch: z.number().int().positive().max(65536).default(4),
  })
  .strict();

export type SagOptions = z.input<typeof sagSchema>;
export type BlurGuidanceOptions = z.input<typeof blurGuidanceSchema>;
export type LowPassGuidanceOptions = z.input<typeof lowPassGuidanceSchema>;
export type ResetGuidanceOptions = z.input<typeof resetGuidanceSchema>;

type DegradeSettings = Omit<Degradation, 'source' | 'kind'>;

function degradationStrategy(
  name: string,
  kind: Degradation['kind'],
  settings: { scale: number; kernelSize: number; blurSigma: number; branch: 'auto' | 'null' | 'given'; window?: z.output<typeof common.window> },
  extra: DegradeSettings,
): Omit<Strategy, 'name' | 'settings'> {
  return {
    terms(context) {
      const useNull = settings.branch === 'null' || (settings.branch === 'auto' && hasCfg(context));
      const source: Branch = { model: 'main', condition: useNull ? 'null' : 'given' };
      const degrade: Degradation = { ...extra, kind, source, kernelSize: settings.kernelSize, blurSigma: settings.blurSigma };
      return [
        {
          label: `${name}(s=${settings.scale})`,
          positive: source,
          negative: { ...source, degrade },
          scale: windowed(settings.scale, settings.window),
        },
      ];
    },
  };
}

export function sag(options: SagOptions = {}): Strategy {
  return defineStrategy('sag', sagSchema, options, (s) =>
    degradationStrategy('sag', 'sag', s, { kernelSize: s.kernelSize, blurSigma: s.blurSigma, sites: s.sites, threshold: s.threshold }),
  );
}

/** SAG ablation: blur the whole of x0. */
export function blurGuidance(options: BlurGuidanceOptions = {}): Strategy {
  return defineStrategy('blur', blurGuidanceSchema, options, (s) =>
    degradationStrategy('blur', 'blur', s, { kernelSize: s.kernelSize, blurSigma: s.blurSigma }),
  );
}

/** SAG ablation: an FFT low-pass of x0. */
export function lowPassGuidance(options: LowPassGuidanceOptions = {}): Strategy {
  return defineStrategy('lowpass', lowPassGuidanceSchema, options, (s) =>
    degradationStrategy('lowpass', 'lowpass', s, { kernelSize: s.kernelSize, blurSigma: s.blurSigma, cutoff: s.cutoff }),
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
