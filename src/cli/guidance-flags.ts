/**
 * Command-line specs for strategies, samplers and schedules, checked against
 * the same zod schemas the API uses:
 *
 *   --guidance cfg:3                      name:value sets the main option (scale; phi for rescale)
 *   --guidance pag:scale=3,sites=mid.*    key=value pairs are the strategy's own options
 *   --guidance cfg:3,sigmaMin=0.3,sigmaMax=5   sigmaMin / sigmaMax: the guidance window
 *   --guidance slg:3,start=0,stop=0.5     start / stop: step fractions; enabled=false switches one off
 *   --guidance sag:sites=mid.attn+up.1.attn    '+' separates list items
 *   --guidance autoguidance:2,layers.blocks=mid.*,layers.skip=attention   dotted keys set an object option's fields
 *   --sampler heun:churn=40   --schedule karras:rho=5
 *
 * Values that read as numbers (also inf, -inf) become numbers when the option
 * takes one, true/false booleans. Every failure is a UsageError naming the flag and spec, e.g.
 * `--guidance pag:scale=abc: scale must be a number`.
 */
import type { z } from 'zod';

import { isTorchGuidanceError } from '../core/errors.js';
import { FACTORIES } from '../guidance/registry.js';
import { windowSchema } from '../guidance/options.js';
import type { Strategy } from '../guidance/types.js';
import type { Model } from '../model/model.js';
import { samplerSchema, type SamplerOptions } from '../sampling/samplers/samplers.js';
import { sigmaScheduleSchema, type SigmaScheduleOptions } from '../sampling/samplers/sigma-schedules.js';
import { UsageError } from '../core/usage-error.js';

type Shape = Record<string, z.ZodType>;

function shapeOf(schema: z.ZodType): Shape {
  return (schema as unknown as { shape: Shape }).shape;
}

/** The fields of an object option (through .default() / .optional()), or undefined when it is not an object. */
function objectShape(field: z.ZodType): Shape | undefined {
  let inner: unknown = field;
  for (let depth = 0; depth < 4; depth++) {
    const shape = (inner as { shape?: Shape }).shape;
    if (shape && typeof shape === 'object') return shape;
    const unwrap = (inner as { unwrap?: () => unknown }).unwrap;
    if (typeof unwrap !== 'function') return undefined;
    inner = unwrap.call(inner);
  }
  return undefined;
}

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

/** The command line's view of each factory: which option a bare value sets, and which takes the --guide model. */
const cli = (name: string, main: string, extra: Partial<StrategyEntry> = {}): StrategyEntry => ({ ...FACTORIES[name]!, main, ...extra });

const STRATEGIES: Record<string, StrategyEntry> = {
  cfg: cli('cfg', 'scale'),
  pag: cli('pag', 'scale'),
  seg: cli('seg', 'scale'),
  sag: cli('sag', 'scale'),
  autoguidance: cli('autoguidance', 'scale', { modelOption: 'guide', modelAlternative: 'layers' }),
  sims: cli('sims', 'scale', { modelOption: 'negative' }),
  icg: cli('icg', 'scale'),
  tsg: cli('tsg', 'scale'),
  slg: cli('slg', 'scale'),
  apg: cli('apg', 'scale'),
  'apg-mix': cli('apg-mix', 'scale'),
  tcfg: cli('tcfg', 'scale'),
  fdg: cli('fdg', 'scales'),
  'magnitude-aware': cli('magnitude-aware', 'scale'),
  'cfg-zero-star': cli('cfg-zero-star', 'scale'),
  cfgpp: cli('cfgpp', 'scale'),
  rescale: cli('rescale', 'phi'),
  blur: cli('blur', 'scale'),
  lowpass: cli('lowpass', 'scale'),
  highpass: cli('highpass', 'scale'),
  'random-reset': cli('random-reset', 'scale'),
  'square-reset': cli('square-reset', 'scale'),
};

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

/** Option aliases accepted on the command line. */
const KEY_ALIASES: Record<string, string> = { layers: 'sites' };

/** Keys that go into the `window` option. */
const WINDOW_KEYS = new Set(['sigmaMin', 'sigmaMax']);

/** The strategy names a guidance spec may start with (aliases aside). */
export const strategyNames = Object.keys(STRATEGIES);

/** `3`, `-0.5`, `1e-3`, `inf`, `Infinity`, `-inf` as numbers; anything else undefined. */
function readNumber(text: string): number | undefined {
  const t = text.trim();
  if (/^[+-]?(inf|infinity)$/i.test(t)) return t.startsWith('-') ? -Infinity : Infinity;
  if (t === '' || !/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t)) return undefined;
  return Number(t);
}

function acceptsSomeNumber(field: z.ZodType): boolean {
  return [1, 3, 0.5, 0].some((n) => field.safeParse(n).success);
}

/**
 * One option value: a number where the field takes it, else the string; a
 * '+'-separated list becomes an array. Returns the value or a problem text.
 */
function coerce(key: string, raw: string, field: z.ZodType): { value: unknown } | { problem: string } {
  const candidates: unknown[] = [];
  if (raw === 'true' || raw === 'false') candidates.push(raw === 'true');
  const number = readNumber(raw);
  if (number !== undefined) candidates.push(number);
  if (raw.includes('+')) candidates.push(raw.split('+').map((item) => readNumber(item) ?? item));
  candidates.push(raw);
  let firstIssue: string | undefined;
  for (const candidate of candidates) {
    const result = field.safeParse(candidate);
    if (result.success) return { value: candidate };
    firstIssue ??= result.error.issues.map((i) => i.message).join('; ');
  }
  if (number === undefined && acceptsSomeNumber(field)) return { problem: `${key} must be a number` };
  return { problem: `${key}: ${firstIssue ?? 'invalid value'}` };
}

