/**
 * The command line's strategy specs as API: `name:value,key=value,...`
 * (e.g. `cfg:3`, `pag:scale=3,sites=mid.*`, `slg:3,start=0,stop=0.5`,
 * `fdg:scales=10+5`), checked against the same schemas as the factories.
 * A mistake rejects with ERR_INVALID_OPTION naming the spec and the option.
 */
import { buildStrategy, parseGuidanceSpec } from '../cli/guidance-flags.js';
import { UsageError } from '../core/usage-error.js';
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import type { Model } from '../model/model.js';
import type { Strategy } from './types.js';

/** Options of guidanceFromSpec. */
export interface GuidanceSpecOptions {
  /** The second model of strategies that take one (autoguidance's guide, sims' negative). */
  model?: Model;
}

/** One strategy from a spec, as `--guidance` reads it. */
export function guidanceFromSpec(spec: string, options: GuidanceSpecOptions = {}): Strategy {
  try {
    return buildStrategy(parseGuidanceSpec(spec), options.model);
  } catch (error) {
    if (error instanceof UsageError) {
      const message = error.message.replace(/^--guidance /, 'guidance spec ').replace('give it with --guide <model.pt>', 'pass it as options.model');
      throw new TorchGuidanceError(ErrorCodes.INVALID_OPTION, message, { cause: error });
    }
    throw error;
  }
}

/** The strategy names a spec may start with (aliases aside). */
export { strategyNames as guidanceSpecNames } from '../cli/guidance-flags.js';
