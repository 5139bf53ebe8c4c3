/**
 * Adaptive projected guidance (Sadat et al. 2024, "Eliminating
 * oversaturation and artifacts of high guidance scales"), in x0 space:
 *   Δ = D(c) − D(∅);  momentum Δ ← Δ + β·Δ_prev (Δ_prev: the last running Δ);
 *   clip ‖Δ‖ ≤ r per sample;  split Δ into parts parallel and orthogonal to D(c);
 *   D = D(c) + (w − 1)·(Δ⊥ + η·Δ∥).
 * The momentum lives for one sampling run.
 */
import { z } from 'zod';

import type { Tensor } from '../../tensor.js';
import { bounded, guidanceScale, windowSchema, windowed } from '../options.js';
import type { Strategy, TermContext } from '../types.js';
import { defineStrategy, requireConditional } from './define.js';

export const apgSchema = z
  .object({
    scale: guidanceScale.default(3),
    /** β; negative values (the paper's −0.5) push away from the last update. */
    momentum: bounded(-1, 1, 'a momentum beyond ±1 grows without bound').default(-0.5),
    /** r; 0 turns clipping off. */
    normThreshold: bounded(0, 1e6, 'a clipping radius').default(15),
    /** η: weight of the parallel part (0 drops it). */
    eta: bounded(-10, 10, 'the parallel share of the update; the paper uses 0 to 1').default(0),
    window: windowSchema.optional(),
  })
  .strict();

export type ApgOptions = z.input<typeof apgSchema>;

export function apgDelta(
  positive: Tensor,
  negative: Tensor,
  scale: number,
  options: { momentum: number; normThreshold: number; eta: number },
  state: Map<string, unknown>,
): Tensor {
  let diff = positive.sub(negative);
  const previous = state.get('running') as Tensor | undefined;
  if (previous && options.momentum !== 0) {
    using pushed = previous.mul(options.momentum);
    const next = diff.add(pushed);
    diff.dispose();
    diff = next;
  }
  previous?.dispose();
  state.set('running', diff.clone());
  if (options.normThreshold > 0) {
    // factor = min(1, r/‖Δ‖) = 1 / max(1, ‖Δ‖/r); safe for ‖Δ‖ = 0.
    using norm = diff.normPerSample(true);
    using ratio = norm.div(options.normThreshold);
    using atLeastOne = ratio.clamp(1, null);
    const clipped = diff.div(atLeastOne);
    diff.dispose();
    diff = clipped;
  }
  using ownedDiff = diff;
  using unitNorm = positive.normPerSample(true);
  using safeNorm = unitNorm.clamp(1e-12, null);
  using unit = positive.div(safeNorm);
  using product = ownedDiff.mul(unit);
  using dot = product.sumPerSample(true);
  using parallel = unit.mul(dot);
  using orthogonal = ownedDiff.sub(parallel);
  using weightedParallel = parallel.mul(options.eta);
  using update = orthogonal.add(weightedParallel);
  return update.mul(scale);
}

export function apg(options: ApgOptions = {}): Strategy {
  return defineStrategy('apg', apgSchema, options, ({ scale, momentum, normThreshold, eta, window }) => ({
    terms(context) {
      requireConditional('apg', context);
      return [
        {
          label: `apg(w=${scale})`,
          positive: { model: 'main', condition: 'given' },
          negative: { model: 'main', condition: 'null' },
          scale: windowed(scale - 1, window),
          delta: (pos: Tensor, neg: Tensor, s: number, ctx: TermContext) =>
            apgDelta(pos, neg, s, { momentum, normThreshold, eta }, ctx.state),
        },
      ];
    },
  }));
}
