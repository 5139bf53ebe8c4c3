/**
 * Adaptive projected guidance (Sadat et al. 2024, "Eliminating
 * oversaturation and artifacts of high guidance scales"), in x0 space as the
 * paper defines it:
 *   Δ = D(c) − D(∅);  momentum Δ ← Δ + β·Δ_prev (Δ_prev: the last running Δ);
 *   clip ‖Δ‖ ≤ r per sample;  split Δ into parts parallel and orthogonal to D(c);
 *   D = D(c) + (w − 1)·(Δ⊥ + η·Δ∥).
 * Norms and the projection run over every axis but the batch one, or over
 * `normDim` (diffusers' adaptive_projected_guidance_norm_dim). The momentum
 * lives for one sampling run; `momentum: null` keeps none (diffusers' None).
 *
 * η defaults to 0, the paper's method: its analysis finds the parallel
 * component drives the oversaturation, and dropping it is the point of APG.
 * diffusers' AdaptiveProjectedGuidance defaults to η = 1 (keep it), which
 * with no momentum leaves only the norm clip; pass eta: 1 to match it.
 */
import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../../core/errors.js';
import type { Tensor } from '../../core/tensor.js';
import { bounded, guidanceScale, scheduledSchema } from '../options.js';
import type { Strategy, TermContext } from '../types.js';
import { defineStrategy, requireConditional } from './define.js';
import { normOver, project, resolveAxes } from './projection.js';

const axisList = z.union([z.number().int(), z.array(z.number().int()).min(1).readonly()]);

export const apgSchema = scheduledSchema({
  scale: guidanceScale.default(3),
  /** β; negative values (the paper's −0.5) push away from the last update; null: no momentum kept. */
  momentum: bounded(-1, 1, 'a momentum beyond ±1 grows without bound').nullable().default(-0.5),
  /** r; 0 turns clipping off. */
  normThreshold: bounded(0, 1e6, 'a clipping radius').default(15),
  /** η: weight of the parallel part (0 drops it, the paper's choice; diffusers defaults to 1). */
  eta: bounded(-10, 10, 'the parallel share of the update; the paper uses 0 to 1').default(0),
  /** Axes of the norm and projection ([N, C, H, W]: 1..3 or −3..−1); default all but the batch axis. */
  normDim: axisList.optional(),
});

export type ApgOptions = z.input<typeof apgSchema>;

export interface ApgUpdateOptions {
  momentum: number | null;
  normThreshold: number;
  eta: number;
  /** Resolved axes (1..rank−1), or undefined for every non-batch axis. */
  axes?: readonly number[];
}

/**
 * The running Δ: Δ + β·Δ_prev, stored for the next step under 'running'.
 * Takes ownership of `diff`; returns the running Δ (owned by the caller).
 */
export function apgMomentum(diff: Tensor, momentum: number | null, state: Map<string, unknown>): Tensor {
  if (momentum === null) return diff;
  const previous = state.get('running') as Tensor | undefined;
  let running = diff;
  if (previous && momentum !== 0) {
    using pushed = previous.mul(momentum);
    running = diff.add(pushed);
    diff.dispose();
  }
  previous?.dispose();
  state.set('running', running.clone());
  return running;
}

/** APG's update Δ⊥ + η·Δ∥ for Δ = running difference, clipped; reads and writes the momentum in `state`. */
export function apgUpdate(positive: Tensor, negative: Tensor, options: ApgUpdateOptions, state: Map<string, unknown>): Tensor {
  let diff = apgMomentum(positive.sub(negative), options.momentum, state);
  if (options.normThreshold > 0) {
    // factor = min(1, r/‖Δ‖) = 1 / max(1, ‖Δ‖/r); safe for ‖Δ‖ = 0.
    using norm = normOver(diff, options.axes);
    using ratio = norm.div(options.normThreshold);
    using atLeastOne = ratio.clamp(1, null);
    const clipped = diff.div(atLeastOne);
    diff.dispose();
    diff = clipped;
  }
  using owned = diff;
  const { parallel, orthogonal } = project(owned, positive, options.axes);
  using p = parallel;
  using o = orthogonal;
  using weighted = p.mul(options.eta);
  return o.add(weighted);
}

/** The paper's APG term: (w − 1)·(Δ⊥ + η·Δ∥), with `scale` = w − 1. */
export function apgDelta(positive: Tensor, negative: Tensor, scale: number, options: ApgUpdateOptions, state: Map<string, unknown>): Tensor {
  using update = apgUpdate(positive, negative, options, state);
  return update.mul(scale);
}

/** normDim resolved against the sample's rank, or a typed error naming the field. */
export function apgAxes(name: string, normDim: number | readonly number[] | undefined, sampleShape: readonly number[]): number[] | undefined {
  if (normDim === undefined) return undefined;
  const resolved = resolveAxes(normDim, sampleShape.length + 1);
  if ('problem' in resolved) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_OPTION, `invalid ${name} options: normDim: ${resolved.problem}.`);
  }
  return resolved.axes;
}

export function apg(options: ApgOptions = {}): Strategy {
  return defineStrategy('apg', apgSchema, options, ({ scale, momentum, normThreshold, eta, normDim }) => ({
    terms(context) {
      requireConditional('apg', context);
      const axes = apgAxes('apg', normDim, context.sampleShape);
      return [
        {
          label: `apg(w=${scale})`,
          positive: { model: 'main', condition: 'given' },
          negative: { model: 'main', condition: 'null' },
          scale: () => scale - 1,
          delta: (pos: Tensor, neg: Tensor, s: number, ctx: TermContext) =>
            apgDelta(pos, neg, s, { momentum, normThreshold, eta, ...(axes ? { axes } : {}) }, ctx.state),
        },
      ];
    },
  }));
}
