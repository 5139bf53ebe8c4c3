/**
 * Per-sample reductions over chosen axes and the projection APG and FDG
 * use: v split into its part along `direction` and the rest, with norms and
 * dot products over `axes` (default every axis but the batch axis; APG's
 * `normDim` picks others, e.g. per channel).
 */
import type { Tensor } from '../../core/tensor.js';

/** Sum over `axes` (0-based axes of the full tensor, batch excluded), kept as size-1 axes. */
export function sumOver(t: Tensor, axes?: readonly number[]): Tensor {
  if (axes === undefined) return t.sumPerSample(true);
  let current = t;
  // Highest axis first, so the lower indices stay valid (keepDim keeps them anyway).
  for (const axis of [...axes].sort((a, b) => b - a)) {
    const next = current.sumAxis(axis, true);
    if (current !== t) current.dispose();
    current = next;
  }
  return current === t ? t.clone() : current;
}

/** The L2 norm over `axes`, kept as size-1 axes. */
export function normOver(t: Tensor, axes?: readonly number[]): Tensor {
  if (axes === undefined) return t.normPerSample(true);
  using squared = t.mul(t);
  using sum = sumOver(squared, axes);
  return sum.sqrt();
}

/**
 * v = parallel + orthogonal, parallel = <v, u> u with u = direction / max(‖direction‖, 1e-12)
 * (torch's F.normalize), over `axes`.
 */
export function project(v: Tensor, direction: Tensor, axes?: readonly number[]): { parallel: Tensor; orthogonal: Tensor } {
  using length = normOver(direction, axes);
  using safe = length.clamp(1e-12, null);
  using unit = direction.div(safe);
  using product = v.mul(unit);
  using along = sumOver(product, axes);
  const parallel = unit.mul(along);
  const orthogonal = v.sub(parallel);
  return { parallel, orthogonal };
}

/**
 * Axis indices of a [N, ...sample] tensor from user input (negative counts
 * from the end), normalised to 1..rank-1; a problem text when one is the
 * batch axis or out of range.
 */
export function resolveAxes(axes: number | readonly number[], rank: number): { axes: number[] } | { problem: string } {
  const list = typeof axes === 'number' ? [axes] : [...axes];
  const resolved: number[] = [];
  for (const axis of list) {
    const a = axis < 0 ? axis + rank : axis;
    if (a < 1 || a >= rank) {
      return { problem: `axis ${axis} is ${a === 0 ? 'the batch axis' : 'outside the tensor'}; a sample is [N, ${'…'}] with ${rank} axes, so use 1..${rank - 1} or -${rank - 1}..-1` };
    }
    if (!resolved.includes(a)) resolved.push(a);
  }
  return { axes: resolved };
}
