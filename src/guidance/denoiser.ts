/**
 * Every model as a denoiser D(x; sigma, cond) -> x0 in sigma space
 * (x = x0 + sigma * eps), whatever its parameterisation, following the
 * preconditioning of Karras et al. (EDM, table 1):
 *
 *   D(x) = c_skip · x + c_out · F(c_in · x; c_noise, cond)
 *
 *   eps (VP):  c_in = 1/sqrt(σ²+1), c_out = −σ,             c_skip = 1,          c_noise = t(σ)
 *   v   (VP):  c_in = 1/sqrt(σ²+1), c_out = −σ/sqrt(σ²+1),  c_skip = 1/(σ²+1),   c_noise = t(σ)
 *   x0  (VP):  c_in = 1/sqrt(σ²+1), c_out = 1,              c_skip = 0,          c_noise = t(σ)
 *   edm:       c_in = 1/sqrt(σ²+σd²), c_out = σσd/sqrt(σ²+σd²), c_skip = σd²/(σ²+σd²), c_noise = ln(σ)/4
 *
 * t(σ) is the discrete timestep, fractional between grid points
 * (noise-schedule.ts). The scalings are scalars: every sample of a forward
 * shares sigma.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import type { DenoiserCard } from '../model/model-card.js';
import type { Model, Preconditioning } from '../model/model.js';
import { type NoiseSchedule, noiseScheduleFromCard, sigmaToTimestep } from '../model/noise-schedule.js';
import { full, type Tensor } from '../core/tensor.js';

/** The preconditioning of one noise level: D = cSkip·x + cOut·F(cIn·x, cNoise). */
export interface Scalings {
  cIn: number;
  cOut: number;
  cSkip: number;
  /** The model's time input. */
  cNoise: number;
}

/**
 * A loaded denoiser seen as D(x; σ, c) → x0, whatever its card's prediction
 * type (eps, v, x0 on a discrete VP schedule, or EDM); samplers work in σ space
 * through it.
 */
export class Denoiser {
  readonly noise: NoiseSchedule;

  private constructor(
    readonly model: Model,
    readonly card: DenoiserCard,
  ) {
    this.noise = noiseScheduleFromCard(card);
  }

  /** Wraps a loaded model; its card must describe a denoiser. */
  static of(model: Model, role = 'model'): Denoiser {
    const card = model.card;
    if (!card || 'kind' in card) {
      throw new TorchGuidanceError(
        ErrorCodes.MODEL_CARD,
        `the ${role} has ${card ? 'a classifier card' : 'no model card'}, so its prediction type and noise schedule ` +
          'are unknown. Fix: export it with a denoiser card (models/README.md, "The model card").',
      );
    }
    return new Denoiser(model, card);
  }

  get conditioning(): DenoiserCard['conditioning'] {
    return this.card.conditioning;
  }

  /** The discrete timestep of sigma, or null for an EDM model. */
  timestep(sigma: number): number | null {
    return this.noise.kind === 'discrete' ? sigmaToTimestep(this.noise, sigma) : null;
  }

  /** The scalings at noise level `sigma` for this model's prediction type (EDM table 1). */
  scalings(sigma: number): Scalings {
    if (this.noise.kind === 'edm') {
      const sd = this.noise.sigmaData;
      const total = sigma * sigma + sd * sd;
      return { cIn: 1 / Math.sqrt(total), cOut: (sigma * sd) / Math.sqrt(total), cSkip: (sd * sd) / total, cNoise: Math.log(sigma) / 4 };
    }
    const total = sigma * sigma + 1;
    const cIn = 1 / Math.sqrt(total);
    const cNoise = sigmaToTimestep(this.noise, sigma);
    switch (this.card.prediction) {
      case 'eps':
        return { cIn, cOut: -sigma, cSkip: 1, cNoise };
      case 'v':
        return { cIn, cOut: -sigma / Math.sqrt(total), cSkip: 1 / total, cNoise };
      default:
        return { cIn, cOut: 1, cSkip: 0, cNoise };
    }
  }

  /**
   * Model.run's preconditioning at sigma: the same scaling as inputs() and
   * denoised(), done on the torch thread around the forward (what sample()
   * uses; those two stay for callers that need F itself).
   */
  preconditioning(sigma: number): Preconditioning {
    const { cIn, cNoise, cSkip, cOut } = this.scalings(sigma);
    return { inputScale: cIn, time: cNoise, skip: cSkip, out: cOut };
  }

  /**
   * Model.run's inputs under preconditioning: x (already repeated per branch)
   * and its condition inputs in forward order (one for class and tensor
   * conditioning, one per named input), no time.
   */
  preconditionedInputs(x: Tensor, conditions: readonly Tensor[] | undefined): Tensor[] {
    if (this.conditioning.kind === 'none') return [x];
    if (!conditions) throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, 'a conditional model needs conditions.');
    return [x, ...conditions];
  }

  /** The forward's inputs for a batch x (already repeated per branch) and its condition inputs. */
  inputs(x: Tensor, sigma: number, conditions: readonly Tensor[] | undefined): { inputs: (Tensor | number)[]; owned: Tensor[] } {
    const { cIn, cNoise } = this.scalings(sigma);
    const batch = x.shape[0]!;
    const scaled = x.mul(cIn);
    // Filled on the model's device: no host-to-device copy per forward.
    const time = full([batch], cNoise, { device: this.model.device });
    const inputs: Tensor[] = [scaled, time];
    if (this.conditioning.kind !== 'none') {
      if (!conditions) throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, 'a conditional model needs conditions.');
      inputs.push(...conditions);
    }
    return { inputs, owned: [scaled, time] };
  }

  /** D = c_skip · x + c_out · F. */
  denoised(x: Tensor, output: Tensor, sigma: number): Tensor {
    const { cOut, cSkip } = this.scalings(sigma);
    using scaledOut = output.mul(cOut);
    if (cSkip === 0) return scaledOut.clone();
    using skip = x.mul(cSkip);
    return skip.add(scaledOut);
  }
}
