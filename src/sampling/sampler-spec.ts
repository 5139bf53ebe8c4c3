/**
 * Samplers and sigma schedules as specs, `name[:key=value,...]` (the command
 * line's --sampler heun:churn=40 with --steps, and --schedule karras:rho=5;
 * the syntax is in src/guidance/spec-syntax.ts), checked against the
 * samplers' own schemas. A mistake is a UsageError naming the flag.
 */
import { UsageError } from '../core/usage-error.js';
import { readOptions, shapeOf, splitSpec } from '../guidance/spec-syntax.js';
import { samplerSchema, type SamplerOptions } from './samplers/samplers.js';
import { sigmaScheduleSchema, type SigmaScheduleOptions } from './samplers/sigma-schedules.js';

/** --sampler name[:key=value,...] with --steps and --schedule, as a checked sampler option. */
export function parseSamplerSpec(samplerSpec: string, steps: number, schedule: SigmaScheduleOptions): SamplerOptions {
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
export function parseScheduleSpec(spec: string): SigmaScheduleOptions {
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
