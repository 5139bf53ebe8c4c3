/** Shared plumbing of the strategy factories: validate options, name the strategy, record its settings, apply its schedule. */
import type { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../../core/errors.js';
import { parseOptions } from '../../core/options.js';
import { isActive, scheduleOf } from '../options.js';
import type { Strategy, StrategyContext } from '../types.js';

/** The strategies the package's factories made (a guidance document can record and rebuild only these). */
const fromFactory = new WeakSet<Strategy>();

/** Whether a package factory made `strategy` (rather than user code writing the object). */
export function isFactoryStrategy(strategy: Strategy): boolean {
  return fromFactory.has(strategy);
}

/**
 * Builds a {@link Strategy} from a zod schema and a body: validates `options`
 * with `schema` (ERR_INVALID_OPTION naming each bad field), records the parsed
 * settings for reports and explain(), builds the strategy from them, and
 * applies the scheduling options every strategy has (enabled, start, stop,
 * window; options.ts) to each of its terms, its finalize and its re-noise
 * branch: outside the schedule a term's scale is 0, so the planner drops its
 * branches.
 */
export function defineStrategy<S extends z.ZodType>(
  name: string,
  schema: S,
  options: unknown,
  build: (settings: z.output<S>) => Omit<Strategy, 'name' | 'settings'>,
): Strategy {
  const settings = parseOptions(schema, options ?? {}, `${name} options`) as z.output<S> & Record<string, unknown>;
  const schedule = scheduleOf(settings);
  const base = { name, settings: settings as Record<string, unknown> };
  if (!schedule.enabled) {
    const off: Strategy = { ...base, terms: () => [] };
    fromFactory.add(off);
    return off;
  }
  const built = build(settings);
  const strategy: Strategy = {
    ...base,
    terms: (context) =>
      built.terms(context).map((term) => ({ ...term, scale: (info) => (isActive(schedule, info) ? term.scale(info) : 0) })),
  };
  const { finalize, renoiseBranch } = built;
  if (finalize) strategy.finalize = (guided, context) => (isActive(schedule, context) ? finalize(guided, context) : undefined);
  if (renoiseBranch) {
    strategy.renoiseBranch = (context, info) =>
      info === undefined || isActive(schedule, info) ? renoiseBranch(context, info) : undefined;
  }
  fromFactory.add(strategy);
  return strategy;
}

/** Strategies that contrast conditions (CFG and kin) need a conditional model. */
export function requireConditional(name: string, context: StrategyContext): void {
  if (context.conditioning === 'none') {
    throw new TorchGuidanceError(
      ErrorCodes.INVALID_OPTION,
      `${name} contrasts conditions, but the model is unconditional (card conditioning 'none'). ` +
        'Fix: use a condition-free method (pag, seg, sag, autoguidance, tsg, slg).',
    );
  }
}

/** The strategies that compute the null branch of CFG (SAG then degrades the null prediction). */
const CFG_FAMILY = ['cfg', 'apg', 'apg-mix', 'cfg-zero-star', 'cfgpp', 'tcfg', 'fdg', 'magnitude-aware'];

/** Whether a CFG-family strategy (which computes the null branch) is in the list. */
export function hasCfg(context: StrategyContext): boolean {
  return context.strategies.some((s) => CFG_FAMILY.includes(s.name) && s.settings.enabled !== false);
}
