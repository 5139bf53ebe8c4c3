/**
 * Frequency-decoupled guidance (FDG; Sadat et al. 2025, "Guidance in the
 * Frequency Domain Enables High-Fidelity Sampling at Low CFG Scales",
 * diffusers' FrequencyDecoupledGuidance): split both predictions into the
 * levels of a Laplacian pyramid (laplacian-pyramid.ts), guide each level with
 * its own scale, and rebuild:
 *
 *   level i:  Δ_i = c_i − u_i,  optionally Δ_i ← p_i·Δ_i∥ + Δ_i⊥ (projection onto c_i)
 *             g_i = u_i + w_i·Δ_i                 ('original': c_i + w_i·Δ_i)
 *             optionally g_i ← rescale(g_i, c_i, φ_i)  (guidance rescale per level)
 *             outside level i's start/stop, or with w_i at the identity: g_i = c_i
 *   D = rebuild(g)
 *
 * `scales` run from the highest frequencies to the lowest; the paper keeps
 * the low frequencies' scale low (diversity, colours) and the high ones'
 * high (detail): diffusers' default [10, 5] for SDXL. With equal scales and
 * parallel weights 1 it is CFG. The projection and the per-level rescale
 * depend on the space (`space`, default 'eps' like diffusers on noise
 * predictions); the rest is linear. For a rescale of the rebuilt prediction
 * (diffusers' guidance_rescale_space 'data') stack rescale() after it.
 */
import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../../core/errors.js';
import type { Tensor } from '../../core/tensor.js';
import { finite, guidanceScale, inSteps, scheduleFields, stepFraction } from '../options.js';
import type { Strategy, TermContext } from '../types.js';
import { defineStrategy, requireConditional } from './define.js';
import { buildPyramid, maxLevels, rebuildPyramid } from './laplacian-pyramid.js';
import { project } from './projection.js';
import { rescaled } from './rescale.js';
import { fromSpace, spaceSchema, toSpace } from './space.js';

/** One value for every level, or one per level. */
const perLevel = <T extends z.ZodType>(item: T) => z.union([item, z.array(item).min(1).readonly()]);

/** The zod schema of {@link FdgOptions}. */
export const fdgSchema = z
  .object({
    ...scheduleFields(),
    /** w per level, highest frequencies first; its length is the number of levels. */
    scales: z.array(guidanceScale).min(1).readonly().default([3, 1.5]),
    /** Weight of the part of Δ parallel to the conditional prediction, per level; 1 (default) is plain Δ. */
    parallelWeights: perLevel(finite).default(1),
    /** Guidance rescale φ per level (0: none). */
    rescale: perLevel(z.number().min(0).max(1)).default(0),
    /** Step fractions per level (diffusers' start/stop lists); the strategy is on from the earliest start to the latest stop. */
    start: perLevel(stepFraction).default(0),
    stop: perLevel(stepFraction).default(1),
    formulation: z.enum(['standard', 'original']).default('standard'),
    space: spaceSchema.default('eps'),
  })
  .strict()
  .superRefine((options, ctx) => {
    const levels = options.scales.length;
    for (const key of ['parallelWeights', 'rescale', 'start', 'stop'] as const) {
      const value = options[key];
      if (typeof value !== 'number' && value.length !== levels) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `has ${value.length} entries but scales has ${levels} levels; give one number or one per level`,
        });
      }
    }
    for (let level = 0; level < levels; level++) {
      const at = (v: number | readonly number[]) => (typeof v === 'number' ? v : (v[level] ?? 1));
      if (!(at(options.start) < at(options.stop))) {
        ctx.addIssue({ code: 'custom', path: ['start'], message: `start must be below stop (level ${level})` });
      }
    }
  });

/**
 * Options of {@link fdg}: `scales` (w per frequency level, highest frequencies first; the count is the
 * number of levels), `parallelWeights`, `rescale` and per-level `start`/`stop`, `formulation`, `space`, and
 * the scheduling options.
 */
export type FdgOptions = z.input<typeof fdgSchema>;

/**
 * Frequency-decoupled guidance (Sadat et al. 2025): classifier-free guidance applied per level of a
 * Laplacian pyramid of the prediction, each level with its own scale.
 */
export function fdg(options: FdgOptions = {}): Strategy {
  return defineStrategy('fdg', fdgSchema, options, (settings) => {
    const { scales, formulation, space } = settings;
    const levels = scales.length;
    const at = (v: number | readonly number[], level: number) => (typeof v === 'number' ? v : v[level]!);
    const identity = formulation === 'standard' ? 1 : 0;
    return {
      terms(context) {
        requireConditional('fdg', context);
        const [height, width] = context.sampleShape.slice(-2) as [number, number];
        const allowed = context.sampleShape.length === 3 ? maxLevels(height, width) : 0;
        if (levels > allowed) {
          throw new TorchGuidanceError(
            ErrorCodes.INVALID_OPTION,
            `invalid fdg options: scales: ${levels} levels, but a sample of shape ${JSON.stringify(context.sampleShape)} ` +
              `allows ${allowed} (every level needs at least 3 pixels on a side${allowed === 0 ? ', and samples must be [C, H, W]' : ''}). Fix: give fewer scales.`,
          );
        }
        return [
          {
            label: `fdg(w=${scales.join('/')})`,
            positive: { model: 'main', condition: 'given' },
            negative: { model: 'main', condition: 'null' },
            // A marker (the delta does the work); off when every level is at the identity scale, as diffusers.
            scale: () => (scales.every((w) => w === identity) ? 0 : 1),
            delta: (pos: Tensor, neg: Tensor, _s: number, ctx: TermContext) => {
              const owned: Tensor[] = [];
              try {
                const c = toSpace(pos, space, ctx);
                const u = toSpace(neg, space, ctx);
                owned.push(c, u);
                const cLevels = buildPyramid(c, levels);
                const uLevels = buildPyramid(u, levels);
                owned.push(...cLevels, ...uLevels);
                const guided = cLevels.map((cl, level) => {
                  const w = scales[level]!;
                  const on = w !== identity && inSteps(at(settings.start, level), at(settings.stop, level), ctx);
                  if (!on) return cl;
                  let shift = cl.sub(uLevels[level]!);
                  owned.push(shift);
                  const weight = at(settings.parallelWeights, level);
                  if (weight !== 1) {
                    const { parallel, orthogonal } = project(shift, cl);
                    owned.push(parallel, orthogonal);
                    const weighted = parallel.mul(weight);
                    owned.push(weighted);
                    shift = weighted.add(orthogonal);
                    owned.push(shift);
                  }
                  const scaled = shift.mul(w);
                  owned.push(scaled);
                  let levelOut = (formulation === 'standard' ? uLevels[level]! : cl).add(scaled);
                  owned.push(levelOut);
                  const phi = at(settings.rescale, level);
                  if (phi > 0) {
                    levelOut = rescaled(levelOut, cl, phi);
                    owned.push(levelOut);
                  }
                  return levelOut;
                });
                const rebuilt = rebuildPyramid(guided);
                owned.push(rebuilt);
                using d = fromSpace(rebuilt, space, ctx);
                return d.sub(pos);
              } finally {
                for (const t of owned) t.dispose();
              }
            },
          },
        ];
      },
    };
  });
}
