/**
 * Tangential damping CFG (TCFG; Kwon et al. 2025, "TCFG: Tangential Damping
 * Classifier-free Guidance", diffusers' TangentialClassifierFreeGuidance):
 * the unconditional prediction keeps only its component along the first
 * right singular vector v₁ of the 2×D matrix [c; u] (the direction both
 * predictions share), dropping the tangential part that pulls samples off
 * the data manifold; then CFG with it:
 *
 *   u' = <u, v₁> v₁,   D = u' + w·(c − u')          ('original': c + w·(c − u'))
 *
 * per sample, in `space` (default 'eps': the paper works on noise
 * predictions; diffusers applies it to the model's raw output).
 *
 * v₁ comes from the 2×2 Gram matrix G = [[c·c, c·u], [c·u, u·u]] rather than
 * an SVD of the D-long rows: with λ₁ > λ₂ its eigenvalues, the projection
 * onto v₁ is Pᵀ (G − λ₂I) P / (λ₁(λ₁ − λ₂)) with P = [c; u], so
 * u' = α·c + β·u with [α, β] = (G − λ₂I)·[c·u, u·u] / (λ₁(λ₁ − λ₂)). The 2×2
 * arithmetic runs in float64.
 */
import { z } from 'zod';

import type { Tensor } from '../../core/tensor.js';
import { guidanceScale, scheduledSchema } from '../options.js';
import type { Strategy, TermContext } from '../types.js';
import { defineStrategy, requireConditional } from './define.js';
import { fromSpace, spaceSchema, toSpace } from './space.js';

/** The zod schema of {@link TcfgOptions}. */
export const tcfgSchema = scheduledSchema({
  /** w, as in cfg (diffusers' default 7.5 is for Stable Diffusion; small class models like 1.5-4). */
  scale: guidanceScale.default(3),
  formulation: z.enum(['standard', 'original']).default('standard'),
  space: spaceSchema.default('eps'),
});

/** Options of {@link tcfg}: `scale` (w, default 3), `formulation`, `space` (default `'eps'`), and the scheduling options. */
export type TcfgOptions = z.input<typeof tcfgSchema>;

/** u projected onto the first right singular vector of [c; u], per sample (a new tensor). */
export function principalProjection(c: Tensor, u: Tensor): Tensor {
  const dot = (a: Tensor, b: Tensor) => {
    using product = a.mul(b);
    using sum = product.sumPerSample(true);
    return sum.to({ dtype: 'float64' });
  };
  using p = dot(c, c);
  using q = dot(c, u);
  using r = dot(u, u);
  // λ₁,₂ = m ± d, m = (p + r)/2, d = sqrt(((p − r)/2)² + q²).
  using sum = p.add(r);
  using mean = sum.mul(0.5);
  using diff = p.sub(r);
  using half = diff.mul(0.5);
  using halfSquared = half.mul(half);
  using qSquared = q.mul(q);
  using radicand = halfSquared.add(qSquared);
  using d = radicand.sqrt();
  using lambda1 = mean.add(d);
  using lambda2 = mean.sub(d);
  // λ₁(λ₁ − λ₂) = λ₁·2d; zero only when c ⟂ u with equal norms (no principal direction) or both are 0.
  using gap = d.mul(2);
  using denominatorRaw = lambda1.mul(gap);
  using denominator = denominatorRaw.clamp(1e-300, null);
  // [α, β] = (G − λ₂I)[q, r] / denominator: α = (p − λ₂)q + q·r, β = q² + (r − λ₂)r.
  using pShift = p.sub(lambda2);
  using rShift = r.sub(lambda2);
  using a1 = pShift.mul(q);
  using a2 = q.mul(r);
  using alphaNumerator = a1.add(a2);
  using b2 = rShift.mul(r);
  using betaNumerator = qSquared.add(b2);
  using alpha64 = alphaNumerator.div(denominator);
  using beta64 = betaNumerator.div(denominator);
  using alpha = alpha64.to({ dtype: c.dtype });
  using beta = beta64.to({ dtype: c.dtype });
  using alongC = c.mul(alpha);
  using alongU = u.mul(beta);
  return alongC.add(alongU);
}

/**
 * Tangential classifier-free guidance (Kwon et al. 2025): CFG with the unconditional prediction projected
 * onto the first right singular vector of [c; u], which removes its component tangent to the data.
 */
export function tcfg(options: TcfgOptions = {}): Strategy {
  return defineStrategy('tcfg', tcfgSchema, options, ({ scale, formulation, space }) => ({
    terms(context) {
      requireConditional('tcfg', context);
      // diffusers turns TCFG off at the identity scale (w = 1, or 0 in the original form): D = D(c).
      const identity = formulation === 'standard' ? 1 : 0;
      return [
        {
          label: `tcfg(w=${scale})`,
          positive: { model: 'main', condition: 'given' },
          negative: { model: 'main', condition: 'null' },
          scale: () => (scale === identity ? 0 : scale),
          delta: (pos: Tensor, neg: Tensor, w: number, ctx: TermContext) => {
            using c = toSpace(pos, space, ctx);
            using u = toSpace(neg, space, ctx);
            using projected = principalProjection(c, u);
            using shift = c.sub(projected);
            using scaled = shift.mul(w);
            using guided = (formulation === 'standard' ? projected : c).add(scaled);
            using d = fromSpace(guided, space, ctx);
            return d.sub(pos);
          },
        },
      ];
    },
  }));
}
