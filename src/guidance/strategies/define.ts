/** Shared plumbing of the strategy factories: validate options, name the strategy, record its settings. */
import type { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../../errors.js';
import { parseOptions } from '../../util/options.js';
import type { Strategy, StrategyContext } from '../types.js';

/**
 * Builds a {@link Strategy} from a zod schema and a body: parses `options`
 * (a bad field rejects with ERR_INVALID_OPTION naming it), records the parsed
 * settings for reports and explain(), and hands them to `build`.
 */
export function defineStrategy<S extends z.ZodType>(
  name: string,
  schema: S,
  options: unknown,
  build: (settings: z.output<S>) => Omit<Strategy, 'name' | 'settings'>,
): Strategy {
  const settings = parseOptions(schema, options ?? {}, `${name} options`);
  return { name, settings: settings as Record<string, unknown>, ...build(settings) };
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

/** Whether a CFG-family strategy (which computes the null branch) is in the list. */
export function hasCfg(context: StrategyContext): boolean {
  return context.strategies.some((s) => ['cfg', 'apg', 'cfg-zero-star', 'cfgpp'].includes(s.name));
}
