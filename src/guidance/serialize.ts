/**
 * Guidance as data: a stack of strategies saved as a versioned JSON document
 * and rebuilt from it, so that a server can take guidance from a request and
 * a benchmark can record exactly what ran.
 *
 *   {
 *     "format": "torch-guidance/guidance",
 *     "version": 1,
 *     "strategies": [
 *       { "name": "cfg", "options": { "scale": 3, "formulation": "standard", "enabled": true, "start": 0, "stop": 1 } },
 *       { "name": "seg", "options": { "scale": 3, "sigma": { "$number": "Infinity" }, "sites": "**.mid.*", ... } },
 *       { "name": "autoguidance", "options": { "guide": { "$model": "weak" }, "scale": 2, ... } }
 *     ]
 *   }
 *
 * Each entry holds the strategy's settings after defaults (Strategy.settings),
 * so a document pins every option even if a default changes later. JSON has
 * no Infinity, RegExp or model: they are written as { "$number": "Infinity" },
 * { "$regexp": source, "flags": flags } and { "$model": name }, the name
 * given in `models` when saving and resolved from `models` when loading.
 * Only strategies made by the package's factories can be saved.
 */
import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { Model } from '../model/model.js';
import { parseOptions } from '../core/options.js';
import { FACTORIES, factoryNames } from './registry.js';
import { isFactoryStrategy } from './strategies/define.js';
import type { Strategy } from './types.js';

/** The `format` field of a guidance document. */
export const GUIDANCE_FORMAT = 'torch-guidance/guidance';
/** The version of guidance documents this package writes and reads. */
export const GUIDANCE_VERSION = 1;

/** A JSON value as the document stores it. */
export type GuidanceJson = null | boolean | number | string | GuidanceJson[] | { [key: string]: GuidanceJson };

/** A guidance stack as data (guidanceToJSON, guidanceFromJSON): each strategy's factory name and options. */
export interface GuidanceDocument {
  format: typeof GUIDANCE_FORMAT;
  version: typeof GUIDANCE_VERSION;
  strategies: { name: string; options: { [key: string]: GuidanceJson } }[];
}

/** Options of guidanceToJSON and guidanceFromJSON. */
export interface GuidanceDataOptions {
  /** Models by name: saving writes these names for the models the strategies hold; loading resolves them. */
  models?: Readonly<Record<string, Model>>;
}

const invalid = (message: string) => new TorchGuidanceError(ErrorCodes.INVALID_OPTION, message);

function encode(value: unknown, path: string, modelNames: Map<Model, string>): GuidanceJson {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : { $number: String(value) };
  if (value instanceof RegExp) return { $regexp: value.source, flags: value.flags };
  if (value instanceof Model) {
    const name = modelNames.get(value);
    if (name === undefined) {
      throw invalid(`guidance document: ${path} is a model with no name. Fix: pass models: { <name>: model } to name it in the document.`);
    }
    return { $model: name };
  }
  if (Array.isArray(value)) return value.map((v, i) => encode(v, `${path}.${i}`, modelNames));
  if (typeof value === 'object') {
    const out: { [key: string]: GuidanceJson } = {};
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) if (v !== undefined) out[key] = encode(v, `${path}.${key}`, modelNames);
    return out;
  }
  throw invalid(`guidance document: ${path} is a ${typeof value}, which a guidance document cannot hold.`);
}

function decode(value: GuidanceJson, path: string, models: Readonly<Record<string, Model>>): unknown {
  if (Array.isArray(value)) return value.map((v, i) => decode(v, `${path}.${i}`, models));
  if (value === null || typeof value !== 'object') return value;
  const keys = Object.keys(value);
  if (keys.length === 1 && typeof value.$number === 'string') {
    const number = Number(value.$number);
    if (!['Infinity', '-Infinity'].includes(value.$number)) throw invalid(`guidance document: ${path}.$number must be "Infinity" or "-Infinity", got ${JSON.stringify(value.$number)}.`);
    return number;
  }
  if (keys.length === 2 && typeof value.$regexp === 'string' && typeof value.flags === 'string') {
    try {
      return new RegExp(value.$regexp, value.flags);
    } catch (error) {
      throw invalid(`guidance document: ${path} is not a valid regular expression: ${(error as Error).message}`);
    }
  }
  if (keys.length === 1 && typeof value.$model === 'string') {
    const model = models[value.$model];
    if (!model) {
      const known = Object.keys(models);
      throw invalid(
        `guidance document: ${path} names the model '${value.$model}', which is not among the models given (${known.length ? known.join(', ') : 'none'}). ` +
          `Fix: pass models: { ${value.$model}: await loadModel(...) }.`,
      );
    }
    return model;
  }
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = decode(v, `${path}.${key}`, models);
  return out;
}

/** A guidance stack as a JSON-ready document (JSON.stringify it to store it). */
export function guidanceToJSON(strategies: readonly Strategy[], options: GuidanceDataOptions = {}): GuidanceDocument {
  const modelNames = new Map<Model, string>();
  for (const [name, model] of Object.entries(options.models ?? {})) modelNames.set(model, name);
  return {
    format: GUIDANCE_FORMAT,
    version: GUIDANCE_VERSION,
    strategies: strategies.map((strategy, i) => {
      if (!isFactoryStrategy(strategy) || !(strategy.name in FACTORIES)) {
        throw invalid(
          `guidance document: strategies.${i} ('${strategy.name}') was not made by one of the package's factories, so it cannot be ` +
            `rebuilt from a document. Fix: save only strategies from ${factoryNames.join(', ')}.`,
        );
      }
      return { name: strategy.name, options: encode(strategy.settings, `strategies.${i}.options`, modelNames) as { [key: string]: GuidanceJson } };
    }),
  };
}

const jsonValue: z.ZodType<GuidanceJson> = z.lazy(() =>
  z.union([z.null(), z.boolean(), z.number(), z.string(), z.array(jsonValue), z.record(z.string(), jsonValue)]),
);

const documentSchema = z
  .object({
    format: z.literal(GUIDANCE_FORMAT),
    version: z.number().int(),
    strategies: z.array(z.object({ name: z.string().min(1), options: z.record(z.string(), jsonValue).default({}) }).strict()),
  })
  .strict()
  .refine((d) => d.version === GUIDANCE_VERSION, {
    message: `this package reads version ${GUIDANCE_VERSION} of guidance documents; write the document with a matching version of torch-guidance`,
    path: ['version'],
  });

/** Rebuilds the strategies of a guidance document (an object, or its JSON text). */
export function guidanceFromJSON(document: unknown, options: GuidanceDataOptions = {}): Strategy[] {
  let value = document;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch (error) {
      throw invalid(`guidance document: not JSON: ${(error as Error).message}`);
    }
  }
  const parsed = parseOptions(documentSchema, value, 'guidance document');
  const models = options.models ?? {};
  return parsed.strategies.map(({ name, options: raw }, i) => {
    const entry = FACTORIES[name];
    if (!entry) throw invalid(`invalid guidance document: strategies.${i}.name: unknown strategy '${name}' (strategies: ${factoryNames.join(', ')}).`);
    const decoded = decode(raw, `strategies.${i}.options`, models);
    try {
      return entry.make(decoded as never);
    } catch (error) {
      if (error instanceof TorchGuidanceError) {
        throw new TorchGuidanceError(error.code, `invalid guidance document: strategies.${i} (${name}): ${error.message}`, { cause: error });
      }
      throw error;
    }
  });
}
