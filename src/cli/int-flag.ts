import { UsageError } from '../core/usage-error.js';

/** A whole-number flag value within [min, max], or a UsageError naming the flag and the range. */
export function intFlag(flag: string, raw: string, min: number, max: number): number {
  const value = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`${flag} ${raw}: must be a whole number from ${min} to ${max.toLocaleString('en')}`);
  }
  return value;
}
