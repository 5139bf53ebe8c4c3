/**
 * Module sites and their hooks.
 *
 * The addon's graph pass also tags module outputs (native/src/jit/module_pass.h):
 * the card's time embedding, and every call of the model's own blocks that
 * takes and returns a tensor. A forward may, per site and batch slice, add
 * seeded Gaussian noise to the output (time-step guidance perturbs the time
 * embedding), skip the module (output = its input; skip-layer guidance), or
 * apply seeded dropout to the output (diffusers' layer skip with dropout < 1).
 * The probe forward records each site's shapes: a module can be skipped only
 * when its output has its input's shape.
 */
import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { type SiteSelector, selectSites, selectorSchema, selectorText } from './site-selectors.js';
import { parseOptions } from '../core/options.js';

/** A module output the graph pass tagged, which module hooks can perturb. */
export interface ModuleSite {
  /** The addon's index of the site. */
  id: number;
  /** The module path, as named_modules() names it (`mid.res1`, `up.2`; `#1` for a second call of one module). */
  path: string;
  /** Output shape equals the input's, so skip is possible; null when not probed (or no tensor input: false). */
  skippable: boolean | null;
  /** The output's shape in the probe forward (batch first); null when not probed. */
  outputShape: number[] | null;
}

const seedSchema = z.union([z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), z.bigint().nonnegative()]);

export const moduleHookSchema = z
  .object({
    /** Module paths: globs over whole segments (`mid.*`, `down.**`), RegExps, site indices, or a list. */
    modules: selectorSchema,
    /**
     * noise: add scale · N(0, I) to the output; skip: the output is the
     * module's input; dropout: zero each element of the output with chance
     * `p` and scale the rest by 1 / (1 − p), as torch's dropout in training.
     */
    action: z.enum(['noise', 'skip', 'dropout']),
    /** noise: the standard deviation of the added noise (k in emb + k·n). */
    scale: z.number().nonnegative().refine(Number.isFinite, 'must be finite').optional(),
    /** dropout: the chance that an element is zeroed, in [0, 1) (1 would be skip: use action 'skip'). */
    p: z.number().min(0).lt(1).optional(),
    /**
     * noise and dropout: one seed (the slice's random tensor is drawn as
     * randn([length, ...], { seed }) or, for dropout, torch.rand from a
     * generator with that seed: an element is zeroed where its draw u < p), or
     * one per sample of the slice (one generator per sample: batch-invariant).
     */
    seed: z.union([seedSchema, z.array(seedSchema).min(1).readonly()]).optional(),
    /** The batch slice [start, start + length) in samples; default the whole batch. */
    start: z.number().int().nonnegative().default(0),
    length: z.number().int().positive().optional(),
  })
  .strict()
  .refine((hook) => hook.action !== 'noise' || (hook.scale !== undefined && hook.seed !== undefined), {
    message: 'noise needs scale (a number >= 0) and seed (one, or one per sample of the slice)',
    path: ['scale'],
  })
  .refine((hook) => hook.action !== 'dropout' || (hook.p !== undefined && hook.seed !== undefined), {
    message: 'dropout needs p (the chance an element is zeroed, in [0, 1)) and seed (one, or one per sample of the slice)',
    path: ['p'],
  });

/**
 * A hook on module outputs for one {@link Model.run}: `modules` (selector),
 * `action` (`'noise'`: add scale·N(0, I); `'skip'`: return the module's
 * input; `'dropout'`: seeded dropout with probability `p`), `scale` (noise),
 * `p` (dropout), `seed` (noise, dropout), `start` and `length` (the batch slice).
 */
export type ModuleHook = z.input<typeof moduleHookSchema>;

/** What the addon takes for module sites: one entry per (site, slice, action). */
export interface NativeModuleEntry {
  site: number;
  start: number;
  length: number;
  action: 'noise' | 'skip' | 'dropout';
  scale?: number;
  p?: number;
  seed?: number | bigint | readonly (number | bigint)[];
}

export function describeModuleSites(sites: readonly ModuleSite[]): string {
  if (sites.length === 0) return 'this model has no hookable module outputs';
  const flag = (s: ModuleSite) => (s.skippable === null ? '' : s.skippable ? ' (skippable)' : '');
  return `the module sites are: ${sites.map((s) => `${s.id} ${s.path}${flag(s)}`).join(', ')}`;
}

/** Refuses skip on a site known not to keep its input's shape. */
export function checkSkippable(site: ModuleSite, what: string): void {
  if (site.skippable === false) {
    throw new TorchGuidanceError(
      ErrorCodes.NOT_SKIPPABLE,
      `${what}: ${site.path} cannot be skipped: its output (shape ${JSON.stringify(site.outputShape)}) does not have ` +
        'the shape of its input, or it takes no tensor. Fix: select blocks whose output has their input’s shape ' +
        '(model.moduleSites lists skippable: true).',
    );
  }
}

/** Resolves module hooks against a model's module sites into the addon's entries. */
export function planModuleHooks(hooks: readonly ModuleHook[], sites: readonly ModuleSite[], batch: number, first = 0): NativeModuleEntry[] {
  const entries: NativeModuleEntry[] = [];
  hooks.forEach((raw, offset) => {
    const index = first + offset;
    const hook = parseOptions(moduleHookSchema, raw, `hooks[${index}]`);
    const selected = selectSites(hook.modules as SiteSelector, sites);
    if (selected.length === 0) {
      throw new TorchGuidanceError(
        ErrorCodes.NO_MATCHING_SITE,
        `hooks[${index}].modules ${selectorText(hook.modules as SiteSelector)} matches no module site; ${describeModuleSites(sites)}.`,
      );
    }
    const length = hook.length ?? batch - hook.start;
    if (hook.start + length > batch || length < 1) {
      throw new TorchGuidanceError(
        ErrorCodes.INVALID_OPTION,
        `hooks[${index}]: the slice [${hook.start}, ${hook.start + length}) is outside the batch of ${batch}.`,
      );
    }
    if (Array.isArray(hook.seed) && hook.seed.length !== length) {
      throw new TorchGuidanceError(
        ErrorCodes.INVALID_OPTION,
        `hooks[${index}].seed has ${hook.seed.length} seeds for a slice of ${length} samples. Fix: give one seed, or one per sample.`,
      );
    }
    for (const site of selected) {
      if (hook.action === 'skip') {
        checkSkippable(site, `hooks[${index}]`);
        entries.push({ site: site.id, start: hook.start, length, action: 'skip' });
      } else if (hook.action === 'dropout') {
        entries.push({ site: site.id, start: hook.start, length, action: 'dropout', p: hook.p!, seed: hook.seed! });
      } else {
        entries.push({ site: site.id, start: hook.start, length, action: 'noise', scale: hook.scale!, seed: hook.seed! });
      }
    }
  });
  return entries;
}

/** A module site with the shapes a probe recorded (or none). */
export function moduleSiteFromProbe(
  base: { id: number; path: string; hasInput: boolean },
  shapes: { output: readonly number[]; input: readonly number[] } | undefined,
): ModuleSite {
  if (!shapes) return { id: base.id, path: base.path, skippable: base.hasInput ? null : false, outputShape: null };
  const same = shapes.output.length === shapes.input.length && shapes.output.every((d, i) => d === shapes.input[i]);
  return { id: base.id, path: base.path, skippable: base.hasInput && same, outputShape: [...shapes.output] };
}
