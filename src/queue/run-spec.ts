/**
 * A sampling run in a form another process can take: the `sample` command's
 * flags. The coordinator turns its checked flags into an argv without the
 * machine-specific ones (model paths, --out, --device, --queue); a worker
 * appends its own and parses the whole with the command's readFlags(), so
 * both sides check and interpret a run with the same code. The API's typed
 * run options become the same argv.
 */
import { z } from 'zod';

import type { Flags } from '../runs/run-flags.js';
import { parseOptions } from '../core/options.js';
import type { RunModel } from './shard-job.js';

/** The flags of `flags` that decide a run's bytes, except the model files, --out, --device and --queue. */
export function portableArgv(flags: Flags): string[] {
  return [
    ...flags.specs.flatMap((s) => ['--guidance', s.spec]),
    ...flags.samplerArgv,
    `--clip=${flags.clip ? flags.clip.join(',') : 'none'}`,
    '--count', String(flags.count),
    '--label', flags.label === null ? 'null' : String(flags.label),
    '--seed', flags.seed.toString(),
    '--batch-size', String(flags.batchSize),
    '--parallel', String(flags.parallel),
    '--shard-size', String(flags.shardSize),
    '--format', flags.format,
    ...(flags.rgb ? ['--rgb'] : []),
  ];
}

/** The run's model files by role, as the coordinator resolved and hashed them. */
export function runModels(flags: Flags): RunModel[] {
  return [
    { role: 'model' as const, ...flags.model },
    ...(flags.guide ? [{ role: 'guide' as const, ...flags.guide }] : []),
    ...(flags.sims ? [{ role: 'sims' as const, ...flags.sims }] : []),
  ].map(({ role, path, sha256 }) => ({ role, path, sha256 }));
}

/** The full `sample` argv of a run as one worker runs it: its model paths, the run's folder, its device. */
export function workerArgv(argv: readonly string[], models: { role: RunModel['role']; path: string }[], out: string, device: string): string[] {
  return [...argv, ...models.flatMap((m) => [`--${m.role}`, m.path]), '--out', out, '--device', device];
}

const seedSchema = z.union([
  z.bigint().min(0n).max((1n << 64n) - 1n),
  z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  z.string().regex(/^\d+$/, 'a whole number as a string'),
]);

/**
 * A run for createSamplingQueue().run(): the `sample` command's flags as
 * typed fields (defaults as there). Strategies, sampler and schedule are
 * given in the command's spec language ('cfg:3', 'pag:scale=3,sites=mid.*',
 * 'heun:churn=40', 'karras:rho=5'), since a strategy object cannot travel to
 * another machine; every spec is checked against the strategy's own schema.
 */
export const samplingRunSchema = z
  .object({
    /** The denoiser's TorchScript file. */
    model: z.string().min(1),
    /** Second model: autoguidance's weak guide (and the SIMS negative unless `sims` is given). */
    guide: z.string().min(1).optional(),
    /** The SIMS negative, when it differs from `guide`. */
    sims: z.string().min(1).optional(),
    guidance: z.array(z.string().min(1)).default([]),
    sampler: z.string().min(1).default('euler'),
    steps: z.number().int().min(1).max(10_000).default(30),
    schedule: z.string().min(1).default('karras'),
    /** Clip each guided denoised estimate to [low, high]; null: off. */
    clip: z.union([z.tuple([z.number(), z.number()]), z.null()]).default([-1, 1]),
    count: z.number().int().min(1).max(1_000_000_000),
    /** Every sample's class, null for unconditional, or 'random': drawn from each sample's seed. */
    label: z.union([z.number().int().min(0), z.null(), z.literal('random')]).default('random'),
    /** Seed of sample 0; sample k uses seed + k. */
    seed: seedSchema.default(0),
    batchSize: z.number().int().min(1).max(65_536).default(16),
    parallel: z.union([z.number().int().min(1).max(4096), z.literal('auto')]).default('auto'),
    /** Samples per shard, i.e. per job (default: the first multiple of batchSize from 1000). */
    shardSize: z.number().int().min(1).optional(),
    /** The workers' device kind: 'auto' is cuda when this process sees CUDA, else cpu. */
    device: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
    /** The run's folder, on a file system every worker mounts at the same path. */
    out: z.string().min(1),
    format: z.enum(['png', 'npz', 'both']).default('png'),
    rgb: z.boolean().default(false),
  })
  .strict();

/** One sampling run for the queue: what `torch-guidance sample` takes (models, count, guidance specs, sampler, output folder). */
export type SamplingRunOptions = z.input<typeof samplingRunSchema>;

/** The `sample` argv of typed run options (validated; a bad field is ERR_INVALID_OPTION naming it). */
export function samplingRunArgv(options: SamplingRunOptions): string[] {
  const run = parseOptions(samplingRunSchema, options, 'sampling run options');
  return [
    '--model', run.model,
    ...(run.guide !== undefined ? ['--guide', run.guide] : []),
    ...(run.sims !== undefined ? ['--sims', run.sims] : []),
    ...run.guidance.flatMap((spec) => ['--guidance', spec]),
    '--sampler', run.sampler,
    '--steps', String(run.steps),
    '--schedule', run.schedule,
    `--clip=${run.clip ? run.clip.join(',') : 'none'}`,
    '--count', String(run.count),
    '--label', run.label === null ? 'null' : String(run.label),
    '--seed', String(run.seed),
    '--batch-size', String(run.batchSize),
    '--parallel', String(run.parallel),
    ...(run.shardSize !== undefined ? ['--shard-size', String(run.shardSize)] : []),
    '--device', run.device,
    '--out', run.out,
    '--format', run.format,
    ...(run.rgb ? ['--rgb'] : []),
  ];
}
