/**
 * The spec language of strategies, samplers and schedules, the form they take
 * on the command line and in queued runs, checked against the same zod
 * schemas the API uses:
 *
 *   cfg:3                             name:value sets the main option (scale; phi for rescale)
 *   pag:scale=3,sites=mid.*           key=value pairs are the options themselves
 *   cfg:3,sigmaMin=0.3,sigmaMax=5     sigmaMin / sigmaMax: the guidance window
 *   slg:3,start=0,stop=0.5            start / stop: step fractions; enabled=false switches one off
 *   sag:sites=mid.attn+up.1.attn      '+' separates list items
 *   autoguidance:2,layers.blocks=mid.*,layers.skip=attention   dotted keys set an object option's fields
 *   heun:churn=40   karras:rho=5      samplers and schedules (src/sampling/sampler-spec.ts)
 *
 * Values that read as numbers (also inf, -inf) become numbers when the option
 * takes one, true/false booleans. Every failure is a UsageError naming the
 * flag and spec, e.g. `--guidance pag:scale=abc: scale must be a number`.
 * Strategy specs are read in spec.ts.
 */
import type { z } from 'zod';

import { UsageError } from '../core/usage-error.js';
import { windowSchema } from './options.js';

/** A zod object's fields by name. */
export type Shape = Record<string, z.ZodType>;

/** The fields of a zod object schema. */
export function shapeOf(schema: z.ZodType): Shape {
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

/** Option aliases accepted in specs (autoguidance's `layers` are its `sites`). */
const KEY_ALIASES: Record<string, string> = { layers: 'sites' };

/** Keys that go into the `window` option. */
const WINDOW_KEYS = new Set(['sigmaMin', 'sigmaMax']);

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
export function splitSpec(spec: string): { name: string; items: string[] } {
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
export function readOptions(
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

