/**
 * Strategies as specs, `name:value,key=value,...` (e.g. `cfg:3`,
 * `pag:scale=3,sites=mid.*`, `slg:3,start=0,stop=0.5`, `fdg:scales=10+5`;
 * the syntax is in spec-syntax.ts), checked against the same schemas as the
 * factories. The command line's --guidance and queued runs read them here;
 * guidanceFromSpec() is the API's door, where a mistake rejects with
 * ERR_INVALID_OPTION naming the spec and the option.
 */
import type { z } from 'zod';

import { ErrorCodes, TorchGuidanceError, isTorchGuidanceError } from '../core/errors.js';
import { UsageError } from '../core/usage-error.js';
import type { Model } from '../model/model.js';
import { FACTORIES } from './registry.js';
import { readOptions, shapeOf, splitSpec } from './spec-syntax.js';
import type { Strategy } from './types.js';

interface StrategyEntry {
  /** The factory; its options are checked by its schema at run time. */
  make: (options: never) => Strategy;
  schema: z.ZodType;
  /** The option `name:value` sets. */
  main: string;
  /** The option that takes the --guide model, for strategies that need a second model. */
  modelOption?: 'guide' | 'negative';
  /** An option that replaces the second model when given (autoguidance's layers). */
  modelAlternative?: string;
}

/** The spec language's view of each factory: which option a bare value sets, and which takes the --guide model. */
const specEntry = (name: string, main: string, extra: Partial<StrategyEntry> = {}): StrategyEntry => ({ ...FACTORIES[name]!, main, ...extra });

/** Every strategy a spec may name, by its canonical name. */
const STRATEGIES: Record<string, StrategyEntry> = {
  cfg: specEntry('cfg', 'scale'),
  pag: specEntry('pag', 'scale'),
  seg: specEntry('seg', 'scale'),
  sag: specEntry('sag', 'scale'),
  autoguidance: specEntry('autoguidance', 'scale', { modelOption: 'guide', modelAlternative: 'layers' }),
  sims: specEntry('sims', 'scale', { modelOption: 'negative' }),
  icg: specEntry('icg', 'scale'),
  tsg: specEntry('tsg', 'scale'),
  slg: specEntry('slg', 'scale'),
  apg: specEntry('apg', 'scale'),
  'apg-mix': specEntry('apg-mix', 'scale'),
  tcfg: specEntry('tcfg', 'scale'),
  fdg: specEntry('fdg', 'scales'),
  'magnitude-aware': specEntry('magnitude-aware', 'scale'),
  'cfg-zero-star': specEntry('cfg-zero-star', 'scale'),
  cfgpp: specEntry('cfgpp', 'scale'),
  rescale: specEntry('rescale', 'phi'),
  blur: specEntry('blur', 'scale'),
  lowpass: specEntry('lowpass', 'scale'),
  highpass: specEntry('highpass', 'scale'),
  'random-reset': specEntry('random-reset', 'scale'),
  'square-reset': specEntry('square-reset', 'scale'),
};

/** Other names a spec may use: the factories' own names and the papers'. */
const ALIASES: Record<string, string> = {
  cfgZeroStar: 'cfg-zero-star',
  'cfg-zero*': 'cfg-zero-star',
  'cfg++': 'cfgpp',
  blurGuidance: 'blur',
  lowPassGuidance: 'lowpass',
  highPassGuidance: 'highpass',
  apgMix: 'apg-mix',
  magnitudeAware: 'magnitude-aware',
  'mambo-g': 'magnitude-aware',
  randomResetGuidance: 'random-reset',
  squareResetGuidance: 'square-reset',
};

/** The strategy names a guidance spec may start with (aliases aside). */
export const strategyNames = Object.keys(STRATEGIES);

/** The message of an option error thrown by a factory, without its 'invalid ... options: ' prefix. */
function factoryProblem(error: unknown): string {
  if (isTorchGuidanceError(error)) return error.message.replace(/^invalid [^:]+ options: /, '');
  throw error;
}

/** A strategy spec read and checked, before its strategy is built. */
export interface ParsedGuidance {
  /** The spec as given. */
  spec: string;
  /** The canonical strategy name. */
  name: string;
  /** The options given on the command line (no defaults, no models). */
  options: Record<string, unknown>;
  /** Whether the strategy needs the --guide model. */
  needsGuide: boolean;
}

/** Reads one --guidance spec; builds no strategy yet (the guide model may not be loaded). */
export function parseGuidanceSpec(spec: string): ParsedGuidance {
  const { name: given, items } = splitSpec(spec);
  const name = ALIASES[given] ?? given;
  const entry = STRATEGIES[name];
  if (!entry) {
    throw new UsageError(`--guidance ${spec}: unknown strategy '${given}' (strategies: ${strategyNames.join(', ')})`);
  }
  const fixed = new Set(entry.modelOption ? [entry.modelOption] : []);
  const options = readOptions('--guidance', spec, items, shapeOf(entry.schema), entry.main, fixed);
  const replaced = entry.modelAlternative !== undefined && options[entry.modelAlternative] !== undefined;
  return { spec, name, options, needsGuide: entry.modelOption !== undefined && !replaced };
}

/** Builds the strategy of a parsed spec (with the --guide model where it needs one). */
export function buildStrategy(parsed: ParsedGuidance, guide: Model | undefined): Strategy {
  const entry = STRATEGIES[parsed.name]!;
  const options = { ...parsed.options };
  if (parsed.needsGuide && entry.modelOption) {
    if (!guide) throw new UsageError(`--guidance ${parsed.spec}: ${parsed.name} needs a second model; give it with --guide <model.pt>`);
    options[entry.modelOption] = guide;
  }
  try {
    return entry.make(options as never);
  } catch (error) {
    throw new UsageError(`--guidance ${parsed.spec}: ${factoryProblem(error)}`);
  }
}

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
export const guidanceSpecNames: readonly string[] = strategyNames;
