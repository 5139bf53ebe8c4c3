/**
 * exp() of per-sample scalars ([N, 1, ...] tensors) from the tensor ops the
 * addon has (no exp among them): range reduction and a Taylor series in
 * float64, exp(v) = exp(v / 2^16)^(2^16). For |v| up to 10⁴ the series'
 * argument stays below 0.16, where 10 terms are exact to float64 round-off,
 * and the 16 squarings grow the round-off to about 1e-11 relative: far below
 * float32. Meant for the few scalars a guider needs per step, not for images.
 */
import type { Tensor } from '../../core/tensor.js';

const SQUARINGS = 16;
const TERMS = 10;

export function expOf(value: Tensor): Tensor {
  using v = value.to({ dtype: 'float64' });
  using y = v.div(2 ** SQUARINGS);
  // Horner: 1 + y(1 + y/2(1 + y/3(...))).
  let series = y.div(TERMS);
  for (let k = TERMS - 1; k >= 1; k--) {
    using plusOne = series.add(1);
    series.dispose();
    using times = plusOne.mul(y);
    series = times.div(k);
  }
  let result = series.add(1);
  series.dispose();
  for (let i = 0; i < SQUARINGS; i++) {
    const squared = result.mul(result);
    result.dispose();
    result = squared;
  }
  using owned = result;
  return owned.to({ dtype: value.dtype });
}
