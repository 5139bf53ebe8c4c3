/**
 * Per-sample seeds. Sample i of a run with seed s has seed s + i, whatever
 * batch it runs in; every random draw during sampling (step noise, ICG's
 * random labels, random patches) derives its seed from the sample's seed and
 * the draw's position, so a sample never depends on its batch neighbours.
 */
const MASK = (1n << 64n) - 1n;

/** splitmix64's finaliser: a well-mixed 64-bit value from (seed, stream). */
export function mixSeed(seed: bigint, stream: bigint): bigint {
  let z = (seed * 0x9e3779b97f4a7c15n + stream + 0x632be59bd9b4e019n) & MASK;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
  return (z ^ (z >> 31n)) & MASK;
}

/** A uniform number in [0, 1) from (seed, index). */
export function uniformFromSeed(seed: bigint, index: number): number {
  return Number(mixSeed(seed, BigInt(index)) >> 11n) / 2 ** 53;
}

/** The seed of sample `index` of a run with `seed`. */
export function sampleSeed(seed: number | bigint, index: number): bigint {
  return (BigInt(seed) + BigInt(index)) & MASK;
}

/** Seeds of samples [first, first + count) of a run with `seed`. */
export function sampleSeeds(seed: number | bigint, first: number, count: number): bigint[] {
  const base = BigInt(seed);
  return Array.from({ length: count }, (_, i) => (base + BigInt(first + i)) & MASK);
}

/** Stream ids, so different kinds of draws at the same step never share noise. */
export const Streams = {
  stepNoise: 0x1000_0000n,
  randomCondition: 0x2000_0000n,
  /** Module-output noise (time-step guidance's time-embedding noise). */
  moduleNoise: 0x3000_0000n,
  /** A second independent draw per step (dpmpp_sde's second Brownian increment). */
  stepNoiseSecond: 0x4000_0000n,
  /** Module-output dropout masks (layer skip with dropout below 1). */
  moduleDropout: 0x5000_0000n,
} as const;
