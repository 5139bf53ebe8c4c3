/**
 * The condition inputs of a guided denoiser's forwards: the batch's given and
 * null conditions, the random ones ICG draws per evaluation, and their join
 * when one forward runs several branches.
 */
import { Streams, mixSeed, uniformFromSeed } from '../core/seeds.js';
import { type Tensor, cat, randn, tensor } from '../core/tensor.js';
import type { Denoiser } from './denoiser.js';
import type { Conditions } from './guided-setup.js';
import type { Branch } from './types.js';

/** One batch's conditions for the run of a guided denoiser; dispose() frees the joins it keeps. */
export class BranchConditions {
  readonly #main: Denoiser;
  readonly #conditions: Conditions;
  readonly #seeds: readonly bigint[];
  readonly #unconditional: boolean;
  /** Joined given/null conditions per branch layout, kept for the run. */
  readonly #joined = new Map<string, readonly Tensor[]>();

  constructor(main: Denoiser, conditions: Conditions, seeds: readonly bigint[], unconditional: boolean) {
    this.#main = main;
    this.#conditions = conditions;
    this.#seeds = seeds;
    this.#unconditional = unconditional;
  }

  /**
   * The conditions of a batched forward, one slice per branch (the one place
   * that repeats side inputs). Tensors made for this evaluation only go into
   * `owned`.
   */
  forBranches(branches: Branch[], evaluation: number, owned: Tensor[]): readonly Tensor[] | undefined {
    if (this.#main.conditioning.kind === 'none') return undefined;
    // Given and null conditions are the same at every step: join them once
    // per run (one op less per forward); random ones (ICG) are fresh per step.
    const fixed = branches.every((b) => b.condition !== 'random');
    const key = branches.map((b) => b.condition).join(',');
    const cached = fixed ? this.#joined.get(key) : undefined;
    if (cached) return cached;
    const parts = branches.map((b) => this.#condition(b.condition, evaluation, owned));
    if (parts.length === 1) return parts[0];
    // Input by input: each forward input is the branches' slices joined.
    const joined = parts[0]!.map((_, input) => cat(parts.map((p) => p[input]!)));
    if (fixed) this.#joined.set(key, joined);
    else owned.push(...joined);
    return joined;
  }

  /** Frees the joined conditions kept for the run. */
  dispose(): void {
    for (const joined of this.#joined.values()) for (const t of joined) t.dispose();
    this.#joined.clear();
  }

  #condition(kind: Branch['condition'], evaluation: number, owned: Tensor[]): readonly Tensor[] {
    const resolved = this.#unconditional && kind === 'given' ? 'null' : kind;
    if (resolved === 'given') return this.#conditions.given!;
    if (resolved === 'null') return this.#conditions.null!;
    const conditioning = this.#main.conditioning;
    const device = this.#main.model.device;
    const streams = this.#seeds.map((s) => mixSeed(s, Streams.randomCondition + BigInt(evaluation)));
    if (conditioning.kind === 'class') {
      const labels = streams.map((s) => BigInt(Math.floor(uniformFromSeed(s, 0) * conditioning.numClasses)));
      const random = tensor(BigInt64Array.from(labels), [labels.length], { device });
      owned.push(random);
      return [random];
    }
    // A Gaussian per sample and input with the requested condition's
    // per-sample mean and std (ICG for tensor conditions); inputs the null
    // branch shares with the given one (a card's 'same': SDXL's size ids) and
    // integer inputs keep the given value.
    const kept = conditioning.kind === 'named' ? Object.values(conditioning.inputs).map((i) => i.null === 'same' || i.dtype.startsWith('int')) : [false];
    return this.#conditions.given!.map((given, input) => {
      if (kept[input]) return given;
      // Input 0 draws from the stream itself, as single-input models always
      // have (their samples stay reproducible); further inputs mix in their index.
      using noise = randn(given.shape, { seed: input === 0 ? streams : streams.map((s) => mixSeed(s, BigInt(input))), device });
      using std = given.stdPerSample(true);
      using mean = given.meanPerSample(true);
      using scaled = noise.mul(std);
      const random = scaled.add(mean);
      owned.push(random);
      return random;
    });
  }
}
