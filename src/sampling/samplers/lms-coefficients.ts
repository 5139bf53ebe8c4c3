/**
 * The coefficients of k-diffusion's linear multistep sampler: for step i and
 * order k, c_j = ∫_{σ_i}^{σ_{i+1}} Π_{m≠j} (τ − σ_{i−m}) / (σ_{i−j} − σ_{i−m}) dτ,
 * j = 0..k−1 (the Lagrange basis polynomial of node σ_{i−j} through the last
 * k sigmas). k-diffusion integrates with scipy's adaptive quadrature; the
 * integrand is a polynomial of degree k − 1, so Gauss–Legendre with 4 nodes
 * is exact for every order up to 8 (to float64 round-off).
 */

const NODES = [-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526];
const WEIGHTS = [0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538];

/** Highest order the quadrature integrates exactly. */
export const MAX_LMS_ORDER = 8;

export function lmsCoefficients(order: number, sigmas: readonly number[], step: number): number[] {
  if (order - 1 > step) throw new RangeError(`lms: order ${order} is too high for step ${step}`);
  const from = sigmas[step]!;
  const to = sigmas[step + 1]!;
  const half = (to - from) / 2;
  const middle = (to + from) / 2;
  return Array.from({ length: order }, (_, j) => {
    let integral = 0;
    NODES.forEach((node, q) => {
      const tau = middle + half * node;
      let product = 1;
      for (let m = 0; m < order; m++) {
        if (m === j) continue;
        product *= (tau - sigmas[step - m]!) / (sigmas[step - j]! - sigmas[step - m]!);
      }
      integral += WEIGHTS[q]! * product;
    });
    return integral * half;
  });
}
