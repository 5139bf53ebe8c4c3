/**
 * What a queue job carries: one shard of a sampling run. The run part is the
 * same in every job of the run: the flags that decide the bytes (as an argv,
 * parsed again by the worker with the command's own checks), the model files
 * with their SHA-256, the device kind, the run's output location and the
 * fingerprint of its settings. Job ids derive from the run and the shard, so
 * adding a shard's job twice adds it once.
 */
import { createHash } from 'node:crypto';

import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';

/** The BullMQ job name of a shard. */
export const SHARD_JOB = 'shard';

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in hex');

/** A model file of a run, by role, with the hash every worker's copy must have. */
export const runModelSchema = z.object({
  role: z.enum(['model', 'guide', 'sims']),
  /** The path the run was planned with; a worker may find the file elsewhere (worker --models). */
  path: z.string().min(1),
  sha256: sha256Hex,
});

/** The part of a shard job that every job of the run shares. */
export const runDescriptorSchema = z.object({
  /** The job format; a worker refuses other versions. */
  version: z.literal(1),
  /** Run identity: a hash of the fingerprint and the location (job ids start with it). */
  runKey: z.string().regex(/^[0-9a-f]{16}$/),
  /** SHA-256 of the run's settings (manifest.json `settings`, as JSON). */
  fingerprint: sha256Hex,
  /** Where the run's files are: an absolute directory on a file system every worker mounts at the same path. */
  location: z.string().min(1),
  /** The `sample` flags that decide the bytes, without --model/--guide/--sims, --out, --device and --queue. */
  argv: z.array(z.string()),
  models: z.array(runModelSchema).min(1),
  /** The device kind the run is sampled on. */
  device: z.enum(['cpu', 'cuda']),
});

export const shardJobSchema = runDescriptorSchema.extend({
  shard: z.object({
    index: z.number().int().min(0),
    /** Index of the shard's first sample in the run. */
    first: z.number().int().min(0),
    /** Samples in the shard. */
    count: z.number().int().min(1),
    /** Shards in the run. */
    of: z.number().int().min(1),
  }),
});

export type RunModel = z.infer<typeof runModelSchema>;
export type RunDescriptor = z.infer<typeof runDescriptorSchema>;
export type ShardJobData = z.infer<typeof shardJobSchema>;

/** What a worker returns for a shard job (the job's return value). */
export const shardResultSchema = z.object({
  /** written: sampled and stored now; present: already complete in storage; obsolete: the run's settings changed since. */
  status: z.enum(['written', 'present', 'obsolete']),
  worker: z.string(),
  /** Milliseconds: loading or finding the models, sampling, writing, and the whole job. */
  ms: z.object({ load: z.number(), sample: z.number(), write: z.number(), total: z.number() }),
});
export type ShardResult = z.infer<typeof shardResultSchema>;

/** Checks a job's data; a job that is not a shard of this version is ERR_INVALID_JOB. */
export function parseShardJob(data: unknown, jobId: string | undefined): ShardJobData {
  const parsed = shardJobSchema.safeParse(data);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(data)'}: ${i.message}`).join('; ');
  throw new TorchGuidanceError(
    ErrorCodes.INVALID_JOB,
    `job ${jobId ?? '?'} is not a shard of a torch-guidance sampling run of this version (${problems}); ` +
      'keep other programs off this queue name, and run workers of the version the coordinator runs.',
  );
}

/** SHA-256 of settings as JSON (their keys are already sorted: src/cli/sample.ts canonical()). */
export function settingsFingerprint(settings: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(settings)).digest('hex');
}

/** The run's key: the same settings in the same place are the same run. */
export function runKeyOf(fingerprint: string, location: string): string {
  return createHash('sha256').update(`${fingerprint}\0${location}`).digest('hex').slice(0, 16);
}

/** The job id of shard `index` of a run. */
export function shardJobId(runKey: string, index: number): string {
  return `${runKey}-${String(index).padStart(5, '0')}`;
}

/** The run key and shard index of a job id, or undefined when the id is not a shard's. */
export function parseShardJobId(id: string): { runKey: string; index: number } | undefined {
  const match = /^([0-9a-f]{16})-(\d+)$/.exec(id);
  return match ? { runKey: match[1]!, index: Number(match[2]) } : undefined;
}
