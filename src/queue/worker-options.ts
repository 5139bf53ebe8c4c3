/**
 * Options and events of queue workers (runWorker()), kept apart from the
 * worker itself so that they load without BullMQ.
 */
import { z } from 'zod';

import { DEFAULT_QUEUE_NAME, queueNameProblem, queueUrlProblem } from '../runs/queue-address.js';
import type { ShardResult } from './shard-job.js';

/** Options of runWorker(). Times are in milliseconds. */
export const samplingWorkerOptionsSchema = z
  .object({
    /** The queue's Redis: redis://HOST:PORT/DB. */
    url: z.string().refine((url) => queueUrlProblem(url) === undefined, { message: 'give redis://HOST:PORT/DB' }),
    /** The queue's name (the coordinator's --queue-name). */
    name: z.string().refine((name) => queueNameProblem(name) === undefined, { message: 'letters, digits, dots, dashes or underscores' }).default(DEFAULT_QUEUE_NAME),
    /** Shards sampled at once (they share the run's models and the torch threads). */
    concurrency: z.number().int().min(1).max(64).default(1),
    /** Where to sample: 'auto' takes each run's device kind; cuda:N pins a GPU. */
    device: z.string().regex(/^(auto|cpu|cuda(:\d+)?)$/, 'auto, cpu, cuda or cuda:N').default('auto'),
    /** A folder to find model files in by file name, before the paths the run was planned with. */
    models: z.string().min(1).optional(),
    /** How long a stop lets shards in progress finish before handing them back. */
    graceMs: z.number().int().min(0).default(20_000),
    /** BullMQ's job lock: a worker silent for this long is taken for dead and its shard given to another. */
    lockDurationMs: z.number().int().min(1000).default(30_000),
    /** How often this worker looks for shards of dead workers. */
    stalledIntervalMs: z.number().int().min(100).default(30_000),
    /** After refusing a run, this worker takes no job for this long (the refused job goes to others at once). */
    refusalBackoffMs: z.number().int().min(0).default(10_000),
    /** The worker's name in jobs, logs and refusals (default host:pid). */
    id: z.string().min(1).max(200).optional(),
    /** How long to wait for Redis at start before failing with ERR_QUEUE_UNREACHABLE. */
    connectTimeoutMs: z.number().int().min(1).default(5000),
    /** Aborting it stops the worker as stop() does. */
    signal: z.instanceof(AbortSignal).optional(),
    /** Called with what the worker does, for logs. */
    onEvent: z.custom<(event: WorkerEvent) => void>((v) => typeof v === 'function', 'a function').optional(),
  })
  .strict();

/** Options of runWorker: the Redis `url`, `concurrency`, `device`, a local `models` folder, grace and lock timings, a `signal`. */
export type SamplingWorkerOptions = z.input<typeof samplingWorkerOptionsSchema>;

/** A shard as events name it. */
export interface ShardRef {
  runKey: string;
  /** The run's folder. */
  location: string;
  shard: number;
  /** Shards in the run. */
  of: number;
  jobId: string;
}

/** What a worker does, as it happens. */
export type WorkerEvent =
  | { type: 'ready'; worker: string; queue: string; concurrency: number; device: string }
  | ({ type: 'started'; loadedNow: boolean; first: number; count: number } & ShardRef)
  | ({ type: 'done'; result: ShardResult } & ShardRef)
  | ({ type: 'refused'; code: string; message: string } & ShardRef)
  | ({ type: 'handed-back' } & ShardRef)
  | ({ type: 'failed'; message: string } & Partial<ShardRef> & { jobId: string })
  | { type: 'stopping'; graceMs: number; active: number }
  | { type: 'error'; message: string };

/** What a worker did, by outcome: shards written, found already stored, obsolete, refused, handed back, failed. */
export interface WorkerSummary {
  worker: string;
  written: number;
  present: number;
  obsolete: number;
  refused: number;
  handedBack: number;
  failed: number;
}
