/**
 * The coordinator of a queued run (`torch-guidance sample --queue`, and
 * createSamplingQueue().run()). It plans the run as the local command does
 * (checks every flag against the models, writes or checks the manifest under
 * the folder's lock), adds one job per shard not yet complete in storage,
 * follows the run through BullMQ's events and a periodic poll, and, when every
 * shard is in, merges samples.npz and marks the manifest complete.
 *
 * Job ids are the run key and the shard index, so planning the same run
 * again (a restarted coordinator) adds only what is missing: jobs waiting,
 * running or delayed are left alone, failed ones are retried, and a shard
 * complete in storage gets no job. Killing the coordinator does not stop the
 * workers; rerunning it picks up wherever they are.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

import type { Flags } from '../runs/run-flags.js';
import { writeManifest } from '../io/shards.js';
import { closeWithin } from './close.js';
import { checkReachable, connectionOptions, redactedUrl } from './connection.js';
import { RunFollower } from './follow-run.js';
import { type PlannedRun, planRun } from './plan-run.js';
import { type Refusal, Refusals } from './refusals.js';
import { RunEvents } from './run-events.js';
import { RunJobs } from './run-jobs.js';
import { type RunProgress, RunTracker } from './run-tracker.js';

/** How coordinateRun() reaches the queue and follows the run. */
export interface CoordinatorOptions {
  /** The queue's Redis, redis://HOST:PORT/DB. */
  url: string;
  /** The queue's name. */
  name: string;
  /** Stops waiting (the workers go on); the call rejects with the signal's reason. */
  signal: AbortSignal;
  /** Follow the run to its end and merge (true), or only plan it and add its jobs (false). */
  wait: boolean;
  /** How often the coordinator polls the run's jobs, refusals and workers (ms; events arrive in between). */
  pollMs?: number;
  /** How long to wait for Redis at start (ms). */
  connectTimeoutMs?: number;
  /** Attempts per shard before it counts as failed. */
  attempts?: number;
  /** First retry delay after a failed attempt (ms; doubles each time). */
  backoffMs?: number;
  /** Called with each event of the run as it happens. */
  onEvent?: (event: QueuedRunEvent) => void;
}

/** What the coordinator does, as it happens; each event carries the run's progress. */
export type QueuedRunEvent =
  | {
      type: 'planned';
      runKey: string;
      out: string;
      queue: string;
      device: string;
      shardSize: number;
      /** Jobs added now, jobs already in the queue, failed jobs retried. */
      added: number;
      queued: number;
      retried: number;
      grewFrom?: number;
      progress: RunProgress;
    }
  | { type: 'shard-done'; shard: number; first: number; count: number; worker?: string; progress: RunProgress }
  | { type: 'shard-failed'; shard: number; reason: string; progress: RunProgress }
  | { type: 'refused'; refusal: Refusal; progress: RunProgress }
  | { type: 'update'; progress: RunProgress }
  | { type: 'merging'; progress: RunProgress };

/** How a queued run ended (or, without waiting, how it was left). */
export interface QueuedRunResult {
  out: string;
  runKey: string;
  shards: number;
  count: number;
  /** Shards complete when the coordinator started. */
  kept: number;
  /** Jobs this call added (failed ones retried included). */
  added: number;
  /** Every shard is complete (always true after a wait). */
  complete: boolean;
  /** samples.npz was written now. */
  merged: boolean;
  /** Samples made while this call watched, and over how many seconds. */
  made: number;
  seconds: number;
}

/**
 * Adds a job for every shard that is neither complete in storage nor queued.
 * Jobs first, storage second (see RunJobs.ensure): a shard gets a new job
 * only when it truly has none. Returns the tracker of the run's shards.
 */
