/**
 * CFG, then APG (diffusers' AdaptiveProjectedMixGuidance, the recipe of
 * HunyuanImage 2.1): plain CFG for the early steps while APG's momentum
 * already runs, then adaptive projected guidance with that momentum:
 *
 *   step <  floor(apgStart · steps):  running Δ ← Δ + β·running;  D = D(∅) + w·Δ
 *   step >= floor(apgStart · steps):  running Δ ← Δ + β·running;  clip ‖running‖ ≤ r;
 *                                     D = D(∅) + w_apg·(Δ⊥ + η·Δ∥)
 *
 * with Δ = D(c) − D(∅) and the projection onto D(c). The APG phase is
 * diffusers' form, D(∅) + w·update, not the APG paper's D(c) + (w − 1)·update
 * that apg() uses: with η = 0 this one also drops the parallel part of Δ
 * from the base. 'original' formulation: D(c) instead of D(∅) as the base in
 * both phases. The momentum lives for one run and is carried across the
 * switch.
 */
import { z } from 'zod';

import type { Tensor } from '../../core/tensor.js';
import { bounded, guidanceScale, scheduledSchema, stepFraction } from '../options.js';
import type { Strategy, TermContext } from '../types.js';
import { apgMomentum, apgUpdate } from './apg.js';
import { defineStrategy, requireConditional } from './define.js';
import { fromSpace, spaceSchema, toSpace } from './space.js';

/** The zod schema of {@link ApgMixOptions}. */
export const apgMixSchema = scheduledSchema({
  /** w of the CFG phase (diffusers' guidance_scale 3.5). */
  scale: guidanceScale.default(3.5),
  /** w of the APG phase (diffusers' adaptive_projected_guidance_scale 10). */
  apgScale: guidanceScale.default(10),
  /** β (diffusers' −0.5); null: no momentum. */
  momentum: bounded(-1, 1, 'a momentum beyond ±1 grows without bound').nullable().default(-0.5),
  /** r, the APG phase's norm clip (diffusers' adaptive_projected_guidance_rescale 10); 0: off. */
  normThreshold: bounded(0, 1e6, 'a clipping radius').default(10),
  /** η, the weight of the parallel part in the APG phase (diffusers' 0). */
  eta: bounded(-10, 10, 'the parallel share of the update; the paper uses 0 to 1').default(0),
  /**
   * Step fraction where APG takes over: APG for step >= floor(apgStart · steps).
   * 0.12 is diffusers' adaptive_projected_guidance_start_step 5 on 50 steps (APG from step 6).
   */
  apgStart: stepFraction.default(0.12),
  formulation: z.enum(['standard', 'original']).default('standard'),
  /** Where the mix is computed; 'x0' as APG's paper. */
  space: spaceSchema.default('x0'),
});

/**
 * Options of {@link apgMix}: `scale` (w of the CFG phase, default 3.5), `apgScale` (w of the APG phase,
 * default 10), `apgStart` (the step fraction APG takes over at), APG's `momentum`, `normThreshold` and
 * `eta`, `formulation`, `space`, and the scheduling options.
 */
export type ApgMixOptions = z.input<typeof apgMixSchema>;

/**
 * diffusers' CFG-then-APG mix: classifier-free guidance for the early steps, adaptive projected guidance
 * (Sadat et al. 2024) after `apgStart`, with APG's momentum carried across the switch.
 */
export function apgMix(options: ApgMixOptions = {}): Strategy {
  return defineStrategy('apg-mix', apgMixSchema, options, (settings) => {
    const { scale, apgScale, momentum, normThreshold, eta, apgStart, formulation, space } = settings;
    // diffusers turns a phase off when its scale is the identity (w = 1, or 0 in the original form).
    const identity = formulation === 'standard' ? 1 : 0;
    return {
      terms(context) {
        requireConditional('apg-mix', context);
        return [
          {
            label: `apg-mix(w=${scale}, w_apg=${apgScale})`,
            positive: { model: 'main', condition: 'given' },
            negative: { model: 'main', condition: 'null' },
            // A marker: the delta computes the whole prediction.
            scale: () => (scale === identity ? 0 : 1),
            delta: (pos: Tensor, neg: Tensor, _s: number, ctx: TermContext) => {
              using c = toSpace(pos, space, ctx);
              using u = toSpace(neg, space, ctx);
              const apgPhase = ctx.step >= Math.floor(apgStart * ctx.steps) && apgScale !== identity;
              let step: Tensor;
              if (apgPhase) {
                using update = apgUpdate(c, u, { momentum, normThreshold, eta }, ctx.state);
                step = update.mul(apgScale);
              } else {
                // The CFG phase only advances the momentum (the APG phase reads it).
                apgMomentum(c.sub(u), momentum, ctx.state).dispose();
                using shift = c.sub(u);
                step = shift.mul(scale);
              }
              using owned = step;
              using guided = (formulation === 'standard' ? u : c).add(owned);
              using d = fromSpace(guided, space, ctx);
              return d.sub(pos);
            },
          },
        ];
      },
    };
  });
}
