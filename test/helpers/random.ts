import { randomInt } from 'node:crypto';

/**
 * A fresh seed per call (each test run draws new inputs); the seed is part of
 * the returned generator so failures can print it.
 */
export function freshRandom(): { seed: number; next: () => number; normal: () => number } {
  return seededRandom(randomInt(2 ** 31));
}

/** The same generator from a given seed (a child process reproducing its parent's draw). */
export function seededRandom(seed: number): { seed: number; next: () => number; normal: () => number } {
  // mulberry32: small, fast, good enough for test inputs.
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return { seed, next, normal };
}

export type Rng = ReturnType<typeof freshRandom>;

/** A whole number drawn uniformly from [lo, hi], both ends included. */
export function uniformInt(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng.next() * (hi - lo + 1));
}

/** One of `items`, uniformly. */
export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng.next() * items.length)]!;
}

/** A guidance scale drawn from [1.2, 4.2): away from 1, where some terms vanish. */
export function guidanceScale(rng: Rng): number {
  return 1.2 + 3 * rng.next();
}

export function randomFloat32(count: number, rng = freshRandom()): Float32Array {
  return Float32Array.from({ length: count }, () => rng.normal());
}

/** max |a - b| / max |b|: relative error on the scale of the reference. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / (scale || 1);
}