/** Splits `name:body` and the body's comma-separated items. */
function splitSpec(spec: string): { name: string; items: string[] } {
  const colon = spec.indexOf(':');
  const name = (colon < 0 ? spec : spec.slice(0, colon)).trim();
  const body = colon < 0 ? '' : spec.slice(colon + 1);
  const items = body === '' ? [] : body.split(',').map((s) => s.trim());
  return { name, items };
}

/**
 * key=value items onto an options object, each checked against `shape`;
 * a bare first item sets `main`. `fixed` keys are not settable here.
 */
function readOptions(
  flag: string,
  spec: string,
  items: string[],
  shape: Shape,
  main: string | undefined,
  fixed: ReadonlySet<string>,
): Record<string, unknown> {
  const fail = (problem: string): never => {
    throw new UsageError(`${flag} ${spec}: ${problem}`);
  };
  // Object options (slg's steps) are set through dotted keys: steps.start=0.
  const nested = new Map<string, z.ZodType>();
  const settable: string[] = [];
  for (const [key, field] of Object.entries(shape)) {
    if (fixed.has(key) || key === 'window') continue;
    const fields = objectShape(field);
    if (fields) for (const [sub, subField] of Object.entries(fields)) nested.set(`${key}.${sub}`, subField);
    else settable.push(key);
  }
  const windowed = 'window' in shape;
  const known = [...settable, ...nested.keys(), ...(windowed ? [...WINDOW_KEYS] : [])];
  const options: Record<string, unknown> = {};
  const seen = new Set<string>();
  items.forEach((item, index) => {
    if (item === '') fail('empty item (two commas in a row, or a trailing comma)');
    const eq = item.indexOf('=');
    let key: string;
    let raw: string;
    if (eq < 0) {
      if (index !== 0 || main === undefined) {
        fail(`'${item}' is not key=value${main === undefined ? '' : ` (only the first item may be a bare value, the ${main})`}`);
      }
      key = main!;
      raw = item;
    } else {
      key = item.slice(0, eq).trim();
      key = KEY_ALIASES[key] ?? key;
      raw = item.slice(eq + 1).trim();
    }
    if (!known.includes(key)) {
      fail(`unknown option '${key}' (options: ${known.join(', ') || 'none'})`);
    }
    if (seen.has(key)) fail(`${key} is given twice`);
    seen.add(key);
    if (raw === '') fail(`${key} needs a value`);
    if (WINDOW_KEYS.has(key) || nested.has(key)) {
      const [parent, child] = WINDOW_KEYS.has(key) ? ['window', key] : (key.split('.') as [string, string]);
      const result = coerce(key, raw, WINDOW_KEYS.has(key) ? shapeOf(windowSchema)[key]! : nested.get(key)!);
      if ('problem' in result) fail(result.problem);
      const object = (options[parent] ??= {}) as Record<string, unknown>;
      object[child] = (result as { value: unknown }).value;
    } else {
      const result = coerce(key, raw, shape[key]!);
      if ('problem' in result) fail(result.problem);
      options[key] = (result as { value: unknown }).value;
    }
  });
  return options;
}

/** The message of an option error thrown by a factory, without its 'invalid ... options: ' prefix. */
function factoryProblem(error: unknown): string {
  if (isTorchGuidanceError(error)) return error.message.replace(/^invalid [^:]+ options: /, '');
  throw error;
}

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

/** --sampler name[:key=value,...] with --steps and --schedule, as a checked sampler option. */
export function parseSamplerFlags(samplerSpec: string, steps: number, schedule: SigmaScheduleOptions): SamplerOptions {
  const { name, items } = splitSpec(samplerSpec);
  const variant = samplerSchema.options.find((o) => shapeOf(o).name!.safeParse(name).success);
  if (!variant) {
    const names = samplerSchema.options.map((o) => (shapeOf(o).name as unknown as { value: string }).value);
    throw new UsageError(`--sampler ${samplerSpec}: unknown sampler '${name}' (samplers: ${names.join(', ')})`);
  }
  const options = readOptions('--sampler', samplerSpec, items, shapeOf(variant), undefined, new Set(['name', 'steps', 'schedule']));
  const result = samplerSchema.safeParse({ ...options, name, steps, schedule });
  if (!result.success) {
    throw new UsageError(`--sampler ${samplerSpec}: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return { ...options, name, steps, schedule } as SamplerOptions;
}

/** --schedule kind[:key=value,...]. */
export function parseScheduleFlag(spec: string): SigmaScheduleOptions {
  const { name, items } = splitSpec(spec);
  const variant = sigmaScheduleSchema.options.find((o) => shapeOf(o).kind!.safeParse(name).success);
  if (!variant) {
    const names = sigmaScheduleSchema.options.map((o) => (shapeOf(o).kind as unknown as { value: string }).value);
    throw new UsageError(`--schedule ${spec}: unknown schedule '${name}' (schedules: ${names.join(', ')})`);
  }
  const options = readOptions('--schedule', spec, items, shapeOf(variant), undefined, new Set(['kind']));
  const result = sigmaScheduleSchema.safeParse({ ...options, kind: name });
  if (!result.success) {
    throw new UsageError(`--schedule ${spec}: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return { ...options, kind: name } as SigmaScheduleOptions;
}