async function addMissingJobs(planned: PlannedRun, jobs: RunJobs): Promise<{ tracker: RunTracker; kept: number; counts: JobCounts }> {
  const { layout, storage } = planned;
  const everyShard = Array.from({ length: layout.plan.shards }, (_, i) => i);
  const states = await jobs.states(everyShard);
  const complete: number[] = [];
  for (const i of everyShard) {
    if ((await storage.shardState(layout, i)).status === 'complete') complete.push(i);
  }
  const tracker = new RunTracker(layout.plan, complete);
  const remaining = tracker.remaining();
  const counts = await jobs.ensure(remaining, remaining.map((i) => states[i]!));
  return { tracker, kept: complete.length, counts };
}

/** Jobs added now, jobs already in the queue, failed jobs retried. */
type JobCounts = Awaited<ReturnType<RunJobs['ensure']>>;

/**
 * Once every shard is in: removes the temporaries of dead or late writers,
 * merges samples.npz where the format has it (when shards were made now or
 * the merged file is not right) and marks the manifest complete. Returns
 * whether it merged.
 */
async function finishRun(planned: PlannedRun, tracker: RunTracker, out: string, emit: (event: QueuedRunEvent) => void): Promise<boolean> {
  const { layout, storage } = planned;
  await storage.removeTemporaries();
  let merged = false;
  if (layout.format !== 'png' && (tracker.snapshot().made > 0 || (await storage.mergedProblem(layout)) !== undefined)) {
    emit({ type: 'merging', progress: tracker.snapshot() });
    await storage.merge(layout);
    merged = true;
  }
  if (!planned.manifest.completedAt) {
    planned.manifest.completedAt = new Date().toISOString();
    await writeManifest(out, planned.manifest);
  }
  return merged;
}

/** Plans the run, adds its missing jobs and, with `wait`, follows it to the merge. */
export async function coordinateRun(flags: Flags, options: CoordinatorOptions): Promise<QueuedRunResult> {
  const { signal } = options;
  await checkReachable(options.url, { timeoutMs: options.connectTimeoutMs ?? 5000, signal });
  const planned = await planRun(flags, signal);
  const { descriptor, layout, storage } = planned;
  const connection = connectionOptions(options.url);
  const emit = (event: QueuedRunEvent) => options.onEvent?.(event);
  let queue: Queue | undefined;
  let events: RunEvents | undefined;
  let redis: Redis | undefined;
  try {
    queue = new Queue(options.name, { connection });
    queue.on('error', () => undefined); // connection trouble shows as a run that stops moving; ioredis reconnects
    redis = new Redis(connection);
    redis.on('error', () => undefined);
    const jobs = new RunJobs(queue, descriptor, layout.plan, { attempts: options.attempts ?? 3, backoffMs: options.backoffMs ?? 10_000 });
    // Listening before the scan, so no event between the two is lost (the poll would catch it anyway).
    if (options.wait) events = await RunEvents.open(options.name, connection, descriptor.runKey);
    const { tracker, kept, counts } = await addMissingJobs(planned, jobs);
    emit({
      type: 'planned',
      runKey: descriptor.runKey,
      out: storage.location,
      queue: `${redactedUrl(options.url)} (${options.name})`,
      device: descriptor.device,
      shardSize: layout.plan.shardSize,
      ...counts,
      ...(planned.grewFrom === undefined ? {} : { grewFrom: planned.grewFrom }),
      progress: tracker.snapshot(),
    });
    const result = (merged: boolean): QueuedRunResult => {
      const progress = tracker.snapshot();
      return {
        out: storage.location,
        runKey: descriptor.runKey,
        shards: layout.plan.shards,
        count: layout.plan.count,
        kept,
        added: counts.added + counts.retried,
        complete: tracker.complete,
        merged,
        made: progress.made,
        seconds: progress.elapsedSeconds,
      };
    };
    if (!events) return result(false);
    const follower = new RunFollower({ planned, jobs, tracker, refusals: new Refusals(redis, options.name), queue, emit });
    await follower.follow(events, signal, options.pollMs ?? 2000, flags.out);
    return result(await finishRun(planned, tracker, flags.out, emit));
  } finally {
    await Promise.all([closeWithin(events?.connection), closeWithin(queue), closeWithin(redis)]);
    await planned.release();
  }
}
